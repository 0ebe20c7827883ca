"""One analysis interval: fetch every gate's exact per-interval numbers and let the judge decide.

No Temporal here. The built-in gates fetch raw counter samples since the stage's start
(:func:`canaryflow.metrics.promql.raw`) and add them up exactly per analysis interval
(:mod:`canaryflow.metrics.deltas`): whole request counts, across replicas, restarts and label sets born
during the stage. The judge then compares like with like, interval by interval.

:func:`measure_sync` never raises for a metrics problem: a query that fails becomes an ERROR measurement
(counted against the gate's consecutive-error limit), an empty answer becomes NODATA. Each series is
fetched once per interval however many gates read it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping

from canaryflow.domain.analysis import AnalysisReport, AnalysisRequest
from canaryflow.domain.gates import EVAL_GATES, GOOD_EVENTS, PAIRWISE_GATES, Gate, Measurement, Verdict
from canaryflow.domain.judge import (
    BucketStrata,
    MeanStrata,
    RateStrata,
    error_measurement,
    judge_custom,
    judge_floor,
    judge_mean_strata,
    judge_quantile_strata,
    judge_rate,
    judge_rate_strata,
)
from canaryflow.domain.pairwise import judge_win_rate
from canaryflow.domain.templating import render
from canaryflow.errors import MetricsUnavailable, ValidationFailed
from canaryflow.metrics.deltas import RawSeries, increases, increases_by
from canaryflow.metrics.promql import (
    AGREEMENT,
    DURATION,
    EVAL_RESULTS,
    EVAL_SCORE,
    FEEDBACK,
    FEEDBACK_RETRACTED,
    IMPLICIT,
    MEAN_SPECS,
    QUANTILES,
    RATE_SPECS,
    REQUESTS,
    Selector,
    expand,
    primary,
    raw,
    raw_seconds,
    selectors,
    window_seconds,
)
from canaryflow.metrics.source import MetricsSource, PrometheusUnreachable

#: The strata of requests that carry no analysis interval (rollouts started by an older release).
DEFAULT_STRATUM_S = 60.0


def _zero(x: float | None) -> float:
    return 0.0 if x is None else x


class _Window:
    """One interval's view of the stage: raw series fetched once each, cut into analysis intervals."""

    def __init__(self, req: AnalysisRequest, src: MetricsSource, now: float) -> None:
        self.req, self.src, self.now = req, src, now
        self.start = req.window_start
        self.strata_s = req.interval or DEFAULT_STRATUM_S
        self.seconds = raw_seconds(req.window_start, now)
        self._cache: dict[str, list[RawSeries]] = {}

    def fetch(self, metric: str, sel: Selector, queries: list[str] | None = None
              ) -> tuple[str, list[RawSeries]]:
        """The raw series of ``metric`` for ``sel`` (the query is added to ``queries`` first, so an
        ERROR measurement names it too)."""
        query = raw(metric, sel, self.seconds)
        if queries is not None:
            queries.append(query)
        if query not in self._cache:
            self._cache[query] = self.src.matrix(query, at=self.now)
        return query, self._cache[query]

    def per_interval(self, series: list[RawSeries], keep: object = None) -> list[float]:
        return increases(series, self.start, self.now, self.strata_s, keep if callable(keep) else None)


def _less(counts: list[float], retracted: list[float]) -> list[float]:
    """Per-interval counts less the feedback retracted (replaced) in each interval.

    A retraction removes a feedback given earlier, maybe in an earlier interval: what an interval cannot
    absorb is taken from the intervals before it, latest first, so the totals are exact and no interval
    goes below 0."""
    out = list(counts)
    for k, r in enumerate(retracted[: len(out)]):
        j = k
        while r > 0 and j >= 0:
            take = min(out[j], r)
            out[j] -= take
            r -= take
            j -= 1
    return out


def _rate(gate: Gate, w: _Window, cand: Selector, stable: Selector, min_samples: int) -> Measurement:
    spec = RATE_SPECS[gate.metric]
    queries: list[str] = []
    counts: list[list[float]] = []
    try:
        for sel in (cand, stable):
            _, series = w.fetch(spec.metric, sel, queries)
            events, total = w.per_interval(series, spec.events), w.per_interval(series)
            if spec.metric == FEEDBACK:  # a replaced feedback leaves the count: each request once
                _, gone = w.fetch(FEEDBACK_RETRACTED, sel, queries)
                events = _less(events, w.per_interval(gone, spec.events))
                total = _less(total, w.per_interval(gone))
            counts += [events, total]
    except MetricsUnavailable as exc:
        return error_measurement(gate, str(exc), at=w.now, queries=queries)
    ce, ct, se, st = counts
    note = f"events: {spec.events_text}"
    m = judge_rate_strata(gate, RateStrata(ce, ct, se, st), at=w.now, queries=queries,
                          min_samples=min_samples, higher_is_better=spec.higher_is_better)
    m.evidence.note = f"{m.evidence.note}; {note}" if m.evidence.note else note
    if m.verdict == Verdict.FAIL and gate.metric in ("error_rate", "completion_rate"):
        _, series = w.fetch(spec.metric, cand)  # cached: the candidate's series fetched above
        m.evidence.note = f"{_failures(w, series)}; {m.evidence.note}"  # first: the note is cut at 200
    return m


def _implicit_rate(gate: Gate, w: _Window, cand: Selector, stable: Selector, min_samples: int
                   ) -> Measurement:
    """The share of served requests with one implicit feedback event (``gate.event``), candidate against
    stable, per interval. An event counts in the interval it arrived in; an interval's events are capped at
    its requests (late events of earlier requests cannot make a share above 1)."""
    event = gate.event or ""
    queries: list[str] = []
    counts: list[list[float]] = []
    try:
        for sel in (cand, stable):
            _, events = w.fetch(IMPLICIT, sel, queries)
            _, requests = w.fetch(REQUESTS, sel, queries)
            total = w.per_interval(requests)
            got = w.per_interval(events, lambda lb: lb.get("event") == event)
            got += [0.0] * (len(total) - len(got))
            counts += [[min(e, t) for e, t in zip(got, total, strict=False)], total]
    except MetricsUnavailable as exc:
        return error_measurement(gate, str(exc), at=w.now, queries=queries)
    ce, ct, se, st = counts
    m = judge_rate_strata(gate, RateStrata(ce, ct, se, st), at=w.now, queries=queries,
                          min_samples=min_samples, higher_is_better=event in GOOD_EVENTS)
    note = f"events: event=\"{event}\" per request served"
    m.evidence.note = f"{m.evidence.note}; {note}" if m.evidence.note else note
    return m


def _eval(gate: Gate, w: _Window, cand: Selector, stable: Selector, min_samples: int) -> Measurement:
    """An online evaluator's results, candidate against stable (its shadow answers in a shadow stage,
    stable's own scored answers on the other side): the mean score (``eval_score``, the stratified mean
    test, higher is better) or the share of answers passing (``eval_pass_rate``, the stratified rate
    test)."""
    name = gate.evaluator or ""

    def mine(labels: Mapping[str, str]) -> bool:
        return labels.get("evaluator") == name

    def passed(labels: Mapping[str, str]) -> bool:
        return mine(labels) and labels.get("result") == "pass"

    queries: list[str] = []
    parts: list[list[float]] = []
    try:
        for sel in (cand, stable):
            if gate.metric == "eval_score":
                _, sums = w.fetch(f"{EVAL_SCORE}_sum", sel, queries)
                _, counts = w.fetch(f"{EVAL_SCORE}_count", sel, queries)
                parts += [w.per_interval(sums, mine), w.per_interval(counts, mine)]
            else:
                _, results = w.fetch(EVAL_RESULTS, sel, queries)
                parts += [w.per_interval(results, passed), w.per_interval(results, mine)]
    except MetricsUnavailable as exc:
        return error_measurement(gate, str(exc), at=w.now, queries=queries)
    if gate.metric == "eval_score":
        m = judge_mean_strata(gate, MeanStrata(*parts), at=w.now, queries=queries, min_samples=min_samples,
                              higher_is_better=True)
        note = f'mean score of evaluator="{name}" (0–1), higher is better'
    else:
        m = judge_rate_strata(gate, RateStrata(*parts), at=w.now, queries=queries, min_samples=min_samples,
                              higher_is_better=True)
        note = f'answers passing evaluator="{name}" per answer scored'
    m.evidence.note = f"{m.evidence.note}; {note}" if m.evidence.note else note
    return m


def _win_rate(gate: Gate, w: _Window, cand: Selector, min_samples: int) -> Measurement:
    """A pairwise evaluator's verdicts on the candidate's shadow answers against stable's on the same
    inputs: wins are its results that passed, ``score`` sums wins + ½ ties (exact counts of the stage)."""
    name = gate.evaluator or ""

    def mine(labels: Mapping[str, str]) -> bool:
        return labels.get("evaluator") == name

    def won(labels: Mapping[str, str]) -> bool:
        return mine(labels) and labels.get("result") == "pass"

    queries: list[str] = []
    try:
        _, sums = w.fetch(f"{EVAL_SCORE}_sum", cand, queries)
        _, counts = w.fetch(f"{EVAL_SCORE}_count", cand, queries)
        _, results = w.fetch(EVAL_RESULTS, cand, queries)
        total = sum(w.per_interval(sums, mine))
        n = round(sum(w.per_interval(counts, mine)))
        wins = round(sum(w.per_interval(results, won)))
    except MetricsUnavailable as exc:
        return error_measurement(gate, str(exc), at=w.now, queries=queries)
    ties = min(max(round(2.0 * (total - wins)), 0), max(n - wins, 0))
    losses = max(n - wins - ties, 0)
    m = judge_win_rate(gate, wins=wins, ties=ties, losses=losses, at=w.now, queries=queries,
                       min_samples=min_samples)
    note = f'pairs judged by evaluator="{name}", candidate vs stable on the same input'
    m.evidence.note = f"{m.evidence.note}; {note}" if m.evidence.note else note
    return m


def _failures(w: _Window, series: list[RawSeries]) -> str:
    """The candidate's own failures by error type and who answered those users (``served_by``: a fallback
    rescuing them does not hide them), for a failed error/completion gate's evidence."""
    def is_error(labels: Mapping[str, str]) -> bool:
        return labels.get("outcome") == "error"

    def listing(label: str) -> str:
        rows = increases_by(series, label, w.start, w.now, w.strata_s, is_error)
        totals = sorted(((k, sum(v)) for k, v in rows.items()), key=lambda kv: -kv[1])
        return ", ".join(f"{k} {v:.0f}" for k, v in totals if round(v) > 0) or "none"

    return f"candidate's own errors: {listing('error_type')} (served by {listing('served_by')})"


def _custom_ratio(gate: Gate, w: _Window, cand: Selector, stable: Selector, min_samples: int
                  ) -> Measurement:
    window = window_seconds(w.start, w.now)
    events, total = gate.events or "", gate.total or ""
    queries = [expand(events, cand, window), expand(total, cand, window),
               expand(events, stable, window), expand(total, stable, window)]
    try:
        ce, ct, se, st = (w.src.scalar(q, at=w.now) for q in queries)
    except MetricsUnavailable as exc:
        return error_measurement(gate, str(exc), at=w.now, queries=queries)
    return judge_rate(gate, cand_events=_zero(ce), cand_total=_zero(ct), stable_events=_zero(se),
                      stable_total=_zero(st), at=w.now, queries=queries, min_samples=min_samples)


def _mean(gate: Gate, w: _Window, cand: Selector, stable: Selector, min_samples: int) -> Measurement:
    spec = MEAN_SPECS[gate.metric]
    queries: list[str] = []
    parts: list[list[float]] = []
    try:
        for sel in (cand, stable):
            _, sums = w.fetch(spec.sum_metric, sel, queries)
            _, counts = w.fetch(spec.count_metric, sel, queries)
            parts += [w.per_interval(sums, spec.sum_keep), w.per_interval(counts, spec.count_keep)]
    except MetricsUnavailable as exc:
        return error_measurement(gate, str(exc), at=w.now, queries=queries)
    m = judge_mean_strata(gate, MeanStrata(*parts), at=w.now, queries=queries, min_samples=min_samples)
    m.evidence.note = f"{m.evidence.note}; {spec.text}"
    return m


def _buckets(by_le: Mapping[str, list[float]]) -> tuple[list[float], list[list[float]]]:
    """``{le: per-interval increases}`` → sorted bounds and per-interval cumulative counts."""
    les = sorted((float(le), le) for le in by_le if le)
    if not les:
        return [], []
    k = len(next(iter(by_le.values())))
    rows = [[by_le[name][j] for _, name in les] for j in range(k)]
    return [b for b, _ in les], rows


def _quantile(gate: Gate, w: _Window, cand: Selector, stable: Selector, min_samples: int) -> Measurement:
    queries: list[str] = []
    sides: list[tuple[list[float], list[list[float]]]] = []
    try:
        for sel in (cand, stable):
            _, series = w.fetch(f"{DURATION}_bucket", sel, queries)
            by_le = increases_by(series, "le", w.start, w.now, w.strata_s, primary)
            sides.append(_buckets(by_le))
    except MetricsUnavailable as exc:
        return error_measurement(gate, str(exc), at=w.now, queries=queries)
    (les_c, cand_rows), (les_s, stable_rows) = sides
    if les_c and les_s and les_c != les_s:
        return error_measurement(gate, "candidate and stable histograms have different buckets",
                                 at=w.now, queries=queries)
    les = les_c or les_s
    strata = BucketStrata(les, cand_rows if les_c else [], stable_rows if les_s else [])
    m = judge_quantile_strata(gate, strata, QUANTILES[gate.metric], at=w.now, queries=queries,
                              min_samples=min_samples)
    m.evidence.note = f'{m.evidence.note}; served_by="primary" attempts'
    return m


def _agreement(gate: Gate, w: _Window, cand: Selector, min_samples: int) -> Measurement:
    queries: list[str] = []
    try:
        _, sums = w.fetch(f"{AGREEMENT}_sum", cand, queries)
        _, counts = w.fetch(f"{AGREEMENT}_count", cand, queries)
    except MetricsUnavailable as exc:
        return error_measurement(gate, str(exc), at=w.now, queries=queries)
    n, total = sum(w.per_interval(counts)), sum(w.per_interval(sums))
    return judge_floor(gate, value=total / n if n > 0 else None, samples=n, at=w.now, queries=queries,
                       min_samples=min_samples)


def _measure(gate: Gate, w: _Window) -> Measurement:
    req = w.req
    cand, stable = selectors(req.config_key, req.stable_version, req.candidate_version, req.stage_kind,
                             tuple(req.segments))
    if gate.is_ratio:
        return _custom_ratio(gate, w, cand, stable, req.min_samples)
    if gate.metric == "implicit_rate":
        return _implicit_rate(gate, w, cand, stable, req.min_samples)
    if gate.metric in PAIRWISE_GATES:
        return _win_rate(gate, w, cand, req.min_samples)
    if gate.metric in EVAL_GATES:
        return _eval(gate, w, cand, stable, req.min_samples)
    if gate.metric in RATE_SPECS:
        return _rate(gate, w, cand, stable, req.min_samples)
    if gate.metric in MEAN_SPECS:
        return _mean(gate, w, cand, stable, req.min_samples)
    if gate.metric in QUANTILES:
        return _quantile(gate, w, cand, stable, req.min_samples)
    if gate.metric == "shadow_agreement":
        return _agreement(gate, w, cand, req.min_samples)
    window = window_seconds(w.start, w.now)
    per_interval = gate.window == "interval" and req.interval is not None
    span = max(1, math.ceil(req.interval or 0)) if per_interval else window
    try:
        query = render(gate.query or "", selector=cand.matchers(), window=f"{span}s", args=req.args)
    except ValidationFailed as exc:
        return error_measurement(gate, str(exc), at=w.now, queries=[gate.query or ""])
    try:
        result = w.src.scalar(query, at=w.now)
    except MetricsUnavailable as exc:
        return error_measurement(gate, str(exc), at=w.now, queries=[query])
    return judge_custom(gate, result=result, at=w.now, queries=[query])


def measure_gate(gate: Gate, req: AnalysisRequest, src: MetricsSource, now: float) -> Measurement:
    """Measure one gate for one interval (never raises for a metrics problem)."""
    return _measure_in(gate, _Window(req, src, now))


def _measure_in(gate: Gate, w: _Window) -> Measurement:
    try:
        return _measure(gate, w)
    except Exception as exc:  # a bug must not look like a pass: record it as ERROR
        return error_measurement(gate, f"internal error measuring {gate.label}: {exc!r}", at=w.now)


class _FailFast:
    """Once Prometheus did not answer, fail the interval's other queries at once (one timeout, not one
    per query, when Prometheus is slow or down). A refused query (bad PromQL) trips nothing."""

    def __init__(self, src: MetricsSource) -> None:
        self._src = src
        self._down: str | None = None

    def _guard(self) -> None:
        if self._down is not None:
            raise MetricsUnavailable(f"{self._down} (not retried in this interval)")

    def _trip(self, exc: PrometheusUnreachable) -> None:
        self._down = str(exc)

    def scalar(self, promql: str, *, at: float) -> float | None:
        self._guard()
        try:
            return self._src.scalar(promql, at=at)
        except PrometheusUnreachable as exc:
            self._trip(exc)
            raise

    def vector(self, promql: str, *, at: float, label: str) -> dict[str, float]:
        self._guard()
        try:
            return self._src.vector(promql, at=at, label=label)
        except PrometheusUnreachable as exc:
            self._trip(exc)
            raise

    def matrix(self, promql: str, *, at: float) -> list[RawSeries]:
        self._guard()
        try:
            return self._src.matrix(promql, at=at)
        except PrometheusUnreachable as exc:
            self._trip(exc)
            raise


def measure_sync(req: AnalysisRequest, src: MetricsSource, now: float | None = None) -> AnalysisReport:
    """Measure every gate of the request once, plus both variations' exact request counts in the stage.

    The first query that fails makes every later query of this interval fail fast (ERROR measurements),
    so a slow Prometheus costs one timeout per interval.
    """
    now = time.time() if now is None else now
    w = _Window(req, _FailFast(src), now)
    measurements = [_measure_in(g, w) for g in req.gates]
    cand, stable = selectors(req.config_key, req.stable_version, req.candidate_version, req.stage_kind,
                             tuple(req.segments))
    counts = []
    for sel in (cand, stable):
        try:
            counts.append(sum(w.per_interval(w.fetch(REQUESTS, sel)[1])))
        except MetricsUnavailable:
            counts.append(0.0)
    return AnalysisReport(at=now, measurements=measurements, candidate_samples=counts[0],
                          stable_samples=counts[1])


async def measure(req: AnalysisRequest, src: MetricsSource, now: float | None = None) -> AnalysisReport:
    """:func:`measure_sync` in a thread, so the event loop never waits on HTTP."""
    return await asyncio.to_thread(measure_sync, req, src, now)


__all__ = ["measure", "measure_gate", "measure_sync"]
