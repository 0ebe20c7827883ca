"""Prometheus instruments of the traffic plane, named exactly as DESIGN.md says (exporter side).

Every request served by the SDK or the gateway goes through :func:`record_request` exactly once — success or
error, plain or streamed — so "N requests sent → N counted" holds. Conventions the query side relies on:

* ``canaryflow_requests_total{outcome, error_type, finish_reason, served_by}`` describes the **variation under
  test's primary attempt**: ``outcome`` is ``success`` or ``error``; ``error_type`` is one of
  :data:`REQUEST_ERROR_TYPES` (the error taxonomy plus ``circuit_open``: the primary's circuit was open, so it
  was not tried; plus an output check the primary's answer failed, e.g. ``schema_mismatch``) or ``none`` on
  success; ``finish_reason`` is one of :data:`FINISH_REASONS` on success and
  ``error`` on failure. ``served_by`` says who answered the user: ``primary``, ``fallback`` (the primary
  failed — counted ``outcome="error"`` with the primary's error type — and a fallback answered) or ``none``
  (the user got an error); an answer that failed an output check and was still served (a refusal the config
  does not re-route) is ``outcome="error", served_by="primary"``. The ``gen_ai_*`` labels of this counter
  always name the variation's own (primary) provider/model.
* Durations, time to first chunk, token usage and cost are observed for answered requests, with
  ``served_by``: ``primary`` series are the primary's own attempts (labelled with its provider/model) and are
  what the latency/cost/tokens gates read; ``fallback`` series are what users got from a fallback (labelled
  with the fallback's provider/model), for dashboards.
* Fallbacks are also counted in ``canaryflow_fallbacks_total{reason}`` (reason = the primary's error type,
  or ``circuit_open``) labelled with the primary provider/model. Mirrored shadow calls use variation
  ``shadow`` and have no fallback.
* **Series exist at 0 before their first event** (``increase()`` cannot see a series appear): the first
  time a label set (config, version, variation, segment, provider, model) is seen — :meth:`Metrics.prepare`,
  called by the traffic plane whenever the serving cache compiles a config (for every version it can serve,
  as every variation, in every segment) and again on a request's first use — every child a gate reads is
  created: each outcome × error type × finish reason × served_by of ``canaryflow_requests_total``, the
  histograms (every token type), the cost counter and ``canaryflow_tool_calls_total`` (every result) for
  ``served_by="primary"`` and for each fallback in the chain,
  ``canaryflow_feedback_total`` and ``canaryflow_feedback_retracted_total`` for both sentiments
  (and ``canaryflow_shadow_agreement`` for ``shadow``).
  The hot path then only looks the prepared children up.
* Latency buckets (:data:`DURATION_BUCKETS`) grow by at most 10 % from 20 ms to 120 s, so a quantile read
  from them is within ~5 % of the true one.

The instruments live on their own :class:`CollectorRegistry` (one :class:`Metrics` per process by default) so
tests read exact counts and ``/metrics`` exposes only canaryflow's series.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from canaryflow.domain.answers import TOOL_CALL_RESULTS
from canaryflow.domain.checks import CHECK_FAILURES
from canaryflow.domain.implicit import EVENTS as IMPLICIT_EVENTS
from canaryflow.domain.implicit import VALUED as VALUED_EVENTS
from canaryflow.errors import ERROR_TYPES

COMMON_LABELS = ("config", "version", "variation", "segment", "gen_ai_provider_name", "gen_ai_request_model")
SERVED_BY = ("primary", "fallback", "none")
"""Who answered the user: the variation's own provider/model, a fallback, or nobody (an error)."""
CIRCUIT_OPEN = "circuit_open"
REQUEST_ERROR_TYPES = (*ERROR_TYPES, CIRCUIT_OPEN, *CHECK_FAILURES)
"""``error_type`` values of ``canaryflow_requests_total`` when ``outcome="error"`` (the taxonomy,
``circuit_open``, and the output-check failures of :data:`~canaryflow.domain.checks.CHECK_FAILURES`)."""
FINISH_REASONS = ("stop", "length", "content_filter", "tool_calls", "other")
"""``finish_reason`` values of a successful request (anything else a provider says is counted ``other``)."""
_FINISH_ALIASES = {"function_call": "tool_calls", "end_turn": "stop", "stop_sequence": "stop",
                   "max_tokens": "length", "tool_use": "tool_calls"}


def _geometric(start: float, stop: float, ratio: float) -> tuple[float, ...]:
    out: list[float] = []
    x = start
    while True:
        out.append(float(f"{x:.4g}"))
        if x >= stop:
            return tuple(out)
        x *= ratio


DURATION_BUCKETS = (0.005, 0.01, 0.015, *_geometric(0.02, 120.0, 1.1))
"""Upper bounds in seconds: 5, 10, 15 ms, then ×1.1 per bucket from 20 ms to past 120 s (96 buckets)."""
TTFC_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
AGREEMENT_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
EVAL_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
SENTIMENTS = ("positive", "negative")
TOKEN_TYPES = ("input", "output", "cached_input", "reasoning")
"""``gen_ai_token_type`` values (input includes cached_input; output includes reasoning)."""
TOOL_CALLS = "canaryflow_tool_calls"
CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass(frozen=True, slots=True)
class Labels:
    """The common labels of one request (provider/model: the variation's own, i.e. its primary)."""

    config: str
    version: int
    variation: str
    segment: str
    provider: str
    model: str

    def values(self) -> tuple[str, str, str, str, str, str]:
        """Label values in :data:`COMMON_LABELS` order."""
        return (self.config, str(self.version), self.variation, self.segment or "none", self.provider,
                self.model)


def finish_label(finish_reason: str | None) -> str:
    """The ``finish_reason`` label of a successful request (one of :data:`FINISH_REASONS`)."""
    reason = finish_reason or "stop"
    if reason in FINISH_REASONS:
        return reason
    return _FINISH_ALIASES.get(reason, "other")


def observer(child: Any) -> Callable[[float], None]:
    """``child.observe`` of a histogram child, by binary search over its buckets instead of the client's
    linear scan (the 96 latency buckets would cost ~40 comparisons per request); same samples exactly
    (``tests/test_metrics_series.py`` checks it against ``observe``). Falls back to ``observe`` if the
    client's internals differ."""
    bounds = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    total: Any = getattr(child, "_sum", None)
    if not (isinstance(bounds, list) and isinstance(buckets, list) and len(bounds) == len(buckets)
            and bounds and bounds[-1] == float("inf") and hasattr(total, "inc")):
        return child.observe  # type: ignore[no-any-return]
    incs = [b.inc for b in buckets]
    add = total.inc

    def observe(amount: float) -> None:
        add(amount)
        incs[bisect_left(bounds, amount)](1)

    return observe


class _Observed:
    """A histogram child whose ``observe`` is :func:`observer`'s (the child's other methods unchanged)."""

    __slots__ = ("_child", "observe")

    def __init__(self, child: Any) -> None:
        self._child = child
        self.observe = observer(child)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._child, name)


class _Answer:
    """The children observed when a request is answered by one provider/model with one ``served_by``."""

    __slots__ = ("_tokens", "_tools", "cost", "duration", "input_tokens", "output_tokens", "ttfc")

    def __init__(self, m: Metrics, values: tuple[str, ...], served_by: str) -> None:
        self.duration = observer(m.duration.labels(*values, served_by))
        self.ttfc = m.ttfc.labels(*values, served_by)
        self._tokens = {t: m.tokens.labels(*values, t, served_by) for t in TOKEN_TYPES}
        self.input_tokens = _Observed(self._tokens["input"])
        self.output_tokens = _Observed(self._tokens["output"])
        self.cost = m.cost.labels(*values, served_by)
        self._tools = {r: m.tool_calls.labels(*values, r, served_by) for r in TOOL_CALL_RESULTS}

    def tokens(self, kind: str) -> Any:
        """The token-usage child of ``kind`` (one of :data:`TOKEN_TYPES`)."""
        child = self._tokens.get(kind)
        if child is None:
            raise ValueError(f"unknown token type {kind!r}: one of {', '.join(TOKEN_TYPES)}")
        return child

    def tool_call(self, result: str) -> Any:
        """The ``canaryflow_tool_calls_total`` child of ``result`` (one of ``TOOL_CALL_RESULTS``)."""
        child = self._tools.get(result)
        if child is None:
            raise ValueError(f"unknown tool-call result {result!r}: one of {', '.join(TOOL_CALL_RESULTS)}")
        return child


class Series:
    """Every child of one label set, created at 0 (see the module docstring): the hot path's lookups."""

    __slots__ = ("_fallbacks", "_lock", "_m", "agreement", "errors", "feedback", "implicit",
                 "implicit_retracted", "implicit_value", "labels", "primary", "retracted", "success",
                 "values")

    def __init__(self, m: Metrics, labels: Labels, fallbacks: Iterable[tuple[str, str]] = ()) -> None:
        self._m = m
        self._lock = threading.Lock()
        self.labels = labels
        self.values = values = labels.values()
        requests = m.requests
        self.success = {f: requests.labels(*values, "success", "none", f, "primary") for f in FINISH_REASONS}
        self.errors = {(e, s): requests.labels(*values, "error", e, "error", s)
                       for e in REQUEST_ERROR_TYPES for s in ("fallback", "none")}
        self.errors.update({(e, "primary"): requests.labels(*values, "error", e, "error", "primary")
                            for e in CHECK_FAILURES})
        self.primary = _Answer(m, values, "primary")
        self.feedback = {s: m.feedback.labels(*values, s) for s in SENTIMENTS}
        self.retracted = {s: m.feedback_retracted.labels(*values, s) for s in SENTIMENTS}
        self.implicit = {e: m.implicit.labels(*values, e) for e in IMPLICIT_EVENTS}
        self.implicit_value = {e: m.implicit_value.labels(*values, e) for e in VALUED_EVENTS}
        self.implicit_retracted = {e: m.implicit_value_retracted.labels(*values, e) for e in VALUED_EVENTS}
        self.agreement = m.shadow_agreement.labels(*values) if labels.variation == "shadow" else None
        self._fallbacks: dict[tuple[str, str], _Answer] = {}
        self.add_fallbacks(fallbacks)

    def add_fallbacks(self, fallbacks: Iterable[tuple[str, str]]) -> None:
        """Create the ``served_by="fallback"`` children of these (provider, model) targets."""
        for target in fallbacks:
            if target not in self._fallbacks:
                with self._lock:
                    if target not in self._fallbacks:
                        values = (*self.values[:4], *target)
                        self._fallbacks[target] = _Answer(self._m, values, "fallback")

    def fallback(self, provider: str, model: str) -> _Answer:
        """The children of a fallback answer by ``provider``/``model``."""
        found = self._fallbacks.get((provider, model))
        if found is None:
            self.add_fallbacks([(provider, model)])
            found = self._fallbacks[(provider, model)]
        return found

    def error(self, error_type: str, served_by: str) -> Any:
        """The ``outcome="error"`` counter child (``error_type`` outside the taxonomy counts ``other``)."""
        child = self.errors.get((error_type, served_by))
        if child is None:
            if served_by not in ("fallback", "none"):
                raise ValueError(f"served_by of an error must be 'fallback' or 'none' (or 'primary' for a "
                                 f"failed output check), got {served_by!r} with {error_type!r}")
            child = self.errors[("other", served_by)]
        return child


#: How long a version that is no longer served keeps being exported (several scrape intervals).
FORGET_AFTER_S = 600.0


class Metrics:
    """The instruments on one collector registry."""

    def __init__(self, registry: CollectorRegistry | None = None, *,
                 forget_after_s: float = FORGET_AFTER_S) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.forget_after_s = forget_after_s
        self._unserved: dict[tuple[str, int], float] = {}  # (config, version) → when it stopped being served
        r = self.registry
        self.duration = Histogram(
            "gen_ai_client_operation_duration_seconds", "Duration of a GenAI operation (seconds).",
            (*COMMON_LABELS, "served_by"), buckets=DURATION_BUCKETS, registry=r)
        self.tokens = Histogram(
            "gen_ai_client_token_usage", "Tokens used by a GenAI operation.",
            (*COMMON_LABELS, "gen_ai_token_type", "served_by"), buckets=TOKEN_BUCKETS, registry=r)
        self.ttfc = Histogram(
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "Time from request to the first streamed chunk (seconds).",
            (*COMMON_LABELS, "served_by"), buckets=TTFC_BUCKETS, registry=r)
        self.requests = Counter(
            "canaryflow_requests", "Requests served: outcome of the variation's primary, who answered.",
            (*COMMON_LABELS, "outcome", "error_type", "finish_reason", "served_by"), registry=r)
        self.cost = Counter("canaryflow_cost_usd", "Provider cost in USD.", (*COMMON_LABELS, "served_by"),
                            registry=r)
        self.feedback = Counter(
            "canaryflow_feedback", "User feedback on answers.", (*COMMON_LABELS, "sentiment"), registry=r)
        self.feedback_retracted = Counter(
            "canaryflow_feedback_retracted", "Feedback replaced by a later feedback on the same request.",
            (*COMMON_LABELS, "sentiment"), registry=r)
        self.implicit = Counter(
            "canaryflow_implicit_feedback", "Requests with an implicit feedback event (once per request).",
            (*COMMON_LABELS, "event"), registry=r)
        self.implicit_value = Counter(
            "canaryflow_implicit_feedback_value", "Sum of the values of valued implicit events.",
            (*COMMON_LABELS, "event"), registry=r)
        self.implicit_value_retracted = Counter(
            "canaryflow_implicit_feedback_value_retracted",
            "Values of implicit events replaced by a later one of the same kind on the same request.",
            (*COMMON_LABELS, "event"), registry=r)
        self.fallbacks = Counter(
            "canaryflow_fallbacks", "Requests a fallback served, by why the primary was skipped.",
            (*COMMON_LABELS, "reason"), registry=r)
        self.shadow_agreement = Histogram(
            "canaryflow_shadow_agreement", "Agreement of the shadow candidate's answer with stable (0–1).",
            COMMON_LABELS, buckets=AGREEMENT_BUCKETS, registry=r)
        self.tool_calls = Counter(
            TOOL_CALLS, "Tool calls in answers, by whether they fit the request's tools.",
            (*COMMON_LABELS, "result", "served_by"), registry=r)
        self.shadow_dropped = Counter(
            "canaryflow_shadow_dropped", "Shadow mirrors dropped because the mirror queue was full.",
            COMMON_LABELS, registry=r)
        self.eval_score = Histogram(
            "canaryflow_eval_score", "Online evaluators' scores, 0-1 (gen_ai.evaluation.score.value).",
            (*COMMON_LABELS, "evaluator"), buckets=EVAL_BUCKETS, registry=r)
        self.eval_results = Counter(
            "canaryflow_eval", "Online evaluations by result (pass | fail).",
            (*COMMON_LABELS, "evaluator", "result"), registry=r)
        self.eval_dropped = Counter(
            "canaryflow_eval_dropped", "Answers sampled for an evaluator but not scored, by reason.",
            (*COMMON_LABELS, "evaluator", "reason"), registry=r)
        self._series: dict[Labels, Series] = {}
        self._lock = threading.Lock()
        self.generation = 0
        """Incremented whenever :meth:`forget` drops series (a cache of :class:`Series` must look again)."""

    def series(self, labels: Labels, fallbacks: Sequence[tuple[str, str]] = ()) -> Series:
        """The prepared children of ``labels`` (created at 0 on first use, with these fallbacks')."""
        found = self._series.get(labels)
        if found is None:
            with self._lock:
                found = self._series.get(labels)
                if found is None:
                    found = self._series[labels] = Series(self, labels, fallbacks)
                    return found
        if fallbacks:
            found.add_fallbacks(fallbacks)
        return found

    def prepare(self, label_sets: Iterable[tuple[Labels, Sequence[tuple[str, str]]]]) -> int:
        """Create every gate-read series of these label sets (with their fallbacks) at 0; returns how many
        label sets were new."""
        new = 0
        for labels, fallbacks in label_sets:
            new += labels not in self._series
            self.series(labels, fallbacks)
        return new

    def forget(self, config: str, keep_versions: Iterable[int], *, now: float | None = None) -> list[int]:
        """Stop exporting every series of ``config``'s versions not in ``keep_versions`` once they have not
        been served for ``forget_after_s`` (no longer served: a long-running gateway's series stay bounded
        by what it serves). Returns the versions forgotten.

        The grace period lets Prometheus scrape a version's last events (a rolled-back candidate's final
        errors) and lets dashboards and tests read them before the series go; it is checked on each
        compile of the config.

        A version served again later gets its series created at 0 again; Prometheus reads the drop as a
        counter reset, which ``increase()`` and the gates handle."""
        keep = set(keep_versions)
        now = time.monotonic() if now is None else now
        with self._lock:
            unserved = {lab.version for lab in self._series if lab.config == config
                        and lab.version not in keep}
            for cv in [cv for cv in self._unserved if cv[0] == config and cv[1] not in unserved]:
                del self._unserved[cv]  # served again (or already gone)
            gone = sorted(v for v in unserved
                          if now - self._unserved.setdefault((config, v), now) >= self.forget_after_s)
            if not gone:
                return []
            for v in gone:
                del self._unserved[(config, v)]
            for lab in [lab for lab in self._series if lab.config == config and lab.version in gone]:
                del self._series[lab]
            self.generation += 1
        families = [f for f in vars(self).values()  # every labelled instrument of this Metrics
                    if isinstance(f, Counter | Histogram) and "version" in getattr(f, "_labelnames", ())]
        for version in gone:
            for family in families:
                family.remove_by_labels({"config": config, "version": str(version)})
        return gone

    def exposition(self) -> bytes:
        """The text exposition of every series (what ``GET /metrics`` returns)."""
        return generate_latest(self.registry)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels`` (for tests and the CLI)."""
        want = labels or {}
        total = 0.0
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in want.items()):
                    total += sample.value
        return total


_default: Metrics | None = None


def default_metrics() -> Metrics:
    """The process-wide :class:`Metrics` (created on first use)."""
    global _default
    if _default is None:
        _default = Metrics()
    return _default


def record_request(
    labels: Labels,
    *,
    outcome: str,
    error_type: str | None = None,
    finish_reason: str | None = None,
    served_by: str | None = None,
    answered_by: tuple[str, str] | None = None,
    duration_s: float | None = None,
    ttfc_s: float | None = None,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cost_usd: float = 0.0,
    metrics: Metrics | None = None,
    series: Series | None = None,
) -> None:
    """Count one request — call exactly once per request, whatever happened.

    Args:
        labels: the common labels; provider/model name the variation's own (primary) provider/model.
        outcome: ``success`` (the primary answered) or ``error`` (the primary failed or was skipped).
        error_type: the primary's error type (taxonomy or ``circuit_open``) when ``outcome`` is ``error``.
        finish_reason: the provider's finish reason on success (``error`` is used on failure).
        served_by: who answered: ``primary`` (implied by success), ``fallback`` or ``none`` (the default
            on error).
        answered_by: the (provider, model) of the fallback that answered, when ``served_by="fallback"``.
        duration_s: wall time of the whole operation (observed when someone answered).
        ttfc_s: time to the first streamed chunk, for streams.
        input_tokens: prompt tokens from the answering provider's usage.
        output_tokens: completion tokens from the answering provider's usage.
        cost_usd: the answer's cost.
        metrics: the instruments to use (default: :func:`default_metrics`).
        series: the prepared children of ``labels`` (skips the lookup; must belong to ``metrics``).
    """
    s = series if series is not None else (metrics or default_metrics()).series(labels)
    if outcome == "success":
        s.success[finish_label(finish_reason)].inc()
        answer = s.primary
    else:
        by = served_by or "none"
        s.error(error_type or "other", by).inc()
        if by == "primary":  # an answer that failed an output check, served anyway
            answer = s.primary
        elif by != "fallback":
            return
        elif answered_by is None:
            raise ValueError("answered_by (provider, model) is required when served_by='fallback'")
        else:
            answer = s.fallback(*answered_by)
    if duration_s is not None:
        answer.duration(duration_s)
    if ttfc_s is not None:
        answer.ttfc.observe(ttfc_s)
    answer.input_tokens.observe(input_tokens)
    answer.output_tokens.observe(output_tokens)
    if cost_usd:
        answer.cost.inc(cost_usd)


def record_fallback(labels: Labels, reason: str, *, metrics: Metrics | None = None) -> None:
    """Count a request that a fallback served; ``labels`` name the primary that was skipped."""
    (metrics or default_metrics()).fallbacks.labels(*labels.values(), reason).inc()


def record_feedback(labels: Labels, sentiment: str, *, replaces: str | None = None,
                    metrics: Metrics | None = None) -> None:
    """Count one piece of feedback (``positive`` or ``negative``) on a served request.

    ``replaces``: the sentiment of the request's earlier feedback that this one replaces; it is counted in
    ``canaryflow_feedback_retracted_total``, so ``feedback_total - feedback_retracted_total`` per sentiment
    counts each request once (its latest sentiment). Replacing a sentiment by the same one counts nothing.
    """
    if replaces == sentiment:
        return
    series = (metrics or default_metrics()).series(labels)
    if replaces is not None:
        series.retracted[replaces].inc()
    series.feedback[sentiment].inc()


def record_implicit(labels: Labels, event: str, value: float | None, *, replaced: bool = False,
                    old_value: float | None = None, metrics: Metrics | None = None) -> None:
    """Count one implicit event on a served request (``event`` one of
    :data:`~canaryflow.domain.implicit.EVENTS`).

    ``canaryflow_implicit_feedback_total{event}`` counts each request once per event (a replacing event
    counts nothing there); for ``edited`` and ``dwell_seconds`` the value is added to
    ``canaryflow_implicit_feedback_value_total`` and a replaced value to ``..._value_retracted_total``, so
    ``(value - retracted) / count`` is the mean of each request's latest value.
    """
    series = (metrics or default_metrics()).series(labels)
    if not replaced:
        series.implicit[event].inc()
    if value is not None and event in series.implicit_value:
        series.implicit_value[event].inc(value)
        if replaced and old_value:
            series.implicit_retracted[event].inc(old_value)


def record_shadow(labels: Labels, agreement: float, *, metrics: Metrics | None = None) -> None:
    """Observe the agreement score of one mirrored request (``labels.variation`` is ``shadow``)."""
    child = (metrics or default_metrics()).series(labels).agreement
    if child is None:
        raise ValueError(f"shadow agreement is observed on variation 'shadow', not {labels.variation!r}")
    child.observe(agreement)


def record_shadow_dropped(labels: Labels, *, metrics: Metrics | None = None) -> None:
    """Count a mirror dropped because the shadow queue was full."""
    (metrics or default_metrics()).shadow_dropped.labels(*labels.values()).inc()


__all__ = [
    "CIRCUIT_OPEN",
    "COMMON_LABELS",
    "CONTENT_TYPE",
    "DURATION_BUCKETS",
    "FINISH_REASONS",
    "REQUEST_ERROR_TYPES",
    "SERVED_BY",
    "TOKEN_TYPES",
    "TOOL_CALLS",
    "Labels",
    "Metrics",
    "Series",
    "default_metrics",
    "finish_label",
    "record_fallback",
    "record_feedback",
    "record_implicit",
    "record_request",
    "record_shadow",
    "record_shadow_dropped",
]
