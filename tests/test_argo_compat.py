"""Argo Rollouts' own table-driven analysis cases, run against canaryflow's limit counting.

Every case below is ported as data from argoproj/argo-rollouts (commit 9f8d111d, 2026-08-17):
``analysis/analysis_test.go`` (``assessMetricStatus``, ``runMeasurements``, ``assessRunStatus``,
``generateMetricTasks``). Argo's metric fields map to a gate's: ``failureLimit`` → ``failure_limit``,
``inconclusiveLimit`` → ``inconclusive_limit`` (Argo's default 0 is written explicitly: ours is "no count
limit"), ``consecutiveErrorLimit`` → ``consecutive_error_limit``, ``consecutiveSuccessLimit`` →
``consecutive_success_limit``, ``count`` → ``count``, ``initialDelay`` → ``initial_delay``. A metric's
``MetricResult`` counters map to :class:`GateCounters`; ``terminating`` is Argo's second argument.
``docs/argo-compat.md`` lists where canaryflow differs on purpose (none of these cases is one of them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from canaryflow.domain.analysis import (
    GateCounters,
    dry_run_summary,
    failure_inconclusive_or_error,
    metric_phase,
    stage_verdict,
)
from canaryflow.domain.gates import Gate, Measurement, Verdict
from canaryflow.domain.plan import Plan
from canaryflow.domain.rollout_status import RolloutStatus
from canaryflow.domain.stages import gates_to_measure

SRC = "argoproj/argo-rollouts analysis/analysis_test.go"


@dataclass(frozen=True)
class Case:
    """One ``assert.Equal(t, <phase>, assessMetricStatus(metric, result, terminating))`` pair."""

    source: str
    metric: dict[str, Any]
    result: dict[str, int]
    last: str | None  # the last measurement's phase (None: no measurements)
    running: str  # expected with terminating=false
    terminating: str  # expected with terminating=true
    note: str = ""

    @property
    def id(self) -> str:
        return f"{self.source}:{self.note or self.running}"


#: Argo's defaults written as ours: inconclusiveLimit 0 (ours defaults to no limit).
ARGO = {"metric": "custom", "name": "success-rate", "query": "x", "success": "result >= 0",
        "inconclusive_limit": 0}
FLCSL = {"failure_limit": 4, "consecutive_success_limit": 4}

CASES = [
    Case("TestAssessMetricStatusNoMeasurements", {}, {}, None, "Pending", "Successful"),
    Case("TestAssessMetricStatusFailureLimit", {"failure_limit": 2}, {"failed": 3, "count": 3}, "Failed",
         "Failed", "Failed", "limit 2"),
    Case("TestAssessMetricStatusFailureLimit", {"failure_limit": 3}, {"failed": 3, "count": 3}, "Failed",
         "Running", "Successful", "limit 3"),
    *(Case("TestAssessMetricStatusConsecutiveSuccessLimit",
           {"failure_limit": -1, "consecutive_success_limit": csl, **({"count": n} if n else {})},
           {"failed": 3, "successful": 4, "consecutive_successes": 3, "count": 7}, "Failed", run, term,
           f"csl {csl} count {n}")
      for csl, n, run, term in [(3, None, "Successful", "Successful"), (5, None, "Running", "Successful"),
                                (5, 7, "Failed", "Failed"), (3, 7, "Successful", "Successful"),
                                (3, 9, "Successful", "Successful"), (5, 9, "Running", "Successful")]),
    *(Case("TestAssessMetricStatusFailureLimitAndConsecutiveSuccessLimit",
           {**FLCSL, **({"count": n} if n else {})},
           {"failed": f, "successful": s, "count": c, "consecutive_successes": cs}, "Failed", run, term,
           f"count {n}: f{f} s{s} c{c} cs{cs}")
      for n, f, s, c, cs, run, term in [
          (None, 3, 4, 7, 3, "Running", "Successful"),
          (None, 5, 9, 9, 0, "Failed", "Failed"),
          (None, 3, 5, 8, 4, "Successful", "Successful"),
          (None, 5, 5, 10, 4, "Failed", "Failed"),
          (10, 4, 6, 10, 3, "Inconclusive", "Inconclusive"),
          (10, 5, 5, 10, 3, "Failed", "Failed"),
          (10, 4, 6, 10, 4, "Successful", "Successful"),
          (10, 5, 5, 10, 4, "Failed", "Failed"),
          (10, 3, 5, 8, 3, "Running", "Successful"),
          (10, 5, 3, 8, 3, "Failed", "Failed"),
          (10, 3, 5, 8, 4, "Successful", "Successful"),
          (10, 5, 4, 9, 4, "Failed", "Failed"),
      ]),
    Case("TestAssessMetricStatusInconclusiveLimit", {"inconclusive_limit": 2},
         {"inconclusive": 3, "count": 3}, "Inconclusive", "Inconclusive", "Inconclusive", "limit 2"),
    Case("TestAssessMetricStatusInconclusiveLimit", {"inconclusive_limit": 3},
         {"inconclusive": 3, "count": 3}, "Inconclusive", "Running", "Successful", "limit 3"),
    Case("TestAssessMetricStatusConsecutiveErrors", {}, {"consecutive_errors": 5, "count": 5}, "Error",
         "Error", "Error", "5 errors"),
    Case("TestAssessMetricStatusConsecutiveErrors", {}, {"consecutive_errors": 4, "count": 5}, "Error",
         "Running", "Successful", "4 errors"),
    Case("TestAssessMetricStatusCountReached", {"count": 10}, {"successful": 10, "count": 10}, "Successful",
         "Successful", "Successful", "all passed"),
    Case("TestAssessMetricStatusCountReached", {"count": 10},
         {"successful": 5, "inconclusive": 5, "count": 10}, "Successful", "Inconclusive", "Inconclusive",
         "half inconclusive"),
    Case("TestAssessMetricFailureInconclusiveOrError", {}, {"failed": 1}, "Failed", "Failed", "Failed",
         "failed"),
    Case("TestAssessMetricFailureInconclusiveOrError", {}, {"inconclusive": 1}, "Inconclusive",
         "Inconclusive", "Inconclusive", "inconclusive"),
    Case("TestAssessMetricFailureInconclusiveOrError", {}, {"consecutive_errors": 5}, "Error", "Error",
         "Error", "errors"),
]
_VERDICT = {"Successful": Verdict.PASS, "Failed": Verdict.FAIL, "Inconclusive": Verdict.INCONCLUSIVE,
            "Error": Verdict.ERROR}


def _counters(result: dict[str, int], last: str | None) -> GateCounters:
    c = GateCounters(gate="success-rate", **result)
    if last is not None:
        c.last = Measurement(gate="success-rate", verdict=_VERDICT[last], at=0.0)
    return c


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_assess_metric_status(case: Case) -> None:
    gate = Gate.model_validate({**ARGO, **case.metric})
    counters = _counters(case.result, case.last)
    assert metric_phase(gate, counters)[0] == case.running, f"{SRC} {case.source}"
    assert metric_phase(gate, counters, terminating=True)[0] == case.terminating, f"{SRC} {case.source}"


@pytest.mark.parametrize(("measured", "errors", "count"), [
    # TestRunMeasurementsResetConsecutiveErrorCounter: ConsecutiveError 4, Count 4, Error 4, then one more:
    (Verdict.ERROR, 5, 4),  # an error: the streak and the error count grow, count does not
    (Verdict.PASS, 0, 5),  # the loop's other phases (commented out in Argo's test): the streak resets
    (Verdict.FAIL, 0, 5),
    (Verdict.INCONCLUSIVE, 0, 5),
])
def test_run_measurements_reset_consecutive_error_counter(measured: Verdict, errors: int,
                                                         count: int) -> None:
    c = GateCounters(gate="test", consecutive_errors=4, count=4, error=4)
    c.add(Measurement(gate="test", verdict=measured, at=0.0))
    assert c.consecutive_errors == errors and c.count == count
    assert c.error == (5 if measured is Verdict.ERROR else 4)


def test_nodata_never_resets_the_consecutive_error_streak() -> None:
    """Ours, not Argo's (Argo has no NODATA phase): a Prometheus alternating errors and empty answers
    still reaches the error limit."""
    gate = Gate(metric="error_rate", margin=0.1, mode="relative", consecutive_error_limit=2)
    c = GateCounters(gate="error_rate")
    for v in (Verdict.ERROR, Verdict.NODATA, Verdict.ERROR, Verdict.NODATA, Verdict.ERROR):
        c.add(Measurement(gate="error_rate", verdict=v, at=0.0))
    assert c.consecutive_errors == 3 and metric_phase(gate, c)[0] == "Error"


def _gate(name: str, **kw: Any) -> Gate:
    return Gate.model_validate({**ARGO, "name": name, **kw})


def test_assess_run_status_with_only_dry_run_metrics() -> None:
    """TestAssessRunStatusWithOnlyDryRunMetrics: a dry-run metric measured Failed; the run is Successful."""
    gates = [_gate("success-metric", dry_run=True)]
    counters = {"success-metric": _counters({"failed": 1, "count": 1}, "Failed")}
    verdict, statuses = stage_verdict(gates, counters)
    assert verdict is Verdict.PASS and statuses[0].verdict is Verdict.FAIL


def test_assess_run_status_with_mixed_metrics() -> None:
    """TestAssessRunStatusWithMixedMetrics: the deciding metric is past inconclusiveLimit 0 → Inconclusive;
    the dry-run metric's failure changes nothing."""
    gates = [_gate("run-forever"), _gate("success-metric", dry_run=True)]
    counters = {"run-forever": _counters({"inconclusive": 1, "count": 1}, "Inconclusive"),
                "success-metric": _counters({"failed": 1, "count": 1}, "Failed")}
    verdict, statuses = stage_verdict(gates, counters)
    assert verdict is Verdict.INCONCLUSIVE and statuses[0].held
    assert "1 inconclusive measurement(s) > inconclusive_limit 0" in statuses[0].reason


@pytest.mark.parametrize(("phases", "summary"), [
    # TestAssessRunStatusErrorMessageAnalysisPhaseFailInDryRunMode: Count 2, Successful 1, Failed 1
    (["Successful", "Failed"], {"count": 2, "successful": 1, "failed": 1, "inconclusive": 0, "error": 0}),
    # TestAssessRunStatusMultipleFailuresInDryRunMode: Count 2, Failed 2
    (["Failed", "Failed"], {"count": 2, "successful": 0, "failed": 2, "inconclusive": 0, "error": 0}),
])
def test_dry_run_summary(phases: list[str], summary: dict[str, int]) -> None:
    results = {"Successful": ({"successful": 1, "count": 1}, "Successful"),
               "Failed": ({"failed": 1, "count": 1}, "Failed")}
    gates = [_gate(f"m{i}", dry_run=True, count=1) for i in range(len(phases))]
    counters = {f"m{i}": _counters(*results[p]) for i, p in enumerate(phases)}
    verdict, statuses = stage_verdict(gates, counters)
    assert verdict is Verdict.PASS  # dry-run gates never decide
    assert dry_run_summary(statuses).model_dump() == summary
    # and the deciding twins of the same gates fail the stage:
    deciding = [g.model_copy(update={"dry_run": False}) for g in gates]
    assert stage_verdict(deciding, counters)[0] is (Verdict.FAIL if "Failed" in phases else Verdict.PASS)


@pytest.mark.parametrize(("started_ago", "measured"), [(10, 0), (20, 1)])
def test_generate_metric_tasks_honor_initial_delay(started_ago: float, measured: int) -> None:
    """TestGenerateMetricTasksHonorInitialDelay: initialDelay 20s; started 10 s ago → no measurement,
    20 s ago → one. (An unparseable delay, Argo's last case, is refused when the plan is read.)"""
    plan = Plan.model_validate({"stages": [{"name": "s", "kind": "percent", "percent": 5},
                                           {"name": "full", "kind": "full"}],
                                "gates": [{**ARGO, "initial_delay": "20s"}]})
    status = RolloutStatus(config_key="k", candidate_version=2, plan=plan, applied_stage=0,
                           stage_started_at=1000.0)
    assert len(gates_to_measure(plan, status, 1000.0 + started_ago)) == measured
    with pytest.raises(ValueError, match="invalid duration"):
        Gate.model_validate({**ARGO, "initial_delay": "invalid-start-delay"})


def test_failure_inconclusive_or_error_messages_name_the_limit() -> None:
    """TestAssessMetricFailureInconclusiveOrError's messages, in our words (fields as plans write them)."""
    gate = _gate("m")
    assert failure_inconclusive_or_error(gate, GateCounters(gate="m", failed=1)) == (
        "Failed", "1 failed measurement(s) > failure_limit 0")
    assert failure_inconclusive_or_error(gate, GateCounters(gate="m", inconclusive=1)) == (
        "Inconclusive", "1 inconclusive measurement(s) > inconclusive_limit 0")
    assert failure_inconclusive_or_error(gate, GateCounters(gate="m", consecutive_errors=5)) == (
        "Error", "5 consecutive errors > consecutive_error_limit 4")


@dataclass
class Refused:
    fields: dict[str, Any]
    says: str
    extra: dict[str, Any] = field(default_factory=dict)


@pytest.mark.parametrize("case", [
    Refused({"failure_limit": -1}, "needs consecutive_success_limit > 0"),
    Refused({"failure_limit": -2}, "greater than or equal to -1"),
    Refused({"count": 3, "consecutive_success_limit": 4}, "can never be reached in count 3"),
    Refused({"inconclusive_limit": -1}, "greater than or equal to 0"),
    Refused({"query": "sum(x{{{{foo}}}})"}, "unknown placeholder"),
])
def test_limits_that_cannot_work_are_refused(case: Refused) -> None:
    with pytest.raises(ValueError, match=case.says):
        Gate.model_validate({**ARGO, **case.fields})
