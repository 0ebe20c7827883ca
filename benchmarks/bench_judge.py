"""Simulated rollouts: does the judge keep its false-alarm rate while checking every interval, and how fast
does it catch a regression? Compared with naive per-interval checks on the *same* data.

Scenario (DESIGN.md "Deciding with statistics"): a 5 % stage — every request goes to the candidate with
probability 0.05, so stable sees about 19× the candidate's traffic — 200 requests per interval (about 10
for the candidate), checked after every interval for 60 intervals. A/A: both 1 % errors. A/B: stable 1 %,
candidate 5 %. Gate: ``error_rate``, margin 0 (absolute), α = 0.05.

Run: ``.venv/bin/python benchmarks/bench_judge.py [--trials 1000] [--seed 1]``
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass, field

import numpy as np

from canaryflow.domain.gates import Gate, Verdict
from canaryflow.domain.judge import judge_rate
from canaryflow.domain.sequential import normal_mixture_halfwidth

Z_05 = 1.6448536269514722  # one-sided 5 %


@dataclass
class Outcome:
    """Per method: the candidate requests seen when it first alarmed (None = never) in each trial."""

    alarms: dict[str, list[float | None]] = field(default_factory=dict)

    def add(self, method: str, at: float | None) -> None:
        self.alarms.setdefault(method, []).append(at)

    def rate(self, method: str, within: float = math.inf) -> float:
        runs = self.alarms[method]
        return sum(1 for a in runs if a is not None and a <= within) / len(runs)

    def quantile(self, method: str, q: float) -> float | None:
        hits = sorted(a for a in self.alarms[method] if a is not None)
        if not hits:
            return None
        return hits[min(len(hits) - 1, int(q * len(hits)))]


def _z_peek(ce: float, cn: float, se: float, sn: float) -> bool:
    """Fixed-horizon one-sided two-proportion z-test (pooled), naively applied at every check."""
    pooled = (ce + se) / (cn + sn)
    var = pooled * (1 - pooled) * (1 / cn + 1 / sn)
    return var > 0 and (ce / cn - se / sn) / math.sqrt(var) > Z_05


def _normal_msprt(ce: float, cn: float, se: float, sn: float, tau2: float = 0.03**2) -> bool:
    """The normal-mixture mSPRT with a plug-in variance (DESIGN.md's first option)."""
    pc, ps = ce / cn, se / sn
    var = max(pc * (1 - pc), 1e-4) / cn + max(ps * (1 - ps), 1e-4) / sn
    return pc - ps - normal_mixture_halfwidth(var, tau2, 0.05) > 0


def simulate(p_stable: float, p_cand: float, trials: int, *, intervals: int = 60, per_interval: int = 200,
             split: float = 0.05, seed: int = 1, margin: float = 0.0) -> Outcome:
    """Run ``trials`` rollouts; every method judges the same simulated counts after each interval."""
    rng = np.random.default_rng(seed)
    gate = Gate(metric="error_rate", margin=margin, mode="absolute", alpha=0.05)
    out = Outcome()
    for _ in range(trials):
        cn = sn = ce = se = 0.0
        first: dict[str, float | None] = {"judge": None, "z_peek": None, "threshold_1": None,
                                          "threshold_5": None, "normal_msprt": None}
        threshold_fails = 0
        for _ in range(intervals):
            c = int(rng.binomial(per_interval, split))
            s = per_interval - c
            ic, is_ = int(rng.binomial(c, p_cand)), int(rng.binomial(s, p_stable))
            cn, sn, ce, se = cn + c, sn + s, ce + ic, se + is_
            if cn == 0:
                continue
            if first["judge"] is None:
                m = judge_rate(gate, cand_events=ce, cand_total=cn, stable_events=se, stable_total=sn, at=0.0)
                if m.verdict is Verdict.FAIL:
                    first["judge"] = cn
            if first["z_peek"] is None and _z_peek(ce, cn, se, sn):
                first["z_peek"] = cn
            if first["normal_msprt"] is None and _normal_msprt(ce, cn, se, sn):
                first["normal_msprt"] = cn
            # Argo/Flagger-style threshold on this interval's rates: candidate worse than stable + 1 pp.
            if c and ic / c > is_ / max(s, 1) + 0.01:
                threshold_fails += 1
                if first["threshold_1"] is None:
                    first["threshold_1"] = cn
                if threshold_fails >= 5 and first["threshold_5"] is None:
                    first["threshold_5"] = cn
        for method, at in first.items():
            out.add(method, at)
    return out


def fixed_horizon_n(p_stable: float, p_cand: float, *, k: float = 19.0, alpha: float = 0.05,
                    power: float = 0.95) -> int:
    """Candidate sample of a one-sided two-proportion z-test with stable k× larger, for the given power."""
    z_a = statistics.NormalDist().inv_cdf(1 - alpha)
    z_b = statistics.NormalDist().inv_cdf(power)
    pooled = (p_cand + k * p_stable) / (1 + k)
    num = z_a * math.sqrt(pooled * (1 - pooled) * (1 + 1 / k)) + z_b * math.sqrt(
        p_cand * (1 - p_cand) + p_stable * (1 - p_stable) / k)
    return math.ceil((num / (p_cand - p_stable)) ** 2)


LABELS = {
    "judge": "canaryflow judge (mixture SPRT, always valid)",
    "normal_msprt": "normal-mixture mSPRT, plug-in variance",
    "z_peek": "fixed-horizon z-test checked every interval",
    "threshold_1": "per-interval threshold (+1 pp), 1 failure rolls back",
    "threshold_5": "per-interval threshold (+1 pp), 5 failures roll back",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    t0 = time.perf_counter()
    aa = simulate(0.01, 0.01, args.trials, seed=args.seed)
    ab = simulate(0.01, 0.05, args.trials, seed=args.seed + 1)
    print(f"{args.trials} rollouts each, 60 intervals x 200 requests, 5 % to the candidate, "
          f"error_rate margin 0, alpha 0.05 ({time.perf_counter() - t0:.0f} s)\n")
    print("| method | A/A false rollback | A/B caught | A/B caught within 400 cand. req. "
          "| cand. requests to catch (median / p95) |")
    print("|---|---|---|---|---|")
    for method, label in LABELS.items():
        med, p95 = ab.quantile(method, 0.5), ab.quantile(method, 0.95)
        print(f"| {label} | {100 * aa.rate(method):.1f} % | {100 * ab.rate(method):.1f} % | "
              f"{100 * ab.rate(method, 400):.1f} % | {med or 'n/a'} / {p95 or 'n/a'} |")
    print(f"\nfixed-horizon one-sided z-test, alpha 0.05, power 0.95, stable 19x: "
          f"{fixed_horizon_n(0.01, 0.05)} candidate requests (looked at once, at the end)")
    aa1 = simulate(0.01, 0.02, args.trials, seed=args.seed + 2, margin=0.01)
    ab1 = simulate(0.01, 0.05, args.trials, seed=args.seed + 3, margin=0.01)
    print(f"\nwith an absolute margin of 0.01 (per-variation confidence sequences, union bound): "
          f"false rollback at the margin's edge (1 % vs 2 %) {100 * aa1.rate('judge'):.1f} %, "
          f"1 % -> 5 % caught {100 * ab1.rate('judge'):.1f} % "
          f"(within 400: {100 * ab1.rate('judge', 400):.1f} %, median {ab1.quantile('judge', 0.5)} "
          f"candidate requests; a fixed-horizon test of 2 % vs 5 % needs {fixed_horizon_n(0.02, 0.05)})")


if __name__ == "__main__":
    main()
