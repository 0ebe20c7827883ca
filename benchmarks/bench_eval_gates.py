"""Quality gates on simulated judge results: false alarms under continuous checking, and power.

A shadow stage of ``intervals`` analysis intervals; each interval the judge returns ``per_interval``
results for the candidate, the gate is checked after **every** interval with the judge's own function
(:func:`canaryflow.domain.pairwise.judge_win_rate`, :func:`canaryflow.domain.judge.judge_mean_strata`
for ``eval_score``, as :mod:`canaryflow.metrics.measure` calls them), and the stage stops at the first
FAIL. Scenarios:

* ``win_rate`` (pairwise, ties as ½): A/A = the candidate as good as stable (win 20 %, tie 60 %, loss
  20 %: rate 0.5), judged against the default floor 0.45 and against the edge floor 0.5 (the null's
  boundary: any FAIL there is a false alarm of the test itself); A/B = a clear drop to 0.35 (win 10 %, tie
  50 %, loss 40 %).
* ``eval_score`` (absolute judge scores in [0, 1], candidate against stable in the same intervals,
  margin 0.05 relative: candidate ≥ 0.95 × stable): scores drawn as Beta with mean 0.8 for both (A/A),
  or 0.7 for the candidate (A/B); stable sees 3× the candidate's results.

Run: ``.venv/bin/python benchmarks/bench_eval_gates.py [--trials 500] [--seed 1]`` (about a minute).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from canaryflow.domain.gates import Gate, Verdict
from canaryflow.domain.judge import MeanStrata, judge_mean_strata
from canaryflow.domain.pairwise import judge_win_rate

Check = Callable[[np.random.Generator], tuple[float, bool]]


@dataclass
class Result:
    """Share of stages that FAILed, that ever PASSed, and the samples seen at the FAILs."""

    fail: float
    passed: float
    samples_at_fail: list[float]


def _quantile(values: list[float], q: float) -> float:
    return float(np.quantile(values, q)) if values else math.nan


def win_rate_stage(rng: np.random.Generator, probs: tuple[float, float, float], floor: float,
                   intervals: int, per_interval: int) -> tuple[float, bool]:
    """One stage: the pairs seen at the first FAIL (nan: none) and whether a check ever PASSed."""
    gate = Gate(metric="win_rate", floor=floor, evaluator="pref")
    draws = rng.multinomial(per_interval, probs, size=intervals).cumsum(axis=0)
    passed = False
    for wins, ties, losses in draws:
        m = judge_win_rate(gate, wins=float(wins), ties=float(ties), losses=float(losses), at=0.0)
        if m.verdict == Verdict.FAIL:
            return float(wins + ties + losses), passed
        passed = passed or m.verdict == Verdict.PASS
    return math.nan, passed


def _beta(rng: np.random.Generator, mean: float, size: int, strength: float = 4.0) -> np.ndarray:
    return rng.beta(mean * strength, (1 - mean) * strength, size=size)


def eval_score_stage(rng: np.random.Generator, cand_mean: float, stable_mean: float, intervals: int,
                     per_interval: int) -> tuple[float, bool]:
    """One stage of an ``eval_score`` gate (candidate ≥ 0.95 × stable's mean score)."""
    gate = Gate(metric="eval_score", evaluator="grade", margin=0.05, mode="relative")
    cs, cn, ss, sn = [], [], [], []
    passed = False
    for _ in range(intervals):
        c = _beta(rng, cand_mean, per_interval)
        s = _beta(rng, stable_mean, 3 * per_interval)
        cs.append(float(c.sum()))
        cn.append(float(per_interval))
        ss.append(float(s.sum()))
        sn.append(float(3 * per_interval))
        m = judge_mean_strata(gate, MeanStrata(cs, cn, ss, sn), at=0.0, higher_is_better=True)
        if m.verdict == Verdict.FAIL:
            return float(sum(cn)), passed
        passed = passed or m.verdict == Verdict.PASS
    return math.nan, passed


def run(name: str, stage: Callable[[np.random.Generator], tuple[float, bool]], trials: int,
        rng: np.random.Generator) -> Result:
    fails: list[float] = []
    passes = 0
    for _ in range(trials):
        at, ever = stage(rng)
        if not math.isnan(at):
            fails.append(at)
        passes += ever
    return Result(len(fails) / trials, passes / trials, fails)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--intervals", type=int, default=60)
    parser.add_argument("--per-interval", type=int, default=10, help="judged results per interval")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    k, n = args.intervals, args.per_interval
    aa, ab = (0.2, 0.6, 0.2), (0.1, 0.5, 0.4)
    scenarios: list[tuple[str, str, Callable[[np.random.Generator], tuple[float, bool]]]] = [
        ("win_rate A/A 0.5, floor 0.45", "aa", lambda r: win_rate_stage(r, aa, 0.45, k, n)),
        ("win_rate A/A 0.5, floor 0.50 (edge)", "aa", lambda r: win_rate_stage(r, aa, 0.5, k, n)),
        ("win_rate A/B 0.5 → 0.35, floor 0.45", "ab", lambda r: win_rate_stage(r, ab, 0.45, k, n)),
        ("eval_score A/A 0.8 vs 0.8, margin 0.05", "aa", lambda r: eval_score_stage(r, 0.8, 0.8, k, n)),
        ("eval_score A/B 0.7 vs 0.8, margin 0.05", "ab", lambda r: eval_score_stage(r, 0.7, 0.8, k, n)),
    ]
    print(f"{args.trials} stages per scenario, {k} intervals × {n} candidate results, checked every interval")
    print(f"{'scenario':42} {'FAIL':>7} {'ever PASS':>10} {'samples at FAIL p50 / p90':>27} {'s':>6}")
    for name, kind, stage in scenarios:
        started = time.perf_counter()
        r = run(name, stage, args.trials, rng)
        spent = time.perf_counter() - started
        at = (f"{_quantile(r.samples_at_fail, 0.5):.0f} / {_quantile(r.samples_at_fail, 0.9):.0f}"
              if kind == "ab" else "")
        print(f"{name:42} {r.fail:7.1%} {r.passed:10.1%} {at:>27} {spent:6.1f}")


if __name__ == "__main__":
    main()
