"""The whole state of one rollout, and what each signal does to it (pure; the workflow only calls this).

The state is one model so that a query returns it whole and continue-as-new carries it whole. Signal
payloads are validated here rather than by the data converter: a payload with a wrong type or a missing
field is refused and *recorded* (never silently dropped, never hanging the workflow), and unknown fields
are ignored and recorded.

Who may do what: ``approve``, ``reject`` and ``promote`` need a name in the plan's ``approvers`` (anyone when
the list is empty); ``pause``, ``resume`` and ``abort`` are open to anyone — an emergency stop is always safe.
``promote`` skips the rest of the current stage (its approval included); ``promote {"full": true}`` makes the
candidate stable now. Neither overrides a failing gate.
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from canaryflow.domain.analysis import AnalysisReport, GateCounters, GateStatus, count_reports
from canaryflow.domain.gates import Verdict
from canaryflow.domain.plan import Plan
from canaryflow.domain.validation import describe

RolloutState = Literal[
    "running", "awaiting_approval", "paused", "promoted", "rolled_back", "aborted", "restore_failed"
]
#: Finished, or compensating (``restore_failed``: stable could not be restored yet; it keeps retrying).
TERMINAL_STATES = frozenset({"promoted", "rolled_back", "aborted", "restore_failed"})
#: What the workflow carries is bounded whatever the rollout's length and number of gates: per-gate running
#: counters, the last few reports and verdicts, the last events (details cut to MAX_DETAIL characters).
#: The full evidence of every measurement is in the registry (``rollout status`` shows it from there).
MAX_REPORTS = 3
MAX_EVENTS = 100
MAX_VERDICTS = 10
MAX_DETAIL = 300
#: Events waiting for the registry's audit log (written at every turn of the run loop).
MAX_AUDIT_PENDING = 20
#: The logic version new rollouts run (older carried states have 1): see ``docs/operations.md``.
LOGIC_VERSION = 2


class _Signal(BaseModel):
    # Actors are normalised: " alice " is alice, and a blank name is refused (never reaches the registry).
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    by: str = Field(min_length=1, max_length=200)


class Approve(_Signal):
    """``approve {by, stage?, comment?}``: let the stage that waits for approval go on."""

    stage: str | None = None
    comment: str | None = Field(default=None, max_length=2000)


class Reject(_Signal):
    """``reject {by, reason}``: roll back now."""

    reason: str = Field(default="no reason given", max_length=2000)


class Pause(_Signal):
    """``pause {by, reason?}``: stop advancing (a failing gate still rolls back)."""

    reason: str | None = Field(default=None, max_length=2000)


class Resume(_Signal):
    """``resume {by}``: advance again."""


class Abort(_Signal):
    """``abort {by, reason}``: roll back now and end as aborted."""

    reason: str = Field(default="no reason given", max_length=2000)


class Promote(_Signal):
    """``promote {by, full?}``: skip the rest of this stage; ``full``: the candidate is stable now."""

    full: bool = False


SIGNALS: dict[str, type[_Signal]] = {
    "approve": Approve, "reject": Reject, "pause": Pause,
    "resume": Resume, "abort": Abort, "promote": Promote,
}


class Event(BaseModel):
    """Who did what, and whether it was accepted."""

    at: float
    action: str
    by: str = ""
    accepted: bool = True
    detail: str = ""
    audit: bool = Field(default=False, description="also written to the registry audit log")
    stage: str = Field(default="", description="the stage the event applied to (set when recorded)")


class PendingApproval(BaseModel):
    """A stage waiting for a human."""

    stage: str
    since: float
    deadline: float | None = Field(default=None, description="None: no deadline (a human decides)")
    why: str = "stage passed its gates"
    held: bool = Field(default=False, description="the timeout passed and the plan says hold")
    blocking: bool = Field(default=True, description="False: a decision is asked, but the stage's gates "
                                                     "may still pass it by themselves")


class StopRequest(BaseModel):
    """A reject, abort or cancellation the run loop has not acted on yet."""

    kind: Literal["reject", "abort", "cancel"]
    by: str
    reason: str


class PromoteRequest(BaseModel):
    """A promote signal: for ``stage`` only, or ``full``."""

    by: str
    stage: str
    full: bool = False


class StageEnd(BaseModel):
    """How one stage ended and the rollout went on: its gates passed, a human approved it (after it passed,
    or while it was still inconclusive at its cap), or someone promoted past it."""

    stage: str
    how: Literal["gates", "approved", "promoted"]
    by: str = ""
    verdict: Verdict | None = None
    why: str = Field(default="", description="why approval was asked, when it was")


class VerdictRecord(BaseModel):
    """One analysis of a stage: the combined verdict and each gate's numbers."""

    stage: str
    at: float
    verdict: Verdict
    candidate_samples: float = 0.0
    stable_samples: float = 0.0
    gates: list[GateStatus] = Field(default_factory=list)
    dry_run: list[str] = Field(default_factory=list, description="what the dry-run gates would decide")

    def lines(self) -> list[str]:
        """One line per gate, with its last measurement's numbers."""
        out = []
        for g in self.gates:
            text = g.last.summary() if g.last is not None else f"{g.gate} {g.verdict.value}: not measured"
            out.append(f"{text} ({g.reason})" if g.reason else text)
        return out


class RolloutStatus(BaseModel):
    """Everything about one rollout: the ``status`` query's answer and the continue-as-new payload."""

    config_key: str
    candidate_version: int
    stable_version: int | None = None
    requested_by: str = "unknown"
    reason: str = ""
    plan: Plan
    salt: str = ""
    state: RolloutState = "running"
    started_at: float = 0.0
    stage_index: int = 0
    applied_stage: int = -1
    stage_started_at: float | None = None
    last_analysis_at: float | None = None
    counters: dict[str, GateCounters] = Field(
        default_factory=dict, description="the current stage's running counters per gate (never trimmed)")
    reports: list[AnalysisReport] = Field(
        default_factory=list, description=f"the stage's last {MAX_REPORTS} reports (evidence trimmed)")
    measured: int = Field(default=0, description="analyses of the current stage so far")
    last_verdict: VerdictRecord | None = None
    verdicts: list[VerdictRecord] = Field(default_factory=list)
    approval: PendingApproval | None = None
    approved: list[str] = Field(default_factory=list)
    paused_by: str | None = None
    pause_reason: str | None = None
    promote: PromoteRequest | None = None
    stop: StopRequest | None = None
    events: list[Event] = Field(default_factory=list)
    stage_ends: list[StageEnd] = Field(default_factory=list, description="one per stage passed, in order")
    waiting_for: str = ""
    outcome: str = ""
    signals_seen: int = 0
    audit_pending: list[Event] = Field(default_factory=list)
    continued: int = 0
    stage_by: str = Field(default="", description="the approver who opened this stage ('' = none)")
    audit_dropped: int = Field(default=0, description="audit events dropped before they could be written")
    recorded: int = Field(default=0, description="events recorded so far (the list keeps the last "
                                                 "MAX_EVENTS; this count never goes back)")
    logic: int = Field(default=1, description="the workflow logic version this rollout runs (1: before "
                                              "bounded state; new rollouts get LOGIC_VERSION)")

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        """A state carried by an older release: up to 100 reports and no counters (count them), no event
        count (start it from the events it kept)."""
        if isinstance(data, dict) and "recorded" not in data:
            data = {**data, "recorded": len(data.get("events") or [])}
        if isinstance(data, dict) and "counters" not in data and data.get("reports"):
            reports = [AnalysisReport.model_validate(r) for r in data["reports"]]
            data = {**data, "counters": count_reports(reports), "measured": len(reports),
                    "reports": reports[-MAX_REPORTS:]}
        return data

    @property
    def stage(self) -> str:
        """The current stage's name."""
        return self.plan.stages[self.stage_index].name

    @property
    def terminal(self) -> bool:
        """Whether the rollout has finished (or is compensating)."""
        return self.state in TERMINAL_STATES

    def record(self, event: Event) -> None:
        """Append an event (bounded), and queue it for the registry audit log when it asks."""
        if not event.stage:
            event.stage = self.stage
        if len(event.detail) > MAX_DETAIL:
            event = event.model_copy(update={"detail": event.detail[:MAX_DETAIL - 1] + "…"})
        self.events.append(event)
        del self.events[:-MAX_EVENTS]
        self.recorded += 1
        if event.audit:
            self.audit_pending.append(event)
            dropped = len(self.audit_pending) - MAX_AUDIT_PENDING
            if dropped > 0:  # bounded: the flush writes an ``audit_gap`` event with the count
                del self.audit_pending[:dropped]
                self.audit_dropped += dropped

    def add_report(self, report: AnalysisReport) -> None:
        """Count the report on each gate's running counters; keep only the last few reports, trimmed."""
        for m in report.measurements:
            self.counters.setdefault(m.gate, GateCounters(gate=m.gate)).add(m)
        self.reports.append(report.model_copy(
            update={"measurements": [m.compact(queries=False) for m in report.measurements]}))
        del self.reports[:-MAX_REPORTS]
        self.measured += 1
        self.last_analysis_at = report.at

    def start_stage(self, index: int, at: float) -> None:
        """Stage ``index`` is applied: its clock starts and its counters start from zero."""
        self.applied_stage, self.stage_started_at, self.last_analysis_at = index, at, None
        self.reports, self.counters, self.measured = [], {}, 0

    def add_verdict(self, record: VerdictRecord) -> None:
        """Keep the verdict history (bounded)."""
        self.last_verdict = record.model_copy(update={"gates": [  # its queries are in the counters
            g.model_copy(update={"last": g.last.compact(queries=False) if g.last else None})
            for g in record.gates]})
        self.verdicts.append(record.model_copy(update={"gates": [  # the history keeps the gates' counts;
            g.model_copy(update={"last": None}) for g in record.gates]}))  # measurements: the registry
        del self.verdicts[:-MAX_VERDICTS]


def apply_signal(status: RolloutStatus, name: str, payload: Any, now: float) -> bool:
    """Apply one signal to ``status``; returns whether it was accepted. Every signal is recorded.

    Refused (recorded, state unchanged): a payload that does not validate, a signal after the rollout
    finished, an approval, rejection or promotion from someone not in the plan's approvers, an approval
    naming a stage other than the one waiting, an approval when nothing waits.
    """
    status.signals_seen += 1
    model = SIGNALS[name]
    raw = payload if isinstance(payload, dict) else {}
    by = str(raw.get("by", ""))[:200]
    try:
        if not isinstance(payload, dict):
            raise ValueError(f"payload must be a JSON object like {{\"by\": \"alice\"}}, got {payload!r:.80}")
        sig = model.model_validate(payload)
    except (pydantic.ValidationError, ValueError) as exc:
        why = "; ".join(describe(exc)) if isinstance(exc, pydantic.ValidationError) else str(exc)
        status.record(Event(at=now, action=name, by=by, accepted=False, detail=f"invalid payload: {why}"))
        return False
    extra = sorted(set(payload) - set(model.model_fields))
    note = f" (ignored unknown field(s): {', '.join(extra)})" if extra else ""

    def refuse(why: str, audit: bool = False) -> bool:
        status.record(Event(at=now, action=name, by=sig.by, accepted=False, detail=why + note, audit=audit))
        return False

    def accept(detail: str = "") -> bool:
        status.record(Event(at=now, action=name, by=sig.by, accepted=True, detail=detail + note, audit=True))
        return True

    if status.terminal or status.stop is not None:
        return refuse(f"the rollout is already {status.stop.kind if status.stop else status.state}")
    stage = status.stage
    if isinstance(sig, Approve | Promote | Reject) and not status.plan.may_approve(sig.by):
        return refuse(f"{sig.by!r} is not an approver of this plan ({', '.join(status.plan.approvers)})",
                      audit=True)
    if isinstance(sig, Approve):
        if status.approval is None:
            return refuse(f"nothing awaits approval (stage {stage!r} is {status.waiting_for or 'running'})")
        if sig.stage is not None and sig.stage != status.approval.stage:
            return refuse(f"approval names stage {sig.stage!r} but {status.approval.stage!r} is waiting",
                          audit=True)
        if status.approval.stage not in status.approved:
            status.approved.append(status.approval.stage)
        comment = f": {sig.comment}" if sig.comment else ""
        return accept(f"approved stage {status.approval.stage!r}{comment}")
    if isinstance(sig, Reject | Abort):
        kind: Literal["reject", "abort"] = "reject" if isinstance(sig, Reject) else "abort"
        status.stop = StopRequest(kind=kind, by=sig.by, reason=sig.reason)
        return accept(sig.reason)
    if isinstance(sig, Pause):
        if status.paused_by is not None:
            return refuse(f"already paused by {status.paused_by}")
        status.paused_by, status.pause_reason = sig.by, sig.reason
        return accept(sig.reason or "")
    if isinstance(sig, Resume):
        if status.paused_by is None:
            return refuse("not paused")
        status.paused_by = status.pause_reason = None
        return accept()
    assert isinstance(sig, Promote)
    status.promote = PromoteRequest(by=sig.by, stage=stage, full=sig.full)
    return accept("promote to stable now" if sig.full else f"skip the rest of stage {stage!r}")


__all__ = [
    "LOGIC_VERSION",
    "MAX_REPORTS",
    "SIGNALS",
    "TERMINAL_STATES",
    "Abort",
    "Approve",
    "Event",
    "Pause",
    "PendingApproval",
    "Promote",
    "PromoteRequest",
    "Reject",
    "Resume",
    "RolloutState",
    "RolloutStatus",
    "StageEnd",
    "StopRequest",
    "VerdictRecord",
    "apply_signal",
]
