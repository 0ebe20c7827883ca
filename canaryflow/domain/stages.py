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
9. a gate past its ``inconclusive_limit`` (held INCONCLUSIVE: its counters never forget, so it cannot pass
   by itself) → per ``on_inconclusive``: rollback, or ask a human (``extend``: without a deadline)
10. max duration reached still inconclusive → per ``on_inconclusive``: rollback, ask a human, or extend
    (``extend`` keeps measuring and asks too: the gates may still pass it, a human may decide sooner)
11. no max duration, and still not passing long after the min duration → ask a human (the gates may still
    pass it): a stage never waits unseen
12. otherwise → :class:`Wait` for the next analysis or the end of the minimum duration

Rollouts started before bounded state (``status.logic == 1``) keep the old rules for 9–11 and for
dry-run-only stages (see ``docs/operations.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from canaryflow.domain.analysis import GateStatus, RunSummary, dry_run_summary, final, stage_verdict
from canaryflow.domain.gates import Gate, Verdict
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
    """Ask for approval of ``stage`` (until ``deadline``; None: no deadline); wake at ``until`` to measure.

    ``blocking=False``: a decision is asked, but the stage's gates may still pass it by themselves.
    """

    stage: str
    deadline: float | None
    until: float | None
    why: str
    blocking: bool = True


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
    all_measured: bool = False  # every gate (dry-run ones too) measured at least once
    held: list[str] = field(default_factory=list)  # deciding gates past their inconclusive limit
    dry_run: RunSummary = field(default_factory=RunSummary)

    def record(self, stage: str, at: float) -> VerdictRecord:
        """This assessment as a history entry."""
        return VerdictRecord(stage=stage, at=at, verdict=self.verdict,
                             candidate_samples=self.candidate_samples,
                             stable_samples=self.stable_samples, gates=self.gates,
                             dry_run=dry_run_lines(self.gates))


def dry_run_lines(gates: list[GateStatus]) -> list[str]:
    """One line per dry-run gate: what it would have decided (it never decides)."""
    would = {Verdict.FAIL: "would roll back", Verdict.ERROR: "would roll back (errors)",
             Verdict.PASS: "would pass"}
    return [f"{g.gate} (dry run) {would.get(g.verdict, 'would wait')}: {g.verdict.value}"
            + (f" ({g.reason})" if g.reason else "") for g in gates if g.dry_run]


def assess(plan: Plan, status: RolloutStatus) -> Assessment:
    """Combine the current stage's counters under its gates (no gates: PASS on time and samples alone)."""
    gates = plan.gates_for(status.stage_index)
    reports = status.reports
    last = reports[-1] if reports else None
    samples = (last.candidate_samples, last.stable_samples) if last else (0.0, 0.0)
    if not gates:
        return Assessment(Verdict.PASS, [], *samples, measured=last is not None, all_measured=True)
    verdict, statuses = stage_verdict(gates, status.counters)
    return Assessment(verdict, statuses, *samples, measured=last is not None,
                      all_measured=all(g.label in status.counters for g in gates),
                      held=[f"{s.gate}: {s.reason}" for s in statuses if s.held and not s.dry_run],
                      dry_run=dry_run_summary(statuses))


def gates_to_measure(plan: Plan, status: RolloutStatus, now: float) -> list[Gate]:
    """The current stage's gates that still measure now: not final (count reached, a limit passed) and past
    their ``initial_delay``."""
    start = status.stage_started_at if status.stage_started_at is not None else now
    return [g for g in plan.gates_for(status.stage_index)
            if not final(g, status.counters.get(g.label)) and now >= start + g.initial_delay.total_seconds()]


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
    v2 = status.logic >= 2
    interval = plan.analysis_interval.total_seconds()
    next_measure = (status.last_analysis_at or status.stage_started_at) + interval
    if v2:
        open_gates = [g for g in gates if not final(g, status.counters.get(g.label))]
        measures = bool(open_gates) or stage.min_samples > 0
        if open_gates:  # the first measurement waits for the earliest initial_delay
            delay = min(g.initial_delay.total_seconds() for g in open_gates)
            next_measure = max(next_measure, status.stage_started_at + delay)
    else:
        measures = bool(gates) or stage.min_samples > 0
    if measures and now >= next_measure:
        return Measure(i)
    wake = next_measure if measures else None
    if status.paused_by is not None:
        return Wait(wake, f"paused by {status.paused_by}")

    elapsed = now - status.stage_started_at
    min_left = stage.min_duration.total_seconds() - elapsed
    samples_ok = assessment.candidate_samples >= stage.min_samples
    gates_ok = not gates or assessment.verdict is Verdict.PASS
    if v2:  # dry-run gates too: a stage measures every gate before it passes
        gates_ok = gates_ok and assessment.all_measured
    passing = min_left <= 0 and samples_ok and gates_ok and not (v2 and assessment.held)
    deadline = now + plan.approval_timeout.total_seconds()

    pending = status.approval if status.approval is not None and status.approval.stage == stage.name else None
    if pending is not None:
        if stage.name in status.approved:
            approver = next(
                (e.by for e in reversed(status.events) if e.action == "approve" and e.accepted), ""
            )
            return _next(plan, i, approver or "approval")
        if not pending.blocking:
            if passing:
                return _next(plan, i, "gates")
            if assessment.held:  # it can no longer pass by itself: the decision is needed now
                return _held(plan, stage.name, assessment, deadline, wake)
            return AwaitApproval(stage.name, None, wake, pending.why, blocking=False)
        if pending.held:
            return Hold(stage.name, wake)
        if pending.deadline is None:
            return AwaitApproval(stage.name, None, wake, pending.why)
        if now >= pending.deadline:
            if plan.on_approval_timeout == "rollback":
                return Rollback("rolled_back", f"stage {stage.name}: no approval within "
                                f"{format_duration(plan.approval_timeout)}", _evidence(assessment))
            return Hold(stage.name, wake)
        return AwaitApproval(stage.name, pending.deadline, _min(pending.deadline, wake), pending.why)

    if passing:
        if stage.approval == "required":
            return AwaitApproval(stage.name, deadline, _min(deadline, wake), "stage passed its gates")
        return _next(plan, i, "gates")
    if v2 and assessment.held:
        return _held(plan, stage.name, assessment, deadline, wake)
    seen = f"{assessment.candidate_samples:g}"
    state = (f"{assessment.verdict.value} with {seen}/{stage.min_samples} candidate samples"
             if assessment.candidate_samples < stage.min_samples
             else f"{assessment.verdict.value} after {seen} candidate samples")
    if stage.max_duration is not None and elapsed >= stage.max_duration.total_seconds():
        why = f"still {state} at its max duration {format_duration(stage.max_duration)}"
        if plan.on_inconclusive == "rollback":
            return Rollback("rolled_back", f"stage {stage.name}: {why}", _evidence(assessment))
        if plan.on_inconclusive == "wait_for_approval":
            return AwaitApproval(stage.name, deadline, _min(deadline, wake), why)
        if v2:
            return AwaitApproval(stage.name, None, wake, f"{why}; extended (plan: extend): the gates may "
                                 "still pass it — approve or promote to go on, reject to roll back",
                                 blocking=False)
    if v2 and stage.max_duration is None and measures and elapsed >= _ask_after(plan, i):
        why = (f"still {state} {format_duration_s(elapsed - stage.min_duration.total_seconds())} past "
               "its min duration, and it has no max_duration: the gates may still pass it — approve or "
               "promote to go on, reject to roll back")
        return AwaitApproval(stage.name, None, wake, why, blocking=False)
    waits = []
    if min_left > 0:
        waits.append(f"min duration ({format_duration_s(min_left)} left)")
    if not samples_ok:
        waits.append(f"samples {assessment.candidate_samples:g}/{stage.min_samples}")
    if not gates_ok:
        waits.append(f"gates {assessment.verdict.value}")
    until = _min(status.stage_started_at + stage.min_duration.total_seconds() if min_left > 0 else None, wake)
    return Wait(until, ", ".join(waits) or "next analysis")


def _ask_after(plan: Plan, index: int) -> float:
    """A stage without max_duration asks for a decision once it is still not passing this long after its
    start: its min duration, then as long again (at least 10 analysis intervals)."""
    stage = plan.stages[index]
    minimum = stage.min_duration.total_seconds()
    return minimum + max(minimum, 10 * plan.analysis_interval.total_seconds())


def _held(plan: Plan, stage: str, assessment: Assessment, deadline: float, wake: float | None) -> Action:
    """A gate past its inconclusive limit: the plan's policy, or a human, decides — never the clock."""
    why = f"held INCONCLUSIVE ({'; '.join(assessment.held)}): it cannot pass by itself"
    if plan.on_inconclusive == "rollback":
        return Rollback("rolled_back", f"stage {stage}: {why}", _evidence(assessment))
    if plan.on_inconclusive == "wait_for_approval":
        return AwaitApproval(stage, deadline, _min(deadline, wake), f"{why} — approve to go on, reject to "
                             "roll back")
    return AwaitApproval(stage, None, wake, f"{why} — approve to go on, reject to roll back (plan: extend, "
                         "no deadline)")


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
    "dry_run_lines",
    "gates_to_measure",
]
