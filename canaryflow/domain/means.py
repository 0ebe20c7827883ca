"""An always-valid, stratified test of means from per-interval sums and counts (pure; numpy).

Cost and tokens per request reach the judge as per-interval sums and counts (Prometheus counters), not as
individual requests. Within interval k the candidate's excess over what the margin allows is
``z_k = n_ck·(m_ck − θ·m_sk)`` (``θ = 1 + margin`` relative, or ``m_ck − m_sk − margin`` absolute), where
``m`` are the interval's means: the stable mean of the *same* interval, so a daily cycle in cost and split
cannot confound it. Under "the candidate's mean is at most θ × stable's" the ``z_k`` have mean ≤ 0, and
intervals are independent blocks whatever happens inside them (clustered, skewed requests): the test uses
the self-normalised sum ``Z = Σ z_k`` with variance ``V = Σ z_k²`` — a variance estimated from the data
at the level of intervals — in a normal-mixture mSPRT (Robbins; Johari et al.), whose confidence sequence
holds at every interval at once. The mixing scale is the margin (relative: that share of stable's mean),
and at least :data:`TAU` of stable's mean: a candidate as good as stable sits one margin below what is
allowed, so the bound is tightest where a good candidate's PASS is decided (a scale of 10 % whatever the
margin made a good candidate with a 0.5 margin wait twice as many intervals, and one twice as cheap longer
still). No verdict before :data:`MIN_STRATA` intervals carried both variations.

Arrays: the last axis is the stratum; leading axes are independent problems (the benchmark's trials).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from canaryflow.domain.stratified import Array

TAU = 0.1
MIN_STRATA = 8


def halfwidth(variance: Array, tau2: Array, alpha: float) -> Array:
    """Normal-mixture mSPRT half-width ``sqrt(V(V+τ²)/τ² · (−2 ln α + ln((V+τ²)/V)))`` (0 where V = 0)."""
    v = np.maximum(variance, 1e-300)
    t2 = np.maximum(tau2, 1e-300)
    out = np.sqrt(v * (v + t2) / t2 * (-2.0 * math.log(alpha) + np.log((v + t2) / v)))
    return np.asarray(np.where(variance > 0, out, 0.0), dtype=np.float64)


def mean_test(sc: Any, nc: Any, ss: Any, ns: Any, *, margin: float, relative: bool, alpha: float,
              higher_is_better: bool = False) -> dict[str, Array]:
    """The stratified mean test. Returns arrays: ``fail``, ``ok`` (booleans as floats), ``cand_mean``,
    ``stable_mean``, ``excess`` (Z/N: the candidate's mean excess over the allowed, per request), ``lo``,
    ``hi`` (its always-valid bounds), ``strata`` (intervals used).

    ``higher_is_better`` (evaluation scores): the allowed is ``(1 − margin) × stable`` (or ``stable −
    margin``) and the excess is how far the candidate's mean falls *below* it."""
    sc, nc, ss, ns = (np.asarray(a, dtype=np.float64) for a in (sc, nc, ss, ns))
    live = (nc > 0) & (ns > 0)
    mc = np.divide(sc, nc, out=np.zeros_like(sc), where=nc > 0)
    ms = np.divide(ss, ns, out=np.zeros_like(ss), where=ns > 0)
    sign = -1.0 if higher_is_better else 1.0
    allowed = (1.0 + sign * margin) * ms if relative else ms + sign * margin
    z = np.where(live, sign * nc * (mc - allowed), 0.0)
    n = np.where(live, nc, 0.0).sum(-1)
    total_c, total_s = sc.sum(-1), ss.sum(-1)
    cand_mean = np.divide(total_c, nc.sum(-1), out=np.zeros_like(total_c), where=nc.sum(-1) > 0)
    stable_mean = np.divide(total_s, ns.sum(-1), out=np.zeros_like(total_s), where=ns.sum(-1) > 0)
    safe_n = np.maximum(n, 1.0)
    excess = z.sum(-1) / safe_n
    var = (z**2).sum(-1) / safe_n**2
    scale = max(TAU, margin) * np.maximum(stable_mean, 1e-12) if relative else np.maximum(
        TAU * np.maximum(stable_mean, 1e-12), margin)
    tau2 = scale ** 2
    hw = halfwidth(var, tau2, alpha)
    strata = live.sum(-1).astype(np.float64)
    enough = strata >= MIN_STRATA
    lo, hi = excess - hw, excess + hw
    return {"fail": (enough & (lo > 0)).astype(np.float64), "ok": (enough & (hi < 0)).astype(np.float64),
            "cand_mean": cand_mean, "stable_mean": stable_mean, "excess": excess, "lo": lo, "hi": hi,
            "strata": strata, "samples": n}


__all__ = ["MIN_STRATA", "TAU", "halfwidth", "mean_test"]
