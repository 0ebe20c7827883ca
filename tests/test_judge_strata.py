"""The stratified judge on per-interval data, exact counter deltas, and the plan's refusals (pure)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from canaryflow.domain.errors import ValidationFailed
from canaryflow.domain.gates import Gate, Verdict
from canaryflow.domain.judge import (
    BucketStrata,
    MeanStrata,
    RateStrata,
    judge_mean_strata,
    judge_quantile_strata,
    judge_rate_strata,
)
from canaryflow.domain.plan import DEFAULT_PLAN, FAST_PLAN, Plan, RolloutInput
from canaryflow.domain.stratified import dispersion
from canaryflow.domain.validation import parse
from canaryflow.metrics.deltas import edges, increases, increases_by, series_increases

ERR = Gate(metric="error_rate", margin=0.5)


def test_a_split_and_base_rate_moving_together_do_not_confound() -> None:
    """Simpson's paradox: in each interval both variations fail equally, but the candidate got most of its
    traffic at the busy, error-prone hour. Pooled, it looks 3× worse; interval by interval, it is not."""
    strata = RateStrata(cand_events=(500, 0), cand_total=(5000, 100), stable_events=(500, 10),
                        stable_total=(5000, 9900))
    m = judge_rate_strata(ERR, strata, at=0.0)
    assert m.evidence.candidate_value == pytest.approx(500 / 5100)
    assert m.evidence.stable_value == pytest.approx(510 / 14900)
    assert m.verdict is not Verdict.FAIL, m.summary()
    pooled = judge_rate_strata(ERR, RateStrata.single(500, 5100, 510, 14900), at=0.0)
    assert pooled.verdict is Verdict.FAIL


def test_a_burst_in_one_sparse_interval_does_not_roll_back_alone() -> None:
    n = 40
    burst = RateStrata((10,) + (0,) * (n - 1), (10,) * n, (2,) * n, (190,) * n)
    m = judge_rate_strata(ERR, burst, at=0.0)
    assert m.verdict is not Verdict.FAIL, m.summary()
    assert m.evidence.strata == n and m.evidence.candidate_events == 10
    spread = RateStrata((1,) * 20 + (0,) * (n - 20), (10,) * n, (2,) * n, (190,) * n)
    assert judge_rate_strata(ERR, spread, at=0.0).verdict is Verdict.FAIL  # 5 %, over 20 intervals


def test_dispersion_is_one_for_binomial_counts_and_grows_with_clustering() -> None:
    rng = np.random.default_rng(1)
    nc, ns = np.full(200, 100.0), np.full(200, 1900.0)
    x, y = rng.binomial(100, 0.02, 200), rng.binomial(1900, 0.02, 200)
    assert 1.0 <= float(dispersion(x, nc, y, ns)) < 1.5
    clustered = rng.binomial(100, 0.02, 200) * rng.integers(1, 8, 200)
    assert float(dispersion(clustered, nc, y, ns)) > 2.0


def test_rate_evidence_is_whole_numbers_and_structured() -> None:
    m = judge_rate_strata(ERR, RateStrata((5, 0), (60, 60), (20, 28), (1200, 1165)), at=0.0)
    e = m.evidence
    assert (e.candidate_events, e.candidate_samples, e.stable_events, e.stable_samples) == (5, 120, 48, 2365)
    assert "(5/120)" in m.summary() and "(48/2365)" in m.summary()
    assert e.method and e.allowed is not None and e.strata == 2


def _means(ratio: float, k: int, seed: int = 3) -> MeanStrata:
    rng = np.random.default_rng(seed)
    nc, ns = np.full(k, 20.0), np.full(k, 380.0)
    sc = np.array([rng.lognormal(0, 0.5, 20).sum() * ratio for _ in range(k)])
    ss = np.array([rng.lognormal(0, 0.5, 380).sum() for _ in range(k)])
    return MeanStrata(list(sc), list(nc), list(ss), list(ns))


@pytest.mark.parametrize(("ratio", "k", "verdict"), [(1.0, 60, Verdict.PASS), (2.0, 60, Verdict.FAIL),
                                                       (2.0, 5, Verdict.INCONCLUSIVE)])
def test_mean_gate(ratio: float, k: int, verdict: Verdict) -> None:
    m = judge_mean_strata(Gate(metric="cost_per_request", margin=0.2), _means(ratio, k), at=0.0)
    assert m.verdict is verdict, m.summary()
    assert m.evidence.candidate_value == pytest.approx(ratio * m.evidence.stable_value, rel=0.2)


def _histograms(scale: float, k: int = 40, n_c: int = 40, n_s: int = 760) -> BucketStrata:
    les = [0.02 * 1.1**i for i in range(92)] + [math.inf]
    rng = np.random.default_rng(4)

    def rows(n: int, s: float) -> list[list[float]]:
        out = []
        for _ in range(k):
            v = rng.lognormal(0, 0.5, n) * s
            out.append([float((v <= le).sum()) for le in les])
        return out

    return BucketStrata(les, rows(n_c, scale), rows(n_s, 1.0))


@pytest.mark.parametrize(("scale", "verdict"), [(1.0, Verdict.PASS), (1.6, Verdict.FAIL)])
def test_quantile_gate_from_per_interval_buckets(scale: float, verdict: Verdict) -> None:
    m = judge_quantile_strata(Gate(metric="latency_p95", margin=0.2), _histograms(scale), 0.95, at=0.0)
    assert m.verdict is verdict, m.summary()
    assert m.evidence.stable_value == pytest.approx(math.exp(1.645 * 0.5), rel=0.1)


def test_quantile_gate_without_traffic_is_nodata() -> None:
    m = judge_quantile_strata(Gate(metric="latency_p95", margin=0.2), BucketStrata([1.0, math.inf], [], []),
                              0.95, at=0.0)
    assert m.verdict is Verdict.NODATA


# ------------------------------------------------------------------ exact counter deltas

def test_series_increases_baseline_reset_and_intervals() -> None:
    samples = [(95.0, 10.0), (99.0, 12.0), (101.0, 15.0), (103.0, 16.0), (105.0, 2.0), (109.0, 5.0)]
    # baseline 12 (last at or before 100); +3, +1 | reset → +2 | +3
    assert series_increases(samples, 100.0, 110.0, 4.0) == [4.0, 2.0, 3.0]
    assert edges(100.0, 110.0, 4.0) == [100.0, 104.0, 108.0, 110.0]


def test_a_series_born_during_the_stage_counts_from_zero() -> None:
    assert series_increases([(102.0, 3.0), (104.0, 3.0)], 100.0, 105.0, 60.0) == [3.0]
    assert series_increases([(102.0, 0.0), (104.0, 3.0)], 100.0, 105.0, 60.0) == [3.0]


def test_increases_sum_replicas_and_filter_labels() -> None:
    series = [({"instance": "a", "outcome": "error"}, [(99.0, 1.0), (101.0, 3.0)]),
              ({"instance": "b", "outcome": "error"}, [(101.0, 4.0)]),
              ({"instance": "b", "outcome": "success"}, [(99.0, 7.0), (101.0, 9.0)])]
    assert increases(series, 100.0, 102.0, 60.0) == [8.0]
    assert increases(series, 100.0, 102.0, 60.0, lambda lb: lb["outcome"] == "error") == [6.0]
    assert increases_by(series, "instance", 100.0, 102.0, 60.0) == {"a": [2.0], "b": [6.0]}


# ------------------------------------------------------------------ plans: refusals and α

FULL = {"name": "full", "kind": "full"}
STAGE = {"name": "canary-5", "kind": "percent", "percent": 5}


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        ({"metric": "error_rate", "margin": 0}, "margin 0 on 'error_rate' can never PASS"),
        ({"metric": "latency_p95", "margin": 0.0}, "use a relative margin such as 0.5"),
        ({"metric": "error_rate", "margin": -0.1}, "margin -0.1 is negative"),
        ({"metric": "errors", "margin": 0.1}, "unknown metric 'errors': use one of error_rate"),
        ({"metric": "latency_p95", "margin": 0.2, "floor": 0.1}, "'floor' belongs to rate gates"),
    ],
)
def test_a_rollout_refuses_gates_that_cannot_work(gate: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        parse(RolloutInput, {"config_key": "bot", "candidate_version": 2,
                             "plan": {"stages": [STAGE, FULL], "gates": [gate]}})
    assert "plan." in str(err.value) and "gates[0]" in str(err.value)
    assert message in str(err.value)


def test_presets_use_relative_margins_and_gate_fallbacks() -> None:
    for plan in (DEFAULT_PLAN, FAST_PLAN):
        metrics = {g.metric for g in plan.gates}
        assert {"error_rate", "fallback_rate", "latency_p95", "cost_per_request"} <= metrics
        assert all(g.mode == "relative" and (g.margin or 0) > 0 for g in plan.gates)
    assert Gate(metric="error_rate", margin=0.5).mode == "relative"


def test_alpha_per_gate_per_stage_is_the_default_and_shown() -> None:
    assert DEFAULT_PLAN.alpha_scope == "per_gate_stage"
    assert "α 0.05 per gate per stage" in DEFAULT_PLAN.alpha_text()
    assert DEFAULT_PLAN.gates_for(3)[0].alpha == 0.05


def test_a_family_wise_alpha_is_split_over_every_gate_and_stage() -> None:
    plan = Plan.model_validate({"stages": [STAGE, {**STAGE, "name": "canary-10", "percent": 10}, FULL],
                                "gates": [{"metric": "error_rate", "margin": 0.5},
                                          {"metric": "latency_p95", "margin": 0.2}],
                                "alpha_scope": "family", "family_alpha": 0.04})
    assert plan.comparisons() == 4
    assert {g.alpha for i in range(3) for g in plan.gates_for(i)} == {0.01}
    assert "family-wise α 0.04 across 4 gate×stage checks (0.01 each" in plan.alpha_text()


@pytest.mark.parametrize(
    ("extra", "message"),
    [({"alpha_scope": "family"}, "needs 'family_alpha'"),
     ({"family_alpha": 0.05}, "needs alpha_scope 'family'"),
     ({"alpha_scope": "family", "family_alpha": 0.05,
       "gates": [{"metric": "error_rate", "margin": 0.5, "alpha": 0.01}]}, "sets 'alpha'")],
)
def test_alpha_policy_refusals(extra: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        parse(Plan, {"stages": [STAGE, FULL], **extra})


def test_rollouts_started_before_the_new_presets_replay_with_their_gates() -> None:
    from canaryflow.domain.plan import LEGACY_GATES, legacy_input

    old = RolloutInput.model_validate(legacy_input({"config_key": "bot", "candidate_version": 2}))
    assert old.resolved_plan().gates == list(LEGACY_GATES)
    inline = legacy_input({"config_key": "bot", "candidate_version": 2, "plan": {"stages": [FULL]}})
    assert [g.metric for g in RolloutInput.model_validate(inline).resolved_plan().gates] == [
        "error_rate", "latency_p95", "cost_per_request", "negative_feedback_rate"]
    own = {"config_key": "bot", "candidate_version": 2, "plan": {"stages": [FULL], "gates": []}}
    assert legacy_input(own) == own
