"""Prometheus instruments of the traffic plane, named exactly as DESIGN.md says (exporter side).

Every request served by the SDK or the gateway goes through :func:`record_request` exactly once — success or
error, plain or streamed — so "N requests sent → N counted" holds. Conventions the query side relies on:

* ``canaryflow_requests_total{outcome, error_type, finish_reason}``: ``outcome`` is ``success`` or ``error``;
  ``error_type`` is one of :data:`canaryflow.errors.ERROR_TYPES` or ``none`` on success; ``finish_reason`` is
  stop, length, content_filter, tool_calls or ``error``.
* ``variation`` is the resolved variation (stable, candidate, pinned) even when a fallback served; the
  ``gen_ai_*`` labels name the provider/model that actually answered. Fallbacks are counted in
  ``canaryflow_fallbacks_total{reason}`` (reason = the primary's error type, or ``circuit_open``) labelled
  with the primary provider/model. Mirrored shadow calls use variation ``shadow``.
* Durations, time to first chunk and token usage are observed for successful requests; errors are judged by
  the error rate.

The instruments live on their own :class:`CollectorRegistry` (one :class:`Metrics` per process by default) so
tests read exact counts and ``/metrics`` exposes only canaryflow's series.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

COMMON_LABELS = ("config", "version", "variation", "segment", "gen_ai_provider_name", "gen_ai_request_model")
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TTFC_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
AGREEMENT_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
SENTIMENTS = ("positive", "negative")
CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass(frozen=True, slots=True)
class Labels:
    """The common labels of one request."""

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


class _Bound:
    """Labelled children of one label set, each created on first use (so no series appears that the
    unbound calls would not have created)."""

    __slots__ = ("_cost", "_duration", "_m", "_requests", "_tokens", "_ttfc", "values")

    def __init__(self, metrics: Metrics, values: tuple[str, ...]) -> None:
        self._m = metrics
        self.values = values
        self._requests: dict[str, Any] = {}
        self._tokens: dict[str, Any] = {}
        self._duration: Any = None
        self._ttfc: Any = None
        self._cost: Any = None

    def success(self, finish_reason: str) -> Any:
        child = self._requests.get(finish_reason)
        if child is None:
            child = self._requests[finish_reason] = self._m.requests.labels(*self.values, "success", "none",
                                                                            finish_reason)
        return child

    def tokens(self, kind: str) -> Any:
        child = self._tokens.get(kind)
        if child is None:
            child = self._tokens[kind] = self._m.tokens.labels(*self.values, kind)
        return child

    def duration(self) -> Any:
        if self._duration is None:
            self._duration = self._m.duration.labels(*self.values)
        return self._duration

    def ttfc(self) -> Any:
        if self._ttfc is None:
            self._ttfc = self._m.ttfc.labels(*self.values)
        return self._ttfc

    def cost(self) -> Any:
        if self._cost is None:
            self._cost = self._m.cost.labels(*self.values)
        return self._cost


class Metrics:
    """The instruments on one collector registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.duration = Histogram(
            "gen_ai_client_operation_duration_seconds", "Duration of a GenAI operation (seconds).",
            COMMON_LABELS, buckets=DURATION_BUCKETS, registry=r)
        self.tokens = Histogram(
            "gen_ai_client_token_usage", "Tokens used by a GenAI operation.",
            (*COMMON_LABELS, "gen_ai_token_type"), buckets=TOKEN_BUCKETS, registry=r)
        self.ttfc = Histogram(
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "Time from request to the first streamed chunk (seconds).",
            COMMON_LABELS, buckets=TTFC_BUCKETS, registry=r)
        self.requests = Counter(
            "canaryflow_requests", "Requests served, by outcome.",
            (*COMMON_LABELS, "outcome", "error_type", "finish_reason"), registry=r)
        self.cost = Counter("canaryflow_cost_usd", "Provider cost in USD.", COMMON_LABELS, registry=r)
        self.feedback = Counter(
            "canaryflow_feedback", "User feedback on answers.", (*COMMON_LABELS, "sentiment"), registry=r)
        self.fallbacks = Counter(
            "canaryflow_fallbacks", "Requests a fallback served, by why the primary was skipped.",
            (*COMMON_LABELS, "reason"), registry=r)
        self.shadow_agreement = Histogram(
            "canaryflow_shadow_agreement", "Agreement of the shadow candidate's answer with stable (0–1).",
            COMMON_LABELS, buckets=AGREEMENT_BUCKETS, registry=r)
        self.shadow_dropped = Counter(
            "canaryflow_shadow_dropped", "Shadow mirrors dropped because the mirror queue was full.",
            COMMON_LABELS, registry=r)
        self._bound: dict[Labels, _Bound] = {}

    def bound(self, labels: Labels) -> _Bound:
        """The children of ``labels``, bound once (``labels()`` validates and locks on every call)."""
        found = self._bound.get(labels)
        if found is None:
            found = self._bound[labels] = _Bound(self, labels.values())
        return found

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
    duration_s: float | None = None,
    ttfc_s: float | None = None,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cost_usd: float = 0.0,
    metrics: Metrics | None = None,
) -> None:
    """Count one request — call exactly once per request, whatever happened.

    Args:
        labels: the common labels (provider/model = who answered).
        outcome: ``success`` or ``error``.
        error_type: the error taxonomy type when ``outcome`` is ``error``.
        finish_reason: the provider's finish reason on success (``error`` is used on failure).
        duration_s: wall time of the whole operation (observed on success).
        ttfc_s: time to the first streamed chunk, for streams.
        input_tokens: prompt tokens from the provider's usage.
        output_tokens: completion tokens from the provider's usage.
        cost_usd: the request's cost.
        metrics: the instruments to use (default: :func:`default_metrics`).
    """
    m = metrics or default_metrics()
    if outcome != "success":
        m.requests.labels(*labels.values(), "error", error_type or "other", "error").inc()
        return
    bound = m.bound(labels)
    bound.success(finish_reason or "stop").inc()
    if duration_s is not None:
        bound.duration().observe(duration_s)
    if ttfc_s is not None:
        bound.ttfc().observe(ttfc_s)
    bound.tokens("input").observe(input_tokens)
    bound.tokens("output").observe(output_tokens)
    if cost_usd:
        bound.cost().inc(cost_usd)


def record_fallback(labels: Labels, reason: str, *, metrics: Metrics | None = None) -> None:
    """Count a request that a fallback served; ``labels`` name the primary that was skipped."""
    (metrics or default_metrics()).fallbacks.labels(*labels.values(), reason).inc()


def record_feedback(labels: Labels, sentiment: str, *, metrics: Metrics | None = None) -> None:
    """Count one piece of feedback (``positive`` or ``negative``) on a served request."""
    (metrics or default_metrics()).feedback.labels(*labels.values(), sentiment).inc()


def record_shadow(labels: Labels, agreement: float, *, metrics: Metrics | None = None) -> None:
    """Observe the agreement score of one mirrored request (``labels.variation`` is ``shadow``)."""
    (metrics or default_metrics()).shadow_agreement.labels(*labels.values()).observe(agreement)


def record_shadow_dropped(labels: Labels, *, metrics: Metrics | None = None) -> None:
    """Count a mirror dropped because the shadow queue was full."""
    (metrics or default_metrics()).shadow_dropped.labels(*labels.values()).inc()


__all__ = [
    "COMMON_LABELS",
    "CONTENT_TYPE",
    "Labels",
    "Metrics",
    "default_metrics",
    "record_fallback",
    "record_feedback",
    "record_request",
    "record_shadow",
    "record_shadow_dropped",
]
