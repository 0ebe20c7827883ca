"""The judge: table-driven verdicts, evidence, the condition parser and the sequential bounds."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from canaryflow.domain.conditions import parse_condition
from canaryflow.domain.errors import ValidationFailed
from canaryflow.domain.gates import Gate, Verdict
from canaryflow.domain.judge import (
    error_measurement,
    exceedances,
    judge_custom,
    judge_floor,
    judge_rate,
    judge_ratio,
    nodata_measurement,
)
from canaryflow.domain.sequential import lower_bound, normal_mixture_halfwidth, ratio_bounds, upper_bound

ERR0 = Gate(metric="error_rate", margin=0.5, floor=0.0)  # relative (the default), no floor
ERR_ABS = Gate(metric="error_rate", margin=0.01, mode="absolute", min_samples=500)
ERR_REL = Gate(metric="error_rate", margin=0.5, mode="relative")
COMPLETION = Gate(metric="completion_rate", margin=0.02, mode="absolute")


@pytest.mark.parametrize(
    ("gate", "counts", "verdict"),
    [
        # clear regression: 1 % -> 5 % at a 5 % split
        (ERR0, (20, 400, 76, 7600), Verdict.FAIL),
        (ERR_REL, (30, 600, 114, 11400), Verdict.FAIL),
        (ERR_ABS, (60, 600, 114, 11400), Verdict.FAIL),
        # clear equivalence, enough samples
        (ERR_ABS, (10, 2000, 190, 38000), Verdict.PASS),
        (COMPLETION, (1980, 2000, 37620, 38000), Verdict.PASS),
        # equivalent but below the gate's minimum sample
        (ERR_ABS, (1, 300, 60, 6000), Verdict.INCONCLUSIVE),
        # too little data to tell either way
        (ERR0, (1, 40, 8, 760), Verdict.INCONCLUSIVE),
        (ERR_ABS, (2, 40, 8, 760), Verdict.INCONCLUSIVE),
        (ERR_REL, (0, 100, 0, 1900), Verdict.INCONCLUSIVE),
        # no errors on either side: the candidate passes below the floor (0.1 %) once that is shown
        (ERR_REL, (0, 5000, 0, 95000), Verdict.PASS),
        (ERR0, (0, 5000, 0, 95000), Verdict.INCONCLUSIVE),
        # relative margins can PASS a candidate as good as stable, with enough events
        (ERR_REL, (100, 10000, 1900, 190000), Verdict.PASS),
        # completion collapsing (higher is better)
        (COMPLETION, (800, 1000, 18810, 19000), Verdict.FAIL),
        # no traffic is never a pass
        (ERR0, (0, 0, 10, 1000), Verdict.NODATA),
        (ERR_ABS, (0, 100, 0, 0), Verdict.NODATA),
    ],
)
def test_rate_verdicts(gate: Gate, counts: tuple[float, float, float, float], verdict: Verdict) -> None:
    ce, ct, se, st = counts
    m = judge_rate(gate, cand_events=ce, cand_total=ct, stable_events=se, stable_total=st, at=1.0,
                   queries=["q1", "q2"])
    assert m.verdict is verdict, m.summary()
    assert m.evidence.queries == ["q1", "q2"]
    if verdict is not Verdict.NODATA:
        e = m.evidence
        assert e.candidate_samples == ct and e.stable_samples == st
        assert e.candidate_value == pytest.approx(ce / ct) and e.stable_value == pytest.approx(se / st)
        assert e.difference == pytest.approx(ce / ct - se / st)
        assert e.interval is not None and e.interval[0] <= e.difference <= e.interval[1]
        assert e.margin == gate.margin and e.mode == gate.mode and e.alpha == gate.alpha
        assert e.note


@pytest.mark.parametrize(
    ("gate", "values", "verdict"),
    [
        (Gate(metric="latency_p95", margin=0.2, mode="relative"), (1.5, 1.0, 200, 4000), Verdict.FAIL),
        (Gate(metric="latency_p95", margin=0.2, mode="relative"), (1.1, 1.0, 200, 4000), Verdict.PASS),
        (Gate(metric="latency_p99", margin=0.2, mode="relative"), (3.0, 1.0, 10, 4000), Verdict.INCONCLUSIVE),
        (Gate(metric="latency_p50", margin=0.1, mode="absolute"), (0.35, 0.2, 100, 100), Verdict.FAIL),
        (Gate(metric="latency_p50", margin=0.1, mode="absolute"), (0.25, 0.2, 100, 100), Verdict.PASS),
        (Gate(metric="cost_per_request", margin=0.1, mode="relative"), (0.002, 0.001, 50, 50), Verdict.FAIL),
        (Gate(metric="tokens_per_request", margin=0.1, mode="relative"), (90, 100, 50, 50), Verdict.PASS),
        (Gate(metric="latency_p95", margin=0.2, mode="relative"), (None, 1.0, 0, 100), Verdict.NODATA),
        (Gate(metric="latency_p95", margin=0.2, mode="relative"), (math.nan, 1.0, 5, 100), Verdict.NODATA),
    ],
)
def test_ratio_verdicts(gate: Gate, values: tuple[Any, Any, float, float], verdict: Verdict) -> None:
    cv, sv, cn, sn = values
    m = judge_ratio(gate, cand_value=cv, stable_value=sv, cand_samples=cn, stable_samples=sn, at=2.0,
                    queries=["histogram_quantile(...)"])
    assert m.verdict is verdict, m.summary()
    assert m.evidence.queries == ["histogram_quantile(...)"]
    if verdict is not Verdict.NODATA:
        assert m.evidence.candidate_value == cv and m.evidence.stable_value == sv
        assert m.evidence.difference == pytest.approx(cv - sv)


@pytest.mark.parametrize(
    ("value", "samples", "verdict"),
    [(0.9, 100, Verdict.PASS), (0.7, 100, Verdict.FAIL), (0.2, 5, Verdict.INCONCLUSIVE),
     (None, 0, Verdict.NODATA)],
)
def test_agreement_floor(value: float | None, samples: float, verdict: Verdict) -> None:
    gate = Gate(metric="shadow_agreement", margin=0.2)
    assert judge_floor(gate, value=value, samples=samples, at=0.0).verdict is verdict


CUSTOM = {"metric": "custom", "name": "json_valid", "query": "sum(x)"}


@pytest.mark.parametrize(
    ("conds", "result", "verdict"),
    [
        ({"success": "result >= 0.99"}, 0.995, Verdict.PASS),
        ({"success": "result >= 0.99"}, 0.98, Verdict.FAIL),
        ({"failure": "result > 0.05"}, 0.01, Verdict.PASS),
        ({"failure": "result > 0.05"}, 0.06, Verdict.FAIL),
        ({"success": "result < 0.02", "failure": "result > 0.05"}, 0.03, Verdict.INCONCLUSIVE),
        ({"success": "result < 0.02", "failure": "result > 0.05"}, 0.01, Verdict.PASS),
        ({"success": "result < 0.02 or result > 10"}, 11, Verdict.PASS),
        ({"success": "result > 1 and result < 2"}, 3, Verdict.FAIL),
        ({"success": "result >= 0.99"}, None, Verdict.NODATA),
        ({"success": "result >= 0.99"}, math.nan, Verdict.NODATA),
    ],
)
def test_custom_verdicts(conds: dict[str, str], result: float | None, verdict: Verdict) -> None:
    gate = Gate(**CUSTOM, **conds)  # type: ignore[arg-type]
    m = judge_custom(gate, result=result, at=3.0, queries=["sum(x)"])
    assert m.verdict is verdict
    assert m.gate == "json_valid" and m.evidence.queries == ["sum(x)"]


@pytest.mark.parametrize(
    ("text", "value", "holds"),
    [
        ("result < 0.02", 0.01, True),
        ("result<0.02", 0.03, False),
        ("result >= 1e-3", 0.001, True),
        ("result == -1.5", -1.5, True),
        ("result != 0", 0.0, False),
        ("result > 1 and result < 2 or result == 5", 5, True),
        ("result > 1 and result < 2 or result == 5", 3, False),
        ("result > 0.5", math.nan, False),
    ],
)
def test_condition_parser(text: str, value: float, holds: bool) -> None:
    assert parse_condition(text).holds(value) is holds


@pytest.mark.parametrize(
    "text",
    [
        "", "result", "result <", "result < x", "x < 1", "__import__('os') < 1", "result < 1 and",
        "result < 1 xor result > 2", "(result < 1)", "result + 1 < 2", "result < 1; result > 2",
        "result << 1", "result < inf", "result < nan", "1 < result", "result.real < 1", "result < 1 result",
    ],
)
def test_condition_parser_rejects(text: str) -> None:
    with pytest.raises(ValidationFailed):
        parse_condition(text)


def test_gate_rejects_bad_condition() -> None:
    with pytest.raises(ValidationError, match="expected"):
        Gate(**CUSTOM, success="result > 1 or os.system('x')")  # type: ignore[arg-type]


def test_error_and_nodata_measurements_carry_evidence() -> None:
    gate = Gate(metric="error_rate", margin=0.01, dry_run=True)
    e = error_measurement(gate, "Prometheus timed out", at=5.0, queries=["q"])
    assert e.verdict is Verdict.ERROR and e.dry_run and e.evidence.note == "Prometheus timed out"
    assert e.evidence.queries == ["q"] and e.evidence.alpha == 0.05
    n = nodata_measurement(gate, "no traffic", at=5.0)
    assert n.verdict is Verdict.NODATA


@pytest.mark.parametrize(("events", "trials"), [(0, 100), (1, 100), (50, 100), (100, 100), (7, 7000)])
def test_rate_bounds_bracket_the_estimate(events: float, trials: float) -> None:
    lo, hi = lower_bound(events, trials, 0.05), upper_bound(events, trials, 0.05)
    assert 0.0 <= lo <= events / trials <= hi <= 1.0
    wider_lo, wider_hi = lower_bound(events, trials, 0.01), upper_bound(events, trials, 0.01)
    assert wider_lo <= lo and wider_hi >= hi


def test_ratio_bounds_and_normal_mixture() -> None:
    lo, hi = ratio_bounds(20, 400, 76, 7600, 0.05)
    assert 1.0 < lo < 5.0 < hi
    assert ratio_bounds(0, 10, 0, 10, 0.05) == (0.0, math.inf)
    assert normal_mixture_halfwidth(1e-4, 1e-4, 0.05) > normal_mixture_halfwidth(1e-5, 1e-4, 0.05) > 0.0
    assert normal_mixture_halfwidth(0.0, 1e-4, 0.05) == 0.0


P95 = Gate(metric="latency_p95", margin=0.2, mode="relative")
INF = math.inf


@pytest.mark.parametrize(
    ("buckets", "verdict"),
    [
        # 30 % of the candidate's requests above 1.28 s while stable's p95 is 0.6 s (allowed 0.72): FAIL
        ([(0.32, 100), (0.64, 300), (1.28, 700), (2.56, 1000), (INF, 1000)], Verdict.FAIL),
        # p95 read off a wide bucket, but only about 3 of 40 requests beyond the allowed value: not proven
        ([(0.32, 10), (0.64, 37), (1.28, 39), (2.56, 40), (INF, 40)], Verdict.INCONCLUSIVE),
    ],
)
def test_quantile_fail_needs_sequential_evidence(
    buckets: list[tuple[float, float]], verdict: Verdict
) -> None:
    n = buckets[-1][1]
    m = judge_ratio(P95, cand_value=1.2, stable_value=0.6, cand_samples=n, stable_samples=19 * n, at=0.0,
                    quantile=0.95, cand_buckets=buckets)
    assert m.verdict is verdict, m.summary()
    assert m.evidence.interval is not None and "share of candidate requests above 0.72" in m.evidence.note


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [(0.48, (800.0, 1000.0)), (0.64, (700.0, 1000.0)), (3.0, (0.0, 1000.0)), (0.16, (950.0, 1000.0)),
     (1.92, (150.0, 1000.0))],
)
def test_exceedances(threshold: float, expected: tuple[float, float]) -> None:
    buckets = [(0.32, 100), (0.64, 300), (1.28, 700), (2.56, 1000), (INF, 1000)]
    assert exceedances(buckets, threshold) == expected


RATIO = {"metric": "custom", "name": "truncated",
         "events": 'sum(increase(canaryflow_requests_total{$selector,finish_reason="length"}[$window]))',
         "total": "sum(increase(canaryflow_requests_total{$selector}[$window]))", "margin": 0.5}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({}, None),
        ({"margin": None}, "margin"),
        ({"total": None}, "both 'events' and 'total'"),
        ({"success": "result < 1"}, "not query/success"),
        ({"total": "sum(x)"}, "$selector and $window"),
        ({"name": None}, "name"),
    ],
)
def test_custom_ratio_gate_validation(change: dict[str, Any], message: str | None) -> None:
    spec = {k: v for k, v in {**RATIO, **change}.items() if v is not None}
    if message is None:
        assert Gate(**spec).is_ratio
    else:
        with pytest.raises(ValidationError, match=message.replace("$", r"\$")):
            Gate(**spec)


def test_builtin_gates_refuse_ratio_fields() -> None:
    with pytest.raises(ValidationError, match="not query"):
        Gate(metric="error_rate", margin=0.01, events="sum(x{$selector}[$window])")


def test_custom_ratio_higher_is_better_is_judged_on_the_complement() -> None:
    gate = Gate(**{**RATIO, "higher_is_better": True, "margin": 0.02, "mode": "absolute"})  # type: ignore[arg-type]
    m = judge_rate(gate, cand_events=800, cand_total=1000, stable_events=18810, stable_total=19000, at=0.0)
    assert m.verdict is Verdict.FAIL and m.evidence.candidate_value == pytest.approx(0.8)
    assert m.evidence.interval is not None and m.evidence.interval[1] < -0.02
