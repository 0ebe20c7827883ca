"""Quantiles and exceedances from histogram bucket counts, per interval (pure; numpy).

Buckets are cumulative counts at the upper bounds ``les`` (sorted, the last may be +inf), the way
Prometheus exposes them; within a bucket observations are taken as evenly spread, as ``histogram_quantile``
does. A latency quantile gate becomes a rate test (see :mod:`canaryflow.domain.judge`): the candidate's
requests above the allowed value against stable's requests above its own quantile, interval by interval.

Arrays: ``cum[..., k, b]`` — leading axes independent problems, then strata, then buckets.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from canaryflow.domain.stratified import Array


def quantile(les: Any, cum: Any, q: float) -> Array:
    """The ``q``-quantile of cumulative bucket counts ``cum[..., b]`` (NaN where there is no observation)."""
    les_a, cum_a = np.asarray(les, dtype=np.float64), np.asarray(cum, dtype=np.float64)
    total = cum_a[..., -1]
    rank = q * total
    idx = np.argmax(cum_a >= rank[..., None], axis=-1)
    finite = les_a[np.isfinite(les_a)]
    last_finite = finite[-1] if finite.size else 0.0
    upper = les_a[idx]
    lower = np.where(idx > 0, les_a[np.maximum(idx - 1, 0)], 0.0)
    below = np.where(idx > 0, np.take_along_axis(cum_a, np.maximum(idx - 1, 0)[..., None], -1)[..., 0], 0.0)
    inside = np.take_along_axis(cum_a, idx[..., None], -1)[..., 0] - below
    frac = np.divide(rank - below, inside, out=np.ones_like(rank), where=inside > 0)
    value = np.where(np.isinf(upper), last_finite, lower + (upper - lower) * frac)
    return np.asarray(np.where(total > 0, value, np.nan), dtype=np.float64)


def above(les: Any, cum: Any, threshold: Any) -> Array:
    """Observations above ``threshold`` in each interval: ``cum[..., k, b]`` → ``[..., k]``.

    ``threshold`` has the leading shape (one value per problem, the same for all its intervals).
    """
    les_a, cum_a = np.asarray(les, dtype=np.float64), np.asarray(cum, dtype=np.float64)
    t = np.asarray(threshold, dtype=np.float64)
    idx = np.searchsorted(les_a, t, side="left")  # first bucket with le >= t
    idx = np.clip(idx, 0, les_a.size - 1)
    upper = les_a[idx]
    lower = np.where(idx > 0, les_a[np.maximum(idx - 1, 0)], 0.0)
    width = np.where(np.isinf(upper), 0.0, upper - lower)
    frac = np.where(width > 0, np.clip((t - lower) / np.where(width > 0, width, 1.0), 0.0, 1.0), 0.0)
    take = np.broadcast_to(idx[..., None, None], (*cum_a.shape[:-1], 1))
    below_take = np.broadcast_to(np.maximum(idx - 1, 0)[..., None, None], (*cum_a.shape[:-1], 1))
    cum_i = np.take_along_axis(cum_a, take, -1)[..., 0]
    cum_prev = np.where(idx[..., None] > 0, np.take_along_axis(cum_a, below_take, -1)[..., 0], 0.0)
    below = cum_prev + (cum_i - cum_prev) * frac[..., None]
    beyond = t[..., None] > les_a[-1] if np.isfinite(les_a[-1]) else np.zeros_like(below, dtype=bool)
    below = np.where(beyond, cum_a[..., -1], below)
    return np.asarray(np.maximum(cum_a[..., -1] - below, 0.0), dtype=np.float64)


__all__ = ["above", "quantile"]
