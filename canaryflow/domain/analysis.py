"""What the workflow asks the analysis activity, what it gets back, and how recorded measurements
add up to a stage verdict under Argo-style limits.

The activity measures every gate once per interval and returns an :class:`AnalysisReport`; the workflow
keeps the reports of the current stage and asks :func:`stage_verdict` what they amount to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from canaryflow.domain.gates import Gate, Measurement, Verdict


class AnalysisRequest(BaseModel):
    """One interval's measurement request: ids and numbers only (histories are visible in the UI)."""

    model_config = ConfigDict(extra="forbid")

    config_key: str
    stable_version: int
    candidate_version: int
    stage: str
    stage_kind: Literal["shadow", "segments", "percent", "full"]
    window_start: float = Field(description="seconds since the epoch: the stage's start")
    gates: list[Gate]
    min_samples: int = 0


class AnalysisReport(BaseModel):
    """Every gate measured once, plus the traffic both variations saw in the window."""

    model_config = ConfigDict(extra="forbid")

    at: float
    measurements: list[Measurement]
    candidate_samples: float = 0.0
    stable_samples: float = 0.0

    def verdict(self) -> Verdict:
        """This interval alone: FAIL beats ERROR beats NODATA beats INCONCLUSIVE beats PASS."""
        deciding = [m.verdict for m in self.measurements if not m.dry_run]
        for v in (Verdict.FAIL, Verdict.ERROR, Verdict.NODATA, Verdict.INCONCLUSIVE):
            if v in deciding:
                return v
        return Verdict.PASS


class GateStatus(BaseModel):
    """A gate's counters over the stage so far, and what they amount to."""

    model_config = ConfigDict(extra="forbid")

    gate: str
    verdict: Verdict
    failures: int = 0
    inconclusives: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    last: Measurement | None = None
    reason: str = ""


def gate_status(gate: Gate, history: Sequence[Measurement]) -> GateStatus:
    """Count one gate's measurements against its limits (failure, inconclusive, consecutive error)."""
    failures = sum(1 for m in history if m.verdict is Verdict.FAIL)
    inconclusives = sum(1 for m in history if m.verdict in (Verdict.INCONCLUSIVE, Verdict.NODATA))
    errors = sum(1 for m in history if m.verdict is Verdict.ERROR)
    consecutive = 0
    for m in reversed(history):
        if m.verdict is not Verdict.ERROR:
            break
        consecutive += 1
    last = history[-1] if history else None
    base = {"gate": gate.label, "failures": failures, "inconclusives": inconclusives, "errors": errors,
            "consecutive_errors": consecutive, "last": last}
    if failures > gate.failure_limit:
        return GateStatus(verdict=Verdict.FAIL, reason=f"{failures} failed measurement(s) > limit "
                          f"{gate.failure_limit}", **base)
    if consecutive > gate.consecutive_error_limit:
        return GateStatus(verdict=Verdict.ERROR, reason=f"{consecutive} consecutive errors > limit "
                          f"{gate.consecutive_error_limit}", **base)
    if gate.inconclusive_limit is not None and inconclusives > gate.inconclusive_limit:
        return GateStatus(verdict=Verdict.INCONCLUSIVE, reason=f"{inconclusives} inconclusive measurement(s) "
                          f"> limit {gate.inconclusive_limit}", **base)
    verdict = last.verdict if last is not None else Verdict.NODATA
    if verdict is Verdict.FAIL:  # tolerated by failure_limit: keep measuring
        verdict = Verdict.INCONCLUSIVE
    if verdict is Verdict.ERROR:  # below the consecutive error limit: keep measuring
        verdict = Verdict.INCONCLUSIVE
    return GateStatus(verdict=verdict, **base)


def stage_verdict(
    gates: Sequence[Gate], reports: Sequence[AnalysisReport]
) -> tuple[Verdict, list[GateStatus]]:
    """What the stage's reports amount to. Dry-run gates are reported but never decide.

    FAIL if any deciding gate failed past its limit; ERROR if any passed its consecutive-error limit;
    PASS only when every deciding gate's last measurement passed; NODATA when nothing was measured;
    otherwise INCONCLUSIVE.
    """
    statuses = []
    for gate in gates:
        history = [m for r in reports for m in r.measurements if m.gate == gate.label]
        statuses.append(gate_status(gate, history))
    deciding = [s for s, g in zip(statuses, gates, strict=True) if not g.dry_run]
    if not deciding:
        return Verdict.PASS, statuses
    verdicts = {s.verdict for s in deciding}
    for v in (Verdict.FAIL, Verdict.ERROR):
        if v in verdicts:
            return v, statuses
    if verdicts == {Verdict.PASS}:
        return Verdict.PASS, statuses
    if verdicts == {Verdict.NODATA}:
        return Verdict.NODATA, statuses
    return Verdict.INCONCLUSIVE, statuses


__all__ = ["AnalysisReport", "AnalysisRequest", "GateStatus", "gate_status", "stage_verdict"]
