"""What the workflow asks the analysis activity, what it gets back, and how measurements add up to a stage
verdict under Argo-style limits counted on running counters.

The activity measures every gate once per interval and returns an :class:`AnalysisReport`. The workflow
folds each measurement into the gate's :class:`GateCounters` (:meth:`GateCounters.add`) — running counters
that never forget, whatever the rollout's length (Argo Rollouts once counted from a trimmed list and forgot
old failures; its PR #191 added the counters) — and keeps only the last measurement of each gate; the full
evidence goes to the registry. :func:`metric_phase` is Argo's ``assessMetricStatus`` on those counters;
:func:`stage_verdict` combines the gates (dry-run gates are counted and summarised but never decide).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from canaryflow.domain.gates import Gate, Measurement, Verdict

Phase = Literal["Pending", "Running", "Successful", "Failed", "Inconclusive", "Error"]
"""A gate's phase over the stage, as Argo's ``AnalysisPhase`` of a metric."""


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
    interval: float | None = Field(
        default=None, description="seconds: the analysis interval ($window of custom gates with "
                                  "window: interval; the strata the built-in tests compare within, 60 s "
                                  "when None); None = the whole stage for custom gates")
    args: dict[str, str] = Field(default_factory=dict, description="the plan's args ({{args.NAME}})")
    segments: list[str] = Field(default_factory=list,
                                description="a segments stage's segments: stable is compared within them too")


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


class GateCounters(BaseModel):
    """One gate's running counters over the stage (Argo's ``MetricResult``), and its last measurement.

    ``count`` counts the measurements that are not ERROR (as Argo). NODATA counts as inconclusive (and in
    ``nodata``) but — unlike an INCONCLUSIVE — does not end a run of errors: a Prometheus that alternates
    between errors and empty answers still reaches the consecutive-error limit.
    """

    model_config = ConfigDict(extra="forbid")

    gate: str
    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    nodata: int = 0
    error: int = 0
    consecutive_errors: int = 0
    consecutive_successes: int = 0
    last: Measurement | None = None

    def add(self, m: Measurement) -> None:
        """Count one measurement (Argo's ``runMeasurements`` switch, plus NODATA)."""
        v = m.verdict
        if v is Verdict.ERROR:
            self.error += 1
            self.consecutive_errors += 1
            self.consecutive_successes = 0
        else:
            self.count += 1
            if v is Verdict.PASS:
                self.successful += 1
                self.consecutive_successes += 1
            else:
                self.consecutive_successes = 0
                if v is Verdict.FAIL:
                    self.failed += 1
                else:
                    self.inconclusive += 1
                    self.nodata += v is Verdict.NODATA
            if v is not Verdict.NODATA:
                self.consecutive_errors = 0
        self.last = m.compact()


class GateStatus(BaseModel):
    """A gate's counters over the stage so far, and what they amount to."""

    model_config = ConfigDict(extra="forbid")

    gate: str
    verdict: Verdict
    phase: Phase = "Running"
    failures: int = 0
    inconclusives: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    consecutive_successes: int = 0
    measurements: int = 0
    dry_run: bool = False
    held: bool = Field(default=False, description="past its inconclusive limit: needs a decision")
    last: Measurement | None = None
    reason: str = ""


def failure_inconclusive_or_error(gate: Gate, c: GateCounters) -> tuple[Phase | None, str]:
    """Argo's ``assessMetricFailureInconclusiveOrError``: a limit passed, and which (the last one checked
    wins, as in Argo: error over inconclusive over failed)."""
    phase: Phase | None = None
    message = ""
    if gate.failure_limit >= 0 and c.failed > gate.failure_limit:
        phase, message = "Failed", f"{c.failed} failed measurement(s) > failure_limit {gate.failure_limit}"
    if gate.inconclusive_limit is not None and c.inconclusive > gate.inconclusive_limit:
        phase = "Inconclusive"
        message = (f"{c.inconclusive} inconclusive measurement(s) > inconclusive_limit "
                   f"{gate.inconclusive_limit}")
    if c.consecutive_errors > gate.consecutive_error_limit:
        phase = "Error"
        message = (f"{c.consecutive_errors} consecutive errors > consecutive_error_limit "
                   f"{gate.consecutive_error_limit}")
    return phase, message


def metric_phase(gate: Gate, c: GateCounters, terminating: bool = False) -> tuple[Phase, str]:
    """Argo's ``assessMetricStatus`` on the running counters, with one deliberate difference: when
    ``count`` is reached and only ``failure_limit`` applies, the gate is Successful only if its last
    measurement passed (else Inconclusive) — no data, or a tolerated failure, is never a pass."""
    if c.last is None:
        return ("Successful" if terminating else "Pending"), ""
    phase, message = failure_inconclusive_or_error(gate, c)
    if phase is not None:
        return phase, message
    csl = gate.consecutive_success_limit
    if csl > 0 and c.consecutive_successes >= csl:
        return "Successful", f"{c.consecutive_successes} passes in a row (consecutive_success_limit {csl})"
    if gate.count is not None and c.count >= gate.count:
        failure_applicable = gate.failure_limit >= 0
        if failure_applicable and csl > 0:
            return "Inconclusive", (f"count {gate.count} reached without {csl} passes in a row, within "
                                    f"failure_limit {gate.failure_limit}")
        if csl > 0:
            return "Failed", f"count {gate.count} reached without {csl} passes in a row"
        if c.last.verdict is not Verdict.PASS:
            return "Inconclusive", f"count {gate.count} reached, last measurement {c.last.verdict.value}"
        return "Successful", f"count {gate.count} reached"
    return ("Successful" if terminating else "Running"), ""


_RUNNING = {
    # A gate still measuring: its last measurement decides, a tolerated FAIL or ERROR keeps measuring.
    Verdict.PASS: Verdict.PASS,
    Verdict.FAIL: Verdict.INCONCLUSIVE,
    Verdict.ERROR: Verdict.INCONCLUSIVE,
    Verdict.INCONCLUSIVE: Verdict.INCONCLUSIVE,
    Verdict.NODATA: Verdict.NODATA,
}


def gate_status(gate: Gate, c: GateCounters | None) -> GateStatus:
    """What one gate's counters amount to for the stage."""
    c = c or GateCounters(gate=gate.label)
    phase, message = metric_phase(gate, c)
    base = {"gate": gate.label, "phase": phase, "failures": c.failed, "inconclusives": c.inconclusive,
            "errors": c.error, "consecutive_errors": c.consecutive_errors,
            "consecutive_successes": c.consecutive_successes, "measurements": c.count + c.error,
            "dry_run": gate.dry_run, "last": c.last, "reason": message}
    if phase == "Failed":
        return GateStatus(verdict=Verdict.FAIL, **base)
    if phase == "Error":
        return GateStatus(verdict=Verdict.ERROR, **base)
    if phase == "Inconclusive":
        return GateStatus(verdict=Verdict.INCONCLUSIVE, held=True, **base)
    if phase == "Successful":
        return GateStatus(verdict=Verdict.PASS, **base)
    if phase == "Pending" or c.last is None:
        return GateStatus(verdict=Verdict.NODATA, **base)
    verdict = _RUNNING[c.last.verdict]
    if verdict is Verdict.PASS and (gate.consecutive_success_limit > 0 or gate.count is not None):
        verdict = Verdict.INCONCLUSIVE  # it passes when its success streak or count says so, not before
        needs = (f"{c.consecutive_successes}/{gate.consecutive_success_limit} passes in a row"
                 if gate.consecutive_success_limit > 0 else f"{c.count}/{gate.count} measurements")
        base["reason"] = f"needs {needs}"
    return GateStatus(verdict=verdict, **base)


def final(gate: Gate, c: GateCounters | None) -> bool:
    """Whether the gate's verdict is final for the stage, so it needs no more measurements: its count or
    success streak completed it, or it failed. A gate held Inconclusive keeps being measured while a human
    decides (a failure meanwhile still rolls back)."""
    return c is not None and metric_phase(gate, c)[0] in ("Successful", "Failed", "Error")


class RunSummary(BaseModel):
    """Argo's ``RunSummary``: how many gates, and how many ended in each phase (running ones only count)."""

    model_config = ConfigDict(extra="forbid")

    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0


def dry_run_summary(statuses: Sequence[GateStatus]) -> RunSummary:
    """What the dry-run gates would have decided (they never decide)."""
    out = RunSummary()
    for s in statuses:
        if not s.dry_run:
            continue
        out.count += 1
        if s.phase == "Failed":
            out.failed += 1
        elif s.phase == "Error":
            out.error += 1
        elif s.phase == "Inconclusive":
            out.inconclusive += 1
        elif s.phase == "Successful":
            out.successful += 1
    return out


def stage_verdict(
    gates: Sequence[Gate], counters: Mapping[str, GateCounters]
) -> tuple[Verdict, list[GateStatus]]:
    """What the stage's counters amount to. Dry-run gates are reported but never decide.

    FAIL if any deciding gate failed past its limit; ERROR if any passed its consecutive-error limit;
    PASS only when every deciding gate passes (its last measurement passed, or its count or success
    streak completed it); NODATA when nothing was measured; otherwise INCONCLUSIVE.
    """
    statuses = [gate_status(g, counters.get(g.label)) for g in gates]
    deciding = [s for s in statuses if not s.dry_run]
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


def count_reports(reports: Sequence[AnalysisReport]) -> dict[str, GateCounters]:
    """Counters from a list of reports (what releases that kept the reports themselves carried)."""
    counters: dict[str, GateCounters] = {}
    for r in reports:
        for m in r.measurements:
            counters.setdefault(m.gate, GateCounters(gate=m.gate)).add(m)
    return counters


__all__ = [
    "AnalysisReport",
    "AnalysisRequest",
    "GateCounters",
    "GateStatus",
    "Phase",
    "RunSummary",
    "count_reports",
    "dry_run_summary",
    "failure_inconclusive_or_error",
    "final",
    "gate_status",
    "metric_phase",
    "stage_verdict",
]
