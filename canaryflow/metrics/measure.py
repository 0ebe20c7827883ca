"""One analysis interval: query every gate's numbers and let the judge decide (no Temporal here).

:func:`measure_sync` never raises for a metrics problem: a query that fails becomes an ERROR measurement
(counted against the gate's consecutive-error limit), an empty answer becomes NODATA.
"""

from __future__ import annotations

import asyncio
import math
import time

from canaryflow.domain.analysis import AnalysisReport, AnalysisRequest
from canaryflow.domain.gates import Gate, Measurement
from canaryflow.domain.judge import (
    error_measurement,
    judge_custom,
    judge_floor,
    judge_rate,
    judge_ratio,
)
from canaryflow.domain.templating import render
from canaryflow.errors import MetricsUnavailable, ValidationFailed
from canaryflow.metrics.promql import (
    QUANTILES,
    RATE_METRICS,
    REQUESTS,
    Selector,
    expand,
    rate_queries,
    selectors,
    value_queries,
    window_seconds,
)
from canaryflow.metrics.source import MetricsSource, PrometheusUnreachable


def _zero(x: float | None) -> float:
    return 0.0 if x is None else x


def _rate(gate: Gate, src: MetricsSource, cand: Selector, stable: Selector, window: int, now: float,
          min_samples: int) -> Measurement:
    if gate.is_ratio:
        events, total = gate.events or "", gate.total or ""
        queries = [expand(events, cand, window), expand(total, cand, window),
                   expand(events, stable, window), expand(total, stable, window)]
    else:
        qc, qs = rate_queries(gate.metric, cand, window), rate_queries(gate.metric, stable, window)
        queries = [qc.events, qc.total, qs.events, qs.total]
    try:
        ce, ct, se, st = (src.scalar(q, at=now) for q in queries)
    except MetricsUnavailable as exc:
        return error_measurement(gate, str(exc), at=now, queries=queries)
    return judge_rate(gate, cand_events=_zero(ce), cand_total=_zero(ct), stable_events=_zero(se),
                      stable_total=_zero(st), at=now, queries=queries, min_samples=min_samples)


def _value(src: MetricsSource, value: str | None, numerator: str | None, samples: str, now: float
           ) -> tuple[float | None, float]:
    n = _zero(src.scalar(samples, at=now))
    if value is not None:
        return src.scalar(value, at=now), n
    num = _zero(src.scalar(numerator, at=now)) if numerator is not None else 0.0
    return (num / n if n > 0 else None), n


def _values(gate: Gate, src: MetricsSource, cand: Selector, stable: Selector, window: int, now: float,
            min_samples: int) -> Measurement:
    qc, qs = value_queries(gate.metric, cand, window), value_queries(gate.metric, stable, window)
    queries = [q for vq in (qc, qs) for q in (vq.value, vq.numerator, vq.samples) if q is not None]
    try:
        cv, cn = _value(src, qc.value, qc.numerator, qc.samples, now)
        if gate.metric == "shadow_agreement":
            return judge_floor(gate, value=cv, samples=cn, at=now, queries=queries[:2],
                               min_samples=min_samples)
        sv, sn = _value(src, qs.value, qs.numerator, qs.samples, now)
        buckets = None
        if qc.buckets is not None:
            raw = src.vector(qc.buckets, at=now, label="le")
            buckets = [(float(le), count) for le, count in raw.items() if le]
            queries.append(qc.buckets)
    except MetricsUnavailable as exc:
        return error_measurement(gate, str(exc), at=now, queries=queries)
    return judge_ratio(gate, cand_value=cv, stable_value=sv, cand_samples=cn, stable_samples=sn, at=now,
                       queries=queries, min_samples=min_samples, quantile=QUANTILES.get(gate.metric),
                       cand_buckets=buckets)


def measure_gate(gate: Gate, req: AnalysisRequest, src: MetricsSource, now: float) -> Measurement:
    """Measure one gate for one interval (never raises for a metrics problem)."""
    cand, stable = selectors(req.config_key, req.stable_version, req.candidate_version, req.stage_kind)
    window = window_seconds(req.window_start, now)
    try:
        if gate.metric in RATE_METRICS or gate.is_ratio:
            return _rate(gate, src, cand, stable, window, now, req.min_samples)
        if gate.metric == "custom":
            per_interval = gate.window == "interval" and req.interval is not None
            span = max(1, math.ceil(req.interval or 0)) if per_interval else window
            try:
                query = render(gate.query or "", selector=cand.matchers(), window=f"{span}s", args=req.args)
            except ValidationFailed as exc:
                return error_measurement(gate, str(exc), at=now, queries=[gate.query or ""])
            try:
                result = src.scalar(query, at=now)
            except MetricsUnavailable as exc:
                return error_measurement(gate, str(exc), at=now, queries=[query])
            return judge_custom(gate, result=result, at=now, queries=[query])
        return _values(gate, src, cand, stable, window, now, req.min_samples)
    except Exception as exc:  # a bug must not look like a pass: record it as ERROR
        return error_measurement(gate, f"internal error measuring {gate.label}: {exc!r}", at=now)


class _FailFast:
    """Once Prometheus did not answer, fail the interval's other queries at once (one timeout, not one
    per query, when Prometheus is slow or down). A refused query (bad PromQL) trips nothing."""

    def __init__(self, src: MetricsSource) -> None:
        self._src = src
        self._down: str | None = None

    def _guard(self) -> None:
        if self._down is not None:
            raise MetricsUnavailable(f"{self._down} (not retried in this interval)")

    def scalar(self, promql: str, *, at: float) -> float | None:
        self._guard()
        try:
            return self._src.scalar(promql, at=at)
        except PrometheusUnreachable as exc:
            self._down = str(exc)
            raise

    def vector(self, promql: str, *, at: float, label: str) -> dict[str, float]:
        self._guard()
        try:
            return self._src.vector(promql, at=at, label=label)
        except PrometheusUnreachable as exc:
            self._down = str(exc)
            raise


def measure_sync(req: AnalysisRequest, src: MetricsSource, now: float | None = None) -> AnalysisReport:
    """Measure every gate of the request once, plus both variations' request counts in the window.

    The first query that fails makes every later query of this interval fail fast (ERROR measurements),
    so a slow Prometheus costs one timeout per interval.
    """
    now = time.time() if now is None else now
    src = _FailFast(src)
    measurements = [measure_gate(g, req, src, now) for g in req.gates]
    cand, stable = selectors(req.config_key, req.stable_version, req.candidate_version, req.stage_kind)
    window = window_seconds(req.window_start, now)
    counts = []
    for sel in (cand, stable):
        try:
            counts.append(_zero(src.scalar(f"sum(increase({REQUESTS}{sel.labels()}[{window}s]))", at=now)))
        except MetricsUnavailable:
            counts.append(0.0)
    return AnalysisReport(at=now, measurements=measurements, candidate_samples=counts[0],
                          stable_samples=counts[1])


async def measure(req: AnalysisRequest, src: MetricsSource, now: float | None = None) -> AnalysisReport:
    """:func:`measure_sync` in a thread, so the event loop never waits on HTTP."""
    return await asyncio.to_thread(measure_sync, req, src, now)


__all__ = ["measure", "measure_gate", "measure_sync"]
