"""What a finished stage and a promoted rollout say happened, in words (pure).

The workflow records a :class:`~canaryflow.domain.rollout_status.StageEnd` when a stage ends
(:func:`end_stage`), and the promotion's outcome, audit reason and notification read
:func:`promotion_outcome`: which stages passed their gates, which a human approved (after they passed, or
while they were still inconclusive at their cap), which were skipped by a promote signal — never "promoted
by gates" when people decided.
"""

from __future__ import annotations

from itertools import groupby

from canaryflow.domain.gates import Verdict
from canaryflow.domain.rollout_status import RolloutStatus, StageEnd


def end_stage(status: RolloutStatus, by: str) -> StageEnd:
    """How the current stage ends now that the stage machine advances past it (``by``: who or ``gates``)."""
    stage = status.stage
    record = status.last_verdict
    verdict = record.verdict if record is not None and record.stage == stage else None
    if status.promote is not None and status.promote.stage == stage:
        return StageEnd(stage=stage, how="promoted", by=status.promote.by, verdict=verdict)
    approval = status.approval
    if approval is not None and approval.stage == stage and stage in status.approved:
        return StageEnd(stage=stage, how="approved", by=by, verdict=verdict, why=approval.why)
    return StageEnd(stage=stage, how="gates", by="gates", verdict=verdict)


def _names(ends: list[StageEnd]) -> str:
    return ", ".join(e.stage for e in ends)


def _kind(end: StageEnd) -> tuple[str, str, str]:
    if end.how != "approved":
        return end.how, end.by, ""
    if end.verdict is None or end.verdict is Verdict.PASS:
        return end.how, end.by, "passed"
    return end.how, end.by, "no data" if end.verdict is Verdict.NODATA else end.verdict.value.lower()


def describe_ends(ends: list[StageEnd]) -> list[str]:
    """``["shadow passed its gates", "internal, beta approved by alice while inconclusive"]``."""
    out = []
    for (how, by, state), group in groupby(ends, key=_kind):
        items = list(group)
        one = len(items) == 1
        names = _names(items)
        if how == "gates":
            out.append(f"{names} passed {'its' if one else 'their'} gates")
        elif how == "promoted":
            out.append(f"{names} skipped by {by} (promote)")
        elif state == "passed":
            out.append(f"{names} passed {'its' if one else 'their'} gates and {'was' if one else 'were'} "
                       f"approved by {by}")
        else:
            out.append(f"{names} approved by {by} while {state}")
    return out


def promotion_outcome(status: RolloutStatus, by: str) -> str:
    """The promoted rollout's outcome: ``v2 is stable: shadow passed its gates; internal, beta, canary-5,
    canary-10 approved by alice while inconclusive``."""
    full = {s.name for s in status.plan.stages if s.kind == "full"}
    ends = [e for e in status.stage_ends if e.stage not in full]
    parts = describe_ends(ends)
    if status.promote is not None and status.promote.full:
        parts.append(f"{status.promote.by} promoted it to stable during stage {status.stage}")
    elif not ends and by != "gates":
        parts.append(f"promoted by {by}")
    head = f"v{status.candidate_version} is stable"
    return f"{head}: {'; '.join(parts)}" if parts else head


__all__ = ["describe_ends", "end_stage", "promotion_outcome"]
