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

from canaryflow.domain.conditions import parse_condition
from canaryflow.domain.gates import Evidence, Gate, Measurement, Verdict
from canaryflow.domain.sequential import rate_bounds, ratio_bounds

DEFAULT_RATIO_MIN_SAMPLES = 30
#: Share of α spent on the stable rate's bounds with an absolute margin: stable usually sees far more traffic,
#: so its bounds stay tight at a smaller α and the candidate's get the rest.
STABLE_ALPHA_SHARE = 0.2
HIGHER_IS_BETTER = frozenset({"completion_rate", "shadow_agreement"})


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
    """Judge a rate gate from counts since the stage's start.

    Args:
        gate: the gate (margin, mode, alpha, min_samples).
        cand_events: the candidate's counted events (errors; for higher-is-better rates, the good ones).
        cand_total: the candidate's requests (the rate's denominator).
        stable_events: the stable version's counted events.
        stable_total: the stable version's requests.
        at: seconds since the epoch.
        queries: the PromQL that produced the counts (evidence).
        min_samples: the stage's minimum candidate sample for a PASS (the gate's own may be larger).
        higher_is_better: the rate is good (completion); default from the gate's metric.

    Returns:
        The measurement; its evidence interval bounds candidate − stable of the rate as reported.
    """
    if higher_is_better is None:
        higher_is_better = gate.metric in HIGHER_IS_BETTER or gate.higher_is_better
    hib = higher_is_better
    if cand_total <= 0 or stable_total <= 0:
        who = "candidate" if cand_total <= 0 else "stable"
        return nodata_measurement(gate, f"no {who} requests in the window yet", at=at, queries=queries)
    cand_events = min(max(cand_events, 0.0), cand_total)
    stable_events = min(max(stable_events, 0.0), stable_total)
    # Judge the *bad* rate: for completion rates that is the share that did not complete.
    bad_c = cand_total - cand_events if hib else cand_events
    bad_s = stable_total - stable_events if hib else stable_events
    pc, ps = bad_c / cand_total, bad_s / stable_total
    margin = gate.margin or 0.0
    alpha = gate.alpha
    if gate.mode == "relative" or margin == 0.0:
        rho0 = 1.0 + margin if gate.mode == "relative" else 1.0
        r_lo, r_hi = ratio_bounds(bad_c, cand_total, bad_s, stable_total, alpha)
        events = bad_c + bad_s
        lo = _difference_at(r_lo, events, cand_total, stable_total)
        hi = _difference_at(r_hi, events, cand_total, stable_total)
        fail, ok = r_lo > rho0, r_hi < rho0
        note = (f"rate ratio CS [{r_lo:.3g}, {r_hi:.3g}] vs allowed {rho0:.3g} "
                f"(mixture SPRT on the candidate's share of {bad_c + bad_s:g} bad events)")
    else:
        lc, uc = rate_bounds(bad_c, cand_total, alpha * (1 - STABLE_ALPHA_SHARE))
        ls, us = rate_bounds(bad_s, stable_total, alpha * STABLE_ALPHA_SHARE)
        lo, hi = lc - us, uc - ls
        fail, ok = lo > margin, hi < margin
        note = (f"rate CS candidate [{lc:.4g}, {uc:.4g}] at {1 - STABLE_ALPHA_SHARE:g}α, "
                f"stable [{ls:.4g}, {us:.4g}] at {STABLE_ALPHA_SHARE:g}α")
    needed = _needed(gate, min_samples)
    if fail:
        verdict = Verdict.FAIL
    elif ok and cand_total >= needed:
        verdict = Verdict.PASS
    else:
        verdict = Verdict.INCONCLUSIVE
        if ok:
            note += f"; waiting for {needed:g} candidate samples"
    if hib:  # report the rate the user configured: completion = 1 − bad, so the difference flips sign
        pc, ps, lo, hi = 1.0 - pc, 1.0 - ps, -hi, -lo
    ev = Evidence(
        stable_value=ps, candidate_value=pc, stable_samples=stable_total, candidate_samples=cand_total,
        difference=pc - ps, interval=(_finite(lo), _finite(hi)), margin=gate.margin, mode=gate.mode,
        alpha=alpha, queries=list(queries), note=note,
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
        lo, hi = rate_bounds(above, total, gate.alpha)
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


def _finite(x: float) -> float:
    """Evidence is JSON: clamp infinite bounds to ±1e308-free sentinels."""
    if math.isinf(x):
        return 1e9 if x > 0 else -1e9
    return x


__all__ = [
    "DEFAULT_RATIO_MIN_SAMPLES",
    "HIGHER_IS_BETTER",
    "error_measurement",
    "exceedances",
    "judge_custom",
    "judge_floor",
    "judge_rate",
    "judge_ratio",
    "nodata_measurement",
]
