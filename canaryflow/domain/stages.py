"""The stage machine: given the plan, the rollout's state, the stage's verdict and the time, what next.

Pure, like argo-rollouts' ``utils/replicaset/canary.go``: the workflow asks :func:`decide` and carries the
action out (an activity, a durable wait, a state change), then asks again. Order of precedence:

1. a reject/abort/cancel → :class:`Rollback`
2. the stage's exposure is not applied yet → :class:`ApplyStage`
3. a gate FAILed (or ERRORed past its limit) → :class:`Rollback` — even while paused
4. ``promote --full`` → :class:`PromoteCandidate`; ``promote`` → :class:`Advance` past this stage
5. an analysis is due → :class:`Measure` (also while paused and while awaiting approval)
6. paused → :class:`Wait`
7. awaiting approval: approved → advance; timed out → rollback or :class:`Hold` per plan
8. min duration, min samples and gates met → :class:`AwaitApproval` if required, else advance
9. max duration reached still inconclusive → per ``on_inconclusive``: rollback, ask a human, or extend
10. otherwise → :class:`Wait` for the next analysis or the end of the minimum duration
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from canaryflow.domain.analysis import GateStatus, stage_verdict
from canaryflow.domain.gates import Verdict
from canaryflow.domain.plan import Plan, format_duration
from canaryflow.domain.rollout_status import RolloutStatus, VerdictRecord


@dataclass(frozen=True)
class ApplyStage:
    """Apply stage ``index``'s exposure to the registry."""

    index: int


@dataclass(frozen=True)
class Measure:
    """Run the analysis activity for the current stage."""

    index: int


@dataclass(frozen=True)
class Wait:
    """Sleep until ``until`` (epoch seconds; None = until a signal) or a signal arrives."""

    until: float | None
    what: str


@dataclass(frozen=True)
class AwaitApproval:
    """Ask for approval of ``stage`` (from ``since`` until ``deadline``); wake at ``until`` to measure."""

    stage: str
    deadline: float
    until: float | None
    why: str


@dataclass(frozen=True)
class Hold:
    """The approval timed out and the plan says hold: wait for a human, without a deadline."""

    stage: str
    until: float | None


@dataclass(frozen=True)
class Advance:
    """Move to stage ``to``."""

    to: int
    by: str = "gates"


@dataclass(frozen=True)
class PromoteCandidate:
    """The candidate becomes stable; the rollout completes."""

    by: str


@dataclass(frozen=True)
class Rollback:
    """Restore stable and end: ``outcome`` is rolled_back or aborted."""

    outcome: str
    reason: str
    evidence: list[str] = field(default_factory=list)


Action = ApplyStage | Measure | Wait | AwaitApproval | Hold | Advance | PromoteCandidate | Rollback


@dataclass(frozen=True)
class Assessment:
    """What the current stage's analysis reports amount to."""

    verdict: Verdict
    gates: list[GateStatus]
    candidate_samples: float = 0.0
    stable_samples: float = 0.0
    measured: bool = False

    def record(self, stage: str, at: float) -> VerdictRecord:
        """This assessment as a history entry."""
        return VerdictRecord(stage=stage, at=at, verdict=self.verdict,
                             candidate_samples=self.candidate_samples,
                             stable_samples=self.stable_samples, gates=self.gates)


def assess(plan: Plan, status: RolloutStatus) -> Assessment:
    """Combine the current stage's reports under its gates (no gates: PASS on time and samples alone)."""
    gates = plan.gates_for(status.stage_index)
    reports = status.reports
    last = reports[-1] if reports else None
    samples = (last.candidate_samples, last.stable_samples) if last else (0.0, 0.0)
    if not gates:
        return Assessment(Verdict.PASS, [], *samples, measured=last is not None)
    verdict, statuses = stage_verdict(gates, reports)
    return Assessment(verdict, statuses, *samples, measured=last is not None)


def _evidence(assessment: Assessment) -> list[str]:
    lines = []
    for g in assessment.gates:
        if g.verdict in (Verdict.FAIL, Verdict.ERROR, Verdict.INCONCLUSIVE, Verdict.NODATA):
            text = g.last.summary() if g.last is not None else f"{g.gate} {g.verdict.value}: not measured"
            lines.append(f"{text} ({g.reason})" if g.reason else text)
    return lines


def _next(plan: Plan, index: int, by: str) -> Advance | PromoteCandidate:
    return PromoteCandidate(by) if index == len(plan.stages) - 1 else Advance(index + 1, by)


def decide(plan: Plan, status: RolloutStatus, assessment: Assessment, now: float) -> Action:
    """The next action for the rollout (see the module docstring for the order of precedence)."""
    i = status.stage_index
    stage = plan.stages[i]
    if status.stop is not None:
        outcome = "rolled_back" if status.stop.kind == "reject" else "aborted"
        verb = {"reject": "rejected", "abort": "aborted", "cancel": "cancelled"}[status.stop.kind]
        return Rollback(outcome, f"stage {stage.name}: {verb} by {status.stop.by}: {status.stop.reason}",
                        _evidence(assessment))
    if status.applied_stage != i or status.stage_started_at is None:
        return ApplyStage(i)
    if assessment.verdict in (Verdict.FAIL, Verdict.ERROR):
        what = "gate failed" if assessment.verdict is Verdict.FAIL else "analysis kept erroring"
        return Rollback("rolled_back", f"stage {stage.name}: {what}", _evidence(assessment))
    if status.promote is not None and status.promote.full:
        return PromoteCandidate(status.promote.by)
    if status.promote is not None and status.promote.stage == stage.name:
        return _next(plan, i, status.promote.by)

    gates = plan.gates_for(i)
    measures = bool(gates) or stage.min_samples > 0
    interval = plan.analysis_interval.total_seconds()
    next_measure = (status.last_analysis_at or status.stage_started_at) + interval
    if measures and now >= next_measure:
        return Measure(i)
    wake = next_measure if measures else None
    if status.paused_by is not None:
        return Wait(wake, f"paused by {status.paused_by}")

    pending = status.approval if status.approval is not None and status.approval.stage == stage.name else None
    if pending is not None:
        if stage.name in status.approved:
            approver = next(
                (e.by for e in reversed(status.events) if e.action == "approve" and e.accepted), ""
            )
            return _next(plan, i, approver or "approval")
        if pending.held:
            return Hold(stage.name, wake)
        if now >= pending.deadline:
            if plan.on_approval_timeout == "rollback":
                return Rollback("rolled_back", f"stage {stage.name}: no approval within "
                                f"{format_duration(plan.approval_timeout)}", _evidence(assessment))
            return Hold(stage.name, wake)
        return AwaitApproval(stage.name, pending.deadline, _min(pending.deadline, wake), pending.why)

    elapsed = now - status.stage_started_at
    min_left = stage.min_duration.total_seconds() - elapsed
    samples_ok = assessment.candidate_samples >= stage.min_samples
    gates_ok = not gates or assessment.verdict is Verdict.PASS
    deadline = now + plan.approval_timeout.total_seconds()
    if min_left <= 0 and samples_ok and gates_ok:
        if stage.approval == "required":
            return AwaitApproval(stage.name, deadline, _min(deadline, wake), "stage passed its gates")
        return _next(plan, i, "gates")
    if stage.max_duration is not None and elapsed >= stage.max_duration.total_seconds():
        why = (f"still {assessment.verdict.value} with {assessment.candidate_samples:g}/{stage.min_samples} "
               f"samples at its max duration {format_duration(stage.max_duration)}")
        if plan.on_inconclusive == "rollback":
            return Rollback("rolled_back", f"stage {stage.name}: {why}", _evidence(assessment))
        if plan.on_inconclusive == "wait_for_approval":
            return AwaitApproval(stage.name, deadline, _min(deadline, wake), why)
    waits = []
    if min_left > 0:
        waits.append(f"min duration ({format_duration_s(min_left)} left)")
    if not samples_ok:
        waits.append(f"samples {assessment.candidate_samples:g}/{stage.min_samples}")
    if not gates_ok:
        waits.append(f"gates {assessment.verdict.value}")
    until = _min(status.stage_started_at + stage.min_duration.total_seconds() if min_left > 0 else None, wake)
    return Wait(until, ", ".join(waits) or "next analysis")


def format_duration_s(seconds: float) -> str:
    """Seconds as a plan duration string."""
    return format_duration(timedelta(seconds=round(seconds)))


def _min(a: float | None, b: float | None) -> float | None:
    values = [v for v in (a, b) if v is not None]
    return min(values) if values else None


__all__ = [
    "Action",
    "Advance",
    "ApplyStage",
    "Assessment",
    "AwaitApproval",
    "Hold",
    "Measure",
    "PromoteCandidate",
    "Rollback",
    "Wait",
    "assess",
    "decide",
]
