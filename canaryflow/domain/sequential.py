"""Always-valid (anytime) confidence sequences for rates, used by the judge (pure, stdlib only).

Checking a fixed-horizon test at every analysis interval inflates its false-alarm rate; a confidence
sequence does not: with probability at least 1 − α it covers the true value at *every* time at once
(Ville's inequality applied to a mixture likelihood ratio). Two constructions:

* :func:`rate_bounds` — one variation's Bernoulli rate ``events / trials``. The test martingale is a
  mixture of Wald SPRTs whose alternatives shift the odds of the null by the factors in ``ODDS``
  (equal weights); it is a martingale under the null and a supermartingale for any rate on the other
  side, so the one-sided bounds below are valid at level α each.
* :func:`share_bounds` — the candidate's share of all *events* (errors) when both variations run side by
  side. Given n_c and n_s requests, an error comes from the candidate with probability
  ``π = ρ·n_c / (ρ·n_c + n_s)`` where ρ = p_c / p_s is the rate ratio. The stable rate cancels, so the
  precise stable data is used fully and no α is spent on it (conditioning on the event total; for rare
  events this is the classic conditional test for comparing Poisson rates, and by Hoeffding (1963)
  sampling without replacement only makes the binomial mixture more conservative).
  :func:`ratio_bounds` turns the share's bounds into bounds for ρ.

All functions accept real-valued counts (Prometheus ``increase()`` extrapolates).
"""

from __future__ import annotations

import math

ODDS: tuple[float, ...] = (1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)
_ITER = 60


def log_mixture_lr(events: float, trials: float, p0: float, factors: tuple[float, ...]) -> float:
    """Log of the equal-weight mixture of Wald likelihood ratios of ``p_k`` against ``p0``.

    ``p_k`` has the odds of ``p0`` times ``factors[k]``; with S events in t trials the log LR of one
    component is ``S·ln r − t·ln(1 + p0·(r − 1))`` — monotone in ``p0``, so bounds bisect cleanly.
    """
    terms = [events * math.log(r) - trials * math.log1p(p0 * (r - 1.0)) for r in factors]
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms) / len(terms))


def lower_bound(events: float, trials: float, alpha: float, factors: tuple[float, ...] = ODDS) -> float:
    """Always-valid one-sided lower confidence bound for a Bernoulli rate at level ``alpha``."""
    if trials <= 0:
        return 0.0
    threshold = -math.log(alpha)
    p_hat = min(max(events / trials, 0.0), 1.0)
    lo, hi = 1e-12, p_hat
    if hi <= lo or log_mixture_lr(events, trials, lo, factors) < threshold:
        return 0.0
    for _ in range(_ITER):
        mid = (lo + hi) / 2
        if log_mixture_lr(events, trials, mid, factors) >= threshold:
            lo = mid
        else:
            hi = mid
    return hi


def upper_bound(events: float, trials: float, alpha: float, factors: tuple[float, ...] = ODDS) -> float:
    """Always-valid one-sided upper confidence bound for a Bernoulli rate at level ``alpha``."""
    if trials <= 0:
        return 1.0
    # By symmetry: an upper bound for p is one minus a lower bound for 1 − p.
    return 1.0 - lower_bound(trials - events, trials, alpha, factors)


def rate_bounds(events: float, trials: float, alpha: float) -> tuple[float, float]:
    """``(lower, upper)`` always-valid bounds for a rate, each one-sided at level ``alpha``."""
    return lower_bound(events, trials, alpha), upper_bound(events, trials, alpha)


def share_bounds(cand_events: float, stable_events: float, alpha: float) -> tuple[float, float]:
    """``(lower, upper)`` always-valid bounds for the candidate's share π of all events."""
    return rate_bounds(cand_events, cand_events + stable_events, alpha)


def share_to_ratio(share: float, cand_trials: float, stable_trials: float) -> float:
    """Rate ratio ρ = p_c / p_s implied by the candidate's share π of events: ``π/(1−π)·n_s/n_c``."""
    if share <= 0.0:
        return 0.0
    if share >= 1.0 or cand_trials <= 0:
        return math.inf
    return share / (1.0 - share) * stable_trials / cand_trials


def ratio_bounds(
    cand_events: float, cand_trials: float, stable_events: float, stable_trials: float, alpha: float
) -> tuple[float, float]:
    """``(lower, upper)`` always-valid bounds for the rate ratio p_c / p_s, each one-sided at ``alpha``.

    With no events at all the ratio is unknown: ``(0, inf)``.
    """
    lo, hi = share_bounds(cand_events, stable_events, alpha)
    return share_to_ratio(lo, cand_trials, stable_trials), share_to_ratio(hi, cand_trials, stable_trials)


def normal_mixture_halfwidth(variance: float, tau2: float, alpha: float) -> float:
    """Half-width of the normal-mixture mSPRT confidence sequence (Robbins; Johari et al.).

    ``sqrt(V(V+τ²)/τ² · (−2 ln α + ln((V+τ²)/V)))`` for an estimate with variance V, mixing variance τ².
    """
    if variance <= 0:
        return 0.0
    spread = -2.0 * math.log(alpha) + math.log((variance + tau2) / variance)
    return math.sqrt(variance * (variance + tau2) / tau2 * spread)


__all__ = [
    "ODDS",
    "log_mixture_lr",
    "lower_bound",
    "normal_mixture_halfwidth",
    "rate_bounds",
    "ratio_bounds",
    "share_bounds",
    "share_to_ratio",
    "upper_bound",
]
