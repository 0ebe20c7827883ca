"""Exact per-interval counts from raw counter samples (pure: no Prometheus client here).

``increase()`` extrapolates to the window's edges (fractions of requests nobody sent) and cannot see a
series go from absent to its first value. The gates instead fetch each series' **raw samples** over the
stage (a range selector, ``metric{...}[W]``, evaluated at now) and add up what the counters actually did:

* the baseline of a series is its last sample at or before the stage's start — or 0 when the series first
  appears during the stage (the exporter creates every series a gate reads at 0, and a series born with a
  value counted that value after it was born);
* each later sample adds ``v − previous``, or ``v`` itself when the counter went down (a reset: the
  process restarted and counted ``v`` since);
* the increase is credited to the analysis interval holding the sample, and summed over every series —
  every replica (``instance``), every label set that appeared during the stage.

Counts are whole numbers when the counters are (request counts); sums (cost, token totals) are exact sums.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

Samples = Sequence[tuple[float, float]]
RawSeries = tuple[Mapping[str, str], Samples]


def edges(start: float, now: float, interval: float) -> list[float]:
    """Interval boundaries ``[start, start + I, ..., now]`` (the last interval may be shorter; ≥ 1)."""
    k = max(1, math.ceil((now - start) / interval - 1e-9))
    out = [start + j * interval for j in range(k)]
    out.append(max(now, start))
    return out


def stratum_of(t: float, start: float, interval: float, k: int) -> int:
    """The interval index of a sample taken at ``t`` (> start)."""
    return min(k - 1, max(0, math.ceil((t - start) / interval) - 1))


def series_increases(samples: Samples, start: float, now: float, interval: float) -> list[float]:
    """One counter series' reset-aware increase in each interval of ``(start, now]``."""
    k = len(edges(start, now, interval)) - 1
    out = [0.0] * k
    prev: float | None = None
    for t, v in sorted(samples):
        if t <= start:
            prev = v
            continue
        if t > now:
            break
        base = 0.0 if prev is None else prev
        inc = v - base if v >= base else v
        out[stratum_of(t, start, interval, k)] += inc
        prev = v
    return out


def increases(
    series: Iterable[RawSeries],
    start: float,
    now: float,
    interval: float,
    keep: Callable[[Mapping[str, str]], bool] | None = None,
) -> list[float]:
    """The per-interval increase summed over every series whose labels ``keep`` accepts (all by default)."""
    k = len(edges(start, now, interval)) - 1
    total = [0.0] * k
    for labels, samples in series:
        if keep is not None and not keep(labels):
            continue
        for j, inc in enumerate(series_increases(samples, start, now, interval)):
            total[j] += inc
    return total


def increases_by(
    series: Iterable[RawSeries], label: str, start: float, now: float, interval: float,
    keep: Callable[[Mapping[str, str]], bool] | None = None,
) -> dict[str, list[float]]:
    """Per-interval increases summed per value of ``label`` (e.g. ``le`` of histogram buckets)."""
    k = len(edges(start, now, interval)) - 1
    out: dict[str, list[float]] = {}
    for labels, samples in series:
        if keep is not None and not keep(labels):
            continue
        row = out.setdefault(labels.get(label, ""), [0.0] * k)
        for j, inc in enumerate(series_increases(samples, start, now, interval)):
            row[j] += inc
    return out


__all__ = ["RawSeries", "Samples", "edges", "increases", "increases_by", "series_increases", "stratum_of"]
