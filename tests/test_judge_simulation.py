"""Seeded, smaller runs of benchmarks/bench_judge.py: the key properties of the default gates, checked after
every interval on the same simulated data as the naive checks (deterministic: fixed seeds, no timing)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_judge.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_judge", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_judge"] = module
    spec.loader.exec_module(module)
    return module


def _rates(bench: ModuleType, scenario: str, p_c: float, seed: int, trials: int = 200) -> object:
    out = bench.Outcome()
    data = bench.rate_scenario(scenario, np.random.default_rng(seed), trials, 40, 200, 0.05, 0.01, p_c)
    bench.judge_rates(data, bench.default_gate("error_rate"), out)
    return out


@pytest.mark.parametrize("scenario", ["independent", "clustered in time", "retries", "daily cycle"])
def test_aa_false_rollbacks_stay_within_alpha(bench: ModuleType, scenario: str) -> None:
    aa = _rates(bench, scenario, 0.01, seed=11)
    assert aa.rate("judge") <= 0.05  # type: ignore[attr-defined]
    assert aa.rate("z_peek") > 0.15  # type: ignore[attr-defined]  # the trap: a fixed test checked each time


def test_clustering_breaks_the_independent_test_not_the_judge(bench: ModuleType) -> None:
    aa = _rates(bench, "retries", 0.01, seed=13, trials=300)
    assert aa.rate("pooled") > 0.08 > 0.05 >= aa.rate("judge")  # type: ignore[attr-defined]


def test_ab_regression_caught_within_400_candidate_requests(bench: ModuleType) -> None:
    ab = _rates(bench, "independent", 0.05, seed=12)
    assert ab.rate("judge", 400) >= 0.85  # type: ignore[attr-defined]
    assert ab.quantile("judge", 0.5) < 400  # type: ignore[attr-defined]


def test_identical_lognormal_costs_pass_and_never_fail(bench: ModuleType) -> None:
    gate = bench.default_gate("cost_per_request")
    aa = bench.Outcome()
    bench.judge_means(bench.mean_scenario(np.random.default_rng(5), 100, 150, 200, 0.05, 1.0, 1.0), gate, aa)
    assert aa.rate("judge") == 0.0 and aa.pass_rate("judge") >= 0.9
    assert aa.rate("point") > 0.1  # the previous point estimate false-fails skewed costs


def test_latency_p95_regression_caught_and_none_passed(bench: ModuleType) -> None:
    les = bench.latency_buckets()
    assert np.all(les[1:-1] / les[:-2] <= 1.1 + 1e-4)
    gate = bench.default_gate("latency_p95")
    aa, ab = bench.Outcome(), bench.Outcome()
    rng = np.random.default_rng(6)
    bench.judge_latency(bench.latency_scenario(rng, 40, 80, 800, 0.05, 0.5, 1.0, les), gate, 0.95, les, aa)
    bench.judge_latency(bench.latency_scenario(rng, 40, 80, 800, 0.05, 0.5, 1.3, les), gate, 0.95, les, ab)
    assert aa.rate("judge") == 0.0 and aa.pass_rate("judge") >= 0.9
    assert ab.rate("judge") >= 0.8


def test_fixed_horizon_sample_size(bench: ModuleType) -> None:
    n = bench.fixed_horizon_n(0.01, 0.05)
    assert 150 <= n <= 250
    assert bench.fixed_horizon_n(0.01, 0.05, power=0.8) < n
