"""Seeded simulation (fewer trials than benchmarks/bench_judge.py): the judge checked every interval keeps
its false-alarm rate and catches a 1 % -> 5 % regression fast; the naive peeking test does not."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

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


def test_aa_false_rollbacks_stay_within_alpha(bench: ModuleType) -> None:
    aa = bench.simulate(0.01, 0.01, 150, intervals=50, seed=11)
    assert aa.rate("judge") <= 0.05
    assert aa.rate("z_peek") > 0.15  # the trap: a fixed-horizon test checked every interval
    assert aa.rate("threshold_1") > 0.5


def test_ab_regression_caught_within_400_candidate_requests(bench: ModuleType) -> None:
    ab = bench.simulate(0.01, 0.05, 150, intervals=50, seed=12)
    assert ab.rate("judge", within=400) >= 0.95
    assert ab.quantile("judge", 0.5) < bench.fixed_horizon_n(0.01, 0.05)


def test_fixed_horizon_sample_size(bench: ModuleType) -> None:
    n = bench.fixed_horizon_n(0.01, 0.05)
    assert 150 <= n <= 250
    assert bench.fixed_horizon_n(0.01, 0.05, power=0.8) < n
