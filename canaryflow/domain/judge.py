"""The judge: numbers measured for one gate → a :class:`Measurement` with its evidence (pure).

Kinds of gates and how each is decided:

* **Rates** (error rate, negative-feedback rate, completion rate, any ratio of counters) —
  always-valid one-sided sequential tests (:mod:`canaryflow.domain.sequential`), so checking every
  interval keeps the false-alarm rate at α:

  - relative margin, or an absolute margin of 0: the candidate's share of all bad events against the
    share a rate ratio of ``1 + margin`` would give (mixture SPRT; the stable rate cancels out);
  - absolute margin > 0: confidence sequences for each variation's rate (stable at 0.2·α, candidate at
    0.8·α, a union bound); the difference's interval is ``[L_c − U_s, U_c − L_s]``.

  FAIL when the interval's lower end exceeds the margin; PASS when its upper end is below the margin and
  the minimum sample is met; otherwise INCONCLUSIVE. "Higher is better" rates (completion) are judged on
  their complement.
* **Ratios of values** (latency quantiles, cost and tokens per request): candidate vs stable by ratio
  (relative margin) or difference (absolute margin), only once both have the minimum sample.
* **Floors** (shadow agreement): the candidate's mean must stay at or above ``1 − margin``.
* **Custom**: a PromQL result against ``success`` / ``failure`` conditions, with Argo's semantics.

No data never passes: no traffic gives NODATA, a failed query gives ERROR.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from canaryflow.domain.conditions import parse_condition
from canaryflow.domain.gates import Evidence, Gate, Measurement, Verdict
from canaryflow.domain.means import MIN_STRATA, mean_test
from canaryflow.domain.quantiles import above, quantile
from canaryflow.domain.sequential import rate_bounds as plain_rate_bounds
from canaryflow.domain.stratified import (
    FINE_ODDS,
    ODDS,
    Array,
    dispersion,
    rate_bounds,
    rate_log_lr,
    ratio_bounds,
    share_log_lr,
)

DEFAULT_RATIO_MIN_SAMPLES = 30
#: Share of α spent on the stable rate's bounds with an absolute margin: stable usually sees far more traffic,
#: so its bounds stay tight at a smaller α and the candidate's get the rest.
STABLE_ALPHA_SHARE = 0.2
HIGHER_IS_BETTER = frozenset({"completion_rate", "shadow_agreement", "eval_pass_rate"})


def _measure(gate: Gate, verdict: Verdict, at: float, evidence: Evidence) -> Measurement:
    return Measurement(gate=gate.label, verdict=verdict, at=at, evidence=evidence, dry_run=gate.dry_run)


def error_measurement(gate: Gate, message: str, *, at: float, queries: Sequence[str] = ()) -> Measurement:
    """An ERROR measurement (a query failed): counted against the gate's consecutive-error limit."""
    ev = Evidence(margin=gate.margin, mode=gate.mode, alpha=gate.alpha, queries=list(queries), note=message)
    return _measure(gate, Verdict.ERROR, at, ev)


def nodata_measurement(gate: Gate, message: str, *, at: float, queries: Sequence[str] = ()) -> Measurement:
    """A NODATA measurement: nothing to judge yet. Never a pass."""
    ev = Evidence(margin=gate.margin, mode=gate.mode, alpha=gate.alpha, queries=list(queries), note=message)
    return _measure(gate, Verdict.NODATA, at, ev)


def _needed(gate: Gate, min_samples: int, default: int = 0) -> int:
    """The sample a verdict needs: the gate's own minimum (else ``default``), at least the stage's."""
    return max(gate.min_samples or default, min_samples)


@dataclass(frozen=True)
class RateStrata:
    """A rate gate's counts, one entry per analysis interval (bad events and requests per variation)."""

    cand_events: Sequence[float]
    cand_total: Sequence[float]
    stable_events: Sequence[float]
    stable_total: Sequence[float]

    @classmethod
    def single(cls, ce: float, ct: float, se: float, st: float) -> RateStrata:
        """Totals as one stratum."""
        return cls((ce,), (ct,), (se,), (st,))


@dataclass(frozen=True)
class MeanStrata:
    """A mean gate's per-interval sums and counts per variation."""

    cand_sum: Sequence[float]
    cand_count: Sequence[float]
    stable_sum: Sequence[float]
    stable_count: Sequence[float]


@dataclass(frozen=True)
class BucketStrata:
    """A histogram's per-interval cumulative bucket counts: ``cand[k][b]`` at upper bounds ``les[b]``."""

    les: Sequence[float]
    cand: Sequence[Sequence[float]]
    stable: Sequence[Sequence[float]]


def rate_test(x: Any, nc: Any, y: Any, ns: Any, *, margin: float, floor: float, alpha: float,
              odds: tuple[float, ...] = ODDS) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], Array]:
    """``(fail, ok, phi)`` of the relative rate test, vectorised over leading axes (strata last).

    FAIL: the candidate's rate is above ``(1 + margin)`` × stable's *and* above ``floor``. PASS (ok): it is
    below ``(1 + margin)`` × stable's, or below ``floor``. Each test at α, on counts deflated by φ.
    """
    phi = dispersion(x, nc, y, ns)
    threshold = -math.log(alpha)
    rho0 = 1.0 + margin
    worse = share_log_lr(x, nc, y, ns, rho0, upward=True, phi=phi, odds=odds) >= threshold
    better = share_log_lr(x, nc, y, ns, rho0, upward=False, phi=phi, odds=odds) >= threshold
    if floor > 0:
        worse = worse & (rate_log_lr(x, nc, floor, upward=True, phi=phi) >= threshold)
        better = better | (rate_log_lr(x, nc, floor, upward=False, phi=phi) >= threshold)
    return worse, better, phi


def judge_rate(
    gate: Gate,
    *,
    cand_events: float,
    cand_total: float,
    stable_events: float,
    stable_total: float,
    at: float,
    queries: Sequence[str] = (),
    min_samples: int = 0,
    higher_is_better: bool | None = None,
) -> Measurement:
    """Judge a rate gate from totals (one stratum); see :func:`judge_rate_strata`."""
    return judge_rate_strata(gate, RateStrata.single(cand_events, cand_total, stable_events, stable_total),
                             at=at, queries=queries, min_samples=min_samples,
                             higher_is_better=higher_is_better)


def judge_rate_strata(
    gate: Gate,
    strata: RateStrata,
    *,
    at: float,
    queries: Sequence[str] = (),
    min_samples: int = 0,
    higher_is_better: bool | None = None,
) -> Measurement:
    """Judge a rate gate from per-interval counts since the stage's start.

    Relative margin (the default): the stratified, clustering-robust share test of
    :mod:`canaryflow.domain.stratified` against ``candidate ≤ max((1 + margin) × stable, floor)``.
    Absolute margin: always-valid bounds of each variation's rate (φ-deflated; stable at 0.2·α,
    candidate at 0.8·α), the difference's interval ``[L_c − U_s, U_c − L_s]`` against the margin.
    PASS also needs the minimum candidate sample. For higher-is-better rates (completion) the events are
    the good ones and the test runs on their complement.
    """
    if higher_is_better is None:
        higher_is_better = gate.metric in HIGHER_IS_BETTER or gate.higher_is_better
    hib = higher_is_better
    ct = np.asarray(strata.cand_total, dtype=np.float64)
    st = np.asarray(strata.stable_total, dtype=np.float64)
    ce = np.clip(np.asarray(strata.cand_events, dtype=np.float64), 0.0, ct)
    se = np.clip(np.asarray(strata.stable_events, dtype=np.float64), 0.0, st)
    n_c, n_s = float(ct.sum()), float(st.sum())
    if n_c <= 0 or n_s <= 0:
        who = "candidate" if n_c <= 0 else "stable"
        return nodata_measurement(gate, f"no {who} requests in the window yet", at=at, queries=queries)
    bad_c, bad_s = (ct - ce, st - se) if hib else (ce, se)
    x_c, x_s = float(bad_c.sum()), float(bad_s.sum())
    pc, ps = x_c / n_c, x_s / n_s
    margin = gate.margin or 0.0
    alpha = gate.alpha
    strata_n = int(((ct > 0) | (st > 0)).sum())
    floor = gate.rate_floor
    if gate.mode == "relative":
        fail_a, ok_a, phi_a = rate_test(bad_c, ct, bad_s, st, margin=margin, floor=floor, alpha=alpha)
        fail, ok, phi = bool(fail_a), bool(ok_a), float(phi_a)
        r_lo, r_hi = ratio_bounds(bad_c, ct, bad_s, st, alpha, phi)
        events = x_c + x_s
        lo = _difference_at(r_lo, events, n_c, n_s)
        hi = _difference_at(r_hi, events, n_c, n_s)
        allowed = max((1.0 + margin) * ps, floor)
        method = "stratified mixture SPRT on the candidate's share of bad events"
        note = (f"rate ratio CS [{r_lo:.3g}, {_fmt_inf(r_hi)}] vs allowed {1 + margin:.3g}"
                + (f" or candidate rate below {floor:g}" if floor > 0 else "")
                + f"; {strata_n} intervals, dispersion {phi:.2f}")
    else:
        phi = float(dispersion(bad_c, ct, bad_s, st))
        lc, uc = rate_bounds(x_c, n_c, alpha * (1 - STABLE_ALPHA_SHARE), phi)
        ls, us = rate_bounds(x_s, n_s, alpha * STABLE_ALPHA_SHARE, phi)
        lo, hi = lc - us, uc - ls
        fail, ok = lo > margin, hi < margin
        allowed = ps + margin
        method = "always-valid rate bounds per variation (union bound)"
        note = (f"rate CS candidate [{lc:.4g}, {uc:.4g}] at {1 - STABLE_ALPHA_SHARE:g}α, "
                f"stable [{ls:.4g}, {us:.4g}] at {STABLE_ALPHA_SHARE:g}α; dispersion {phi:.2f}")
    needed = _needed(gate, min_samples)
    if fail:
        verdict = Verdict.FAIL
    elif ok and n_c >= needed:
        verdict = Verdict.PASS
    else:
        verdict = Verdict.INCONCLUSIVE
        if ok:
            note += f"; waiting for {needed:g} candidate samples"
    ev_c, ev_s = x_c, x_s
    if hib:  # report the rate the user configured: completion = 1 − bad, so the difference flips sign
        pc, ps, lo, hi = 1.0 - pc, 1.0 - ps, -hi, -lo
        allowed = 1.0 - allowed
        ev_c, ev_s = n_c - x_c, n_s - x_s
    ev = Evidence(
        stable_value=ps, candidate_value=pc, stable_samples=n_s, candidate_samples=n_c,
        stable_events=ev_s, candidate_events=ev_c, difference=pc - ps, interval=(_finite(lo), _finite(hi)),
        allowed=allowed, margin=gate.margin, mode=gate.mode, alpha=alpha, queries=list(queries), note=note,
        method=method, strata=strata_n,
    )
    return _measure(gate, verdict, at, ev)


def judge_mean_strata(
    gate: Gate,
    strata: MeanStrata,
    *,
    at: float,
    queries: Sequence[str] = (),
    min_samples: int = 0,
    higher_is_better: bool = False,
) -> Measurement:
    """Judge a mean where lower is better (cost, tokens per request) — or higher, for evaluation scores:
    candidate ≥ (1 − margin) × stable — from per-interval sums and counts, by the stratified always-valid
    test of :mod:`canaryflow.domain.means`."""
    nc = np.asarray(strata.cand_count, dtype=np.float64)
    ns = np.asarray(strata.stable_count, dtype=np.float64)
    if nc.sum() <= 0 or ns.sum() <= 0:
        return nodata_measurement(gate, "no requests in the window yet", at=at, queries=queries)
    margin = gate.margin or 0.0
    relative = gate.mode == "relative"
    r = mean_test(strata.cand_sum, nc, strata.stable_sum, ns, margin=margin, relative=relative,
                  alpha=gate.alpha, higher_is_better=higher_is_better)
    cm, sm = float(r["cand_mean"]), float(r["stable_mean"])
    lo, hi, strata_n = float(r["lo"]), float(r["hi"]), int(r["strata"])
    sign = -1.0 if higher_is_better else 1.0
    allowed = (1.0 + sign * margin) * sm if relative else sm + sign * margin
    needed = _needed(gate, min_samples, DEFAULT_RATIO_MIN_SAMPLES)
    what = f"allowed {allowed:.4g} − candidate mean" if higher_is_better else \
        f"candidate mean − allowed {allowed:.4g}"
    note = f"{what}: CS [{lo:.4g}, {hi:.4g}] per request over {strata_n} intervals"
    # the interval of candidate − stable (the excess counts downwards when higher is better)
    interval = ((allowed - hi - sm, allowed - lo - sm) if higher_is_better
                else (lo + allowed - sm, hi + allowed - sm))
    if r["fail"]:
        verdict = Verdict.FAIL
    elif r["ok"] and nc.sum() >= needed:
        verdict = Verdict.PASS
    else:
        verdict = Verdict.INCONCLUSIVE
        if strata_n < MIN_STRATA:
            note += f"; waiting for {MIN_STRATA} intervals with both variations"
        elif r["ok"]:
            note += f"; waiting for {needed} candidate samples"
    ev = Evidence(
        stable_value=sm, candidate_value=cm, stable_samples=float(ns.sum()),
        candidate_samples=float(nc.sum()), difference=cm - sm,
        interval=interval, allowed=allowed, margin=gate.margin, mode=gate.mode, alpha=gate.alpha,
        queries=list(queries),
        note=note, method="stratified normal-mixture mSPRT on per-interval means", strata=strata_n,
    )
    return _measure(gate, verdict, at, ev)


def quantile_test(les: Any, cand: Any, stable: Any, q: float, *, margin: float, relative: bool,
                  alpha: float) -> dict[str, Array]:
    """The quantile test, vectorised (``cand[..., k, b]`` cumulative per interval): the candidate's
    requests above the allowed value ``T`` (stable's quantile × (1 + margin), or + margin) against
    stable's requests above its own quantile, as a stratified rate test with ratio 1 — the candidate's
    q-quantile exceeds T exactly when more than 1 − q of its requests do."""
    cand_a, stable_a = np.asarray(cand, dtype=np.float64), np.asarray(stable, dtype=np.float64)
    q_s = quantile(les, stable_a.sum(-2), q)
    q_c = quantile(les, cand_a.sum(-2), q)
    safe_q = np.where(np.isnan(q_s), 0.0, q_s)
    allowed = safe_q * (1.0 + margin) if relative else safe_q + margin
    x = above(les, cand_a, allowed)
    y = above(les, stable_a, safe_q)
    nc, ns = cand_a[..., -1], stable_a[..., -1]
    fail, ok, phi = rate_test(x, nc, y, ns, margin=0.0, floor=0.0, alpha=alpha, odds=FINE_ODDS)
    defined = ~np.isnan(q_s)
    return {"fail": (fail & defined).astype(np.float64), "ok": (ok & defined).astype(np.float64),
            "phi": phi, "cand_q": q_c, "stable_q": q_s,
            "allowed": allowed, "x": x, "y": y, "nc": nc, "ns": ns}


def judge_quantile_strata(
    gate: Gate,
    strata: BucketStrata,
    q: float,
    *,
    at: float,
    queries: Sequence[str] = (),
    min_samples: int = 0,
) -> Measurement:
    """Judge a latency quantile from per-interval histogram buckets (see :func:`quantile_test`)."""
    les = np.asarray(strata.les, dtype=np.float64)
    if not len(strata.cand) or not len(strata.stable) or les.size == 0:
        return nodata_measurement(gate, "no requests in the window yet", at=at, queries=queries)
    cand = np.asarray(strata.cand, dtype=np.float64)
    stable = np.asarray(strata.stable, dtype=np.float64)
    n_c, n_s = float(cand[:, -1].sum()), float(stable[:, -1].sum())
    if n_c <= 0 or n_s <= 0:
        return nodata_measurement(gate, "no requests in the window yet", at=at, queries=queries)
    margin = gate.margin or 0.0
    relative = gate.mode == "relative"
    r = quantile_test(les, cand, stable, q, margin=margin, relative=relative, alpha=gate.alpha)
    qc, qs, allowed, phi = float(r["cand_q"]), float(r["stable_q"]), float(r["allowed"]), float(r["phi"])
    x, y = r["x"], r["y"]
    lo, hi = ratio_bounds(x, r["nc"], y, r["ns"], gate.alpha, phi, odds=FINE_ODDS)
    needed = _needed(gate, min_samples, DEFAULT_RATIO_MIN_SAMPLES)
    share = 1.0 - q
    note = (f"candidate requests above {allowed:.4g}: {float(x.sum()):.4g}/{n_c:g}, vs stable's above its "
            f"p{100 * q:g} {float(y.sum()):.4g}/{n_s:g}; ratio CS [{lo:.3g}, {_fmt_inf(hi)}] vs 1 "
            f"({share:.3g} of requests may exceed); dispersion {phi:.2f}")
    if bool(r["fail"]):
        verdict = Verdict.FAIL
    elif bool(r["ok"]) and n_c >= needed:
        verdict = Verdict.PASS
    else:
        verdict = Verdict.INCONCLUSIVE
        if bool(r["ok"]):
            note += f"; waiting for {needed} candidate samples"
    ev = Evidence(
        stable_value=qs, candidate_value=None if math.isnan(qc) else qc, stable_samples=n_s,
        candidate_samples=n_c, difference=None if math.isnan(qc) else qc - qs, allowed=allowed,
        margin=gate.margin, mode=gate.mode, alpha=gate.alpha, queries=list(queries), note=note,
        method="stratified mixture SPRT on requests above the allowed quantile", strata=int(cand.shape[0]),
    )
    return _measure(gate, verdict, at, ev)


def judge_ratio(
    gate: Gate,
    *,
    cand_value: float | None,
    stable_value: float | None,
    cand_samples: float,
    stable_samples: float,
    at: float,
    queries: Sequence[str] = (),
    min_samples: int = 0,
    quantile: float | None = None,
    cand_buckets: Sequence[tuple[float, float]] | None = None,
) -> Measurement:
    """Judge a value where lower is better (latency quantile, cost or tokens per request).

    Relative mode compares ``candidate / stable − 1`` with the margin; absolute mode the difference.
    Neither PASS nor FAIL before both variations have the minimum sample
    (default :data:`DEFAULT_RATIO_MIN_SAMPLES`).

    For a quantile ``q`` with the candidate's histogram (``cand_buckets``: cumulative ``(le, count)``),
    a FAIL also needs sequential evidence: the allowed value ``T`` (stable's quantile plus the margin) is
    exceeded by more than ``1 − q`` of the candidate's requests — the always-valid lower bound of the share
    of requests above T (:func:`exceedances`) must exceed ``1 − q``. A quantile read off a few requests'
    buckets can jump a whole bucket; this keeps such noise from rolling a good candidate back.
    """
    needed = _needed(gate, min_samples, DEFAULT_RATIO_MIN_SAMPLES)
    if cand_samples <= 0 or stable_samples <= 0 or cand_value is None or stable_value is None:
        return nodata_measurement(gate, "no requests in the window yet", at=at, queries=queries)
    if not (math.isfinite(cand_value) and math.isfinite(stable_value)):
        return nodata_measurement(gate, "the quantile is not defined yet (NaN)", at=at, queries=queries)
    margin = gate.margin or 0.0
    diff = cand_value - stable_value
    if gate.mode == "relative":
        excess = _relative_excess(cand_value, stable_value)
        note = f"candidate/stable = {excess + 1.0:.4g} (allowed ≤ {1.0 + margin:.4g})"
    else:
        excess = diff
        note = f"candidate − stable = {diff:.4g} (allowed ≤ {margin:g})"
    interval: tuple[float, float] | None = None
    if min(cand_samples, stable_samples) < needed:
        verdict = Verdict.INCONCLUSIVE
        note += f"; waiting for {needed} samples per variation"
    else:
        verdict = Verdict.FAIL if excess > margin else Verdict.PASS
    if verdict is Verdict.FAIL and quantile is not None and cand_buckets:
        allowed = stable_value * (1 + margin) if gate.mode == "relative" else stable_value + margin
        above, total = exceedances(cand_buckets, allowed)
        lo, hi = plain_rate_bounds(above, total, gate.alpha)
        interval = (lo, hi)
        note += (f"; share of candidate requests above {allowed:.4g}: ≥ {above:g}/{total:g}, "
                 f"CS [{lo:.3g}, {hi:.3g}] vs {1 - quantile:.3g}")
        if lo <= 1 - quantile:
            verdict = Verdict.INCONCLUSIVE
    ev = Evidence(
        stable_value=stable_value, candidate_value=cand_value, stable_samples=stable_samples,
        candidate_samples=cand_samples, difference=diff, interval=interval, margin=gate.margin,
        mode=gate.mode, alpha=gate.alpha, queries=list(queries), note=note,
    )
    return _measure(gate, verdict, at, ev)


def exceedances(buckets: Sequence[tuple[float, float]], threshold: float) -> tuple[float, float]:
    """``(how many observations exceed threshold, total)`` from cumulative histogram buckets.

    Within the bucket holding ``threshold`` observations are taken as evenly spread — the same linear
    interpolation ``histogram_quantile`` uses for the quantile itself.
    """
    ordered = sorted(buckets)
    if not ordered:
        return 0.0, 0.0
    total = ordered[-1][1]
    prev_le, prev_cum = 0.0, 0.0
    for le, cum in ordered:
        if le >= threshold:
            if math.isinf(le):
                return max(0.0, total - prev_cum), total
            share = (threshold - prev_le) / (le - prev_le) if le > prev_le else 1.0
            below = prev_cum + (cum - prev_cum) * max(0.0, min(1.0, share))
            return max(0.0, total - below), total
        prev_le, prev_cum = le, cum
    return 0.0, total


def judge_floor(
    gate: Gate,
    *,
    value: float | None,
    samples: float,
    at: float,
    queries: Sequence[str] = (),
    min_samples: int = 0,
) -> Measurement:
    """Judge a mean that must stay at or above ``1 − margin`` (shadow agreement, scores in [0, 1])."""
    needed = _needed(gate, min_samples, DEFAULT_RATIO_MIN_SAMPLES)
    if samples <= 0 or value is None or not math.isfinite(value):
        return nodata_measurement(gate, "no scored pairs in the window yet", at=at, queries=queries)
    floor = 1.0 - (gate.margin or 0.0)
    note = f"mean {value:.4g} vs floor {floor:.4g}"
    if samples < needed:
        verdict = Verdict.INCONCLUSIVE
        note += f"; waiting for {needed} samples"
    else:
        verdict = Verdict.PASS if value >= floor else Verdict.FAIL
    ev = Evidence(
        candidate_value=value, candidate_samples=samples, difference=value - floor, margin=gate.margin,
        mode=gate.mode, alpha=gate.alpha, queries=list(queries), note=note,
    )
    return _measure(gate, verdict, at, ev)


def judge_custom(
    gate: Gate, *, result: float | None, at: float, queries: Sequence[str] = ()
) -> Measurement:
    """Judge a custom PromQL result with Argo's semantics.

    Failure condition true → FAIL. Success condition: true → PASS, false → FAIL when no failure condition
    is given, INCONCLUSIVE when both are given and neither holds. Only a failure condition, false → PASS.
    An empty or NaN result → NODATA.
    """
    if result is None or math.isnan(result):
        return nodata_measurement(gate, "the query returned no value", at=at, queries=queries)
    success = parse_condition(gate.success) if gate.success else None
    failure = parse_condition(gate.failure) if gate.failure else None
    if failure is not None and failure.holds(result):
        verdict, why = Verdict.FAIL, f"failure condition '{failure.text}' holds"
    elif success is not None:
        if success.holds(result):
            verdict, why = Verdict.PASS, f"success condition '{success.text}' holds"
        elif failure is None:
            verdict, why = Verdict.FAIL, f"success condition '{success.text}' does not hold"
        else:
            verdict, why = Verdict.INCONCLUSIVE, "neither condition holds"
    else:
        verdict, why = Verdict.PASS, "failure condition does not hold"
    note = f"result {result:.6g}: {why}"
    ev = Evidence(candidate_value=result, alpha=gate.alpha, queries=list(queries), note=note)
    return _measure(gate, verdict, at, ev)


def _difference_at(rho: float, events: float, cand_total: float, stable_total: float) -> float:
    """The rate difference p_c − p_s implied by a rate ratio ρ, with both rates fitted to the pooled
    events: ``p_s = events / (ρ·n_c + n_s)``, ``p_c = ρ·p_s`` (monotone in ρ)."""
    if math.isinf(rho):
        return events / cand_total
    return (rho - 1.0) * events / (rho * cand_total + stable_total)


def _relative_excess(cand: float, stable: float) -> float:
    if stable > 0:
        return cand / stable - 1.0
    return 0.0 if cand <= 0 else math.inf


def _fmt_inf(x: float) -> str:
    return "∞" if math.isinf(x) else f"{x:.3g}"


def _finite(x: float) -> float:
    """Evidence is JSON: clamp infinite bounds to ±1e308-free sentinels."""
    if math.isinf(x):
        return 1e9 if x > 0 else -1e9
    return x


__all__ = [
    "DEFAULT_RATIO_MIN_SAMPLES",
    "HIGHER_IS_BETTER",
    "BucketStrata",
    "MeanStrata",
    "RateStrata",
    "error_measurement",
    "exceedances",
    "judge_custom",
    "judge_floor",
    "judge_mean_strata",
    "judge_quantile_strata",
    "judge_rate",
    "judge_rate_strata",
    "judge_ratio",
    "nodata_measurement",
    "quantile_test",
    "rate_test",
]
