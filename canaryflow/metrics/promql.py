"""PromQL for the built-in gates, over the metric names of DESIGN.md (query side).

Every query is windowed from the stage's start: ``increase(...[<W>s])`` with ``W = now − window_start``,
evaluated at ``now``. The candidate is ``variation="candidate"`` of the candidate version — or
``variation="shadow"`` during a shadow stage — and the stable side ``variation="stable"`` of the stable
version, both filtered by the config label. :func:`gate_queries` returns what a gate needs per variation;
the judge gets the numbers, the evidence gets the text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

REQUESTS = "canaryflow_requests_total"
DURATION = "gen_ai_client_operation_duration_seconds"
TOKENS = "gen_ai_client_token_usage"
COST = "canaryflow_cost_usd_total"
FEEDBACK = "canaryflow_feedback_total"
AGREEMENT = "canaryflow_shadow_agreement"
TOOL_CALLS = "canaryflow_tool_calls_total"
QUANTILES = {"latency_p50": 0.5, "latency_p95": 0.95, "latency_p99": 0.99}
NORMAL_FINISH = "stop|tool_calls"
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass(frozen=True)
class Selector:
    """One variation's series: config, version and variation labels."""

    config: str
    version: int
    variation: str

    def __post_init__(self) -> None:
        if not _LABEL_VALUE.match(self.config) or not _LABEL_VALUE.match(self.variation):
            raise ValueError(f"unsafe label value in {self!r}")

    def matchers(self, **extra: str) -> str:
        """``config="k",version="3",variation="candidate",...`` (what ``$selector`` expands to)."""
        pairs = [f'config="{self.config}"', f'version="{self.version}"', f'variation="{self.variation}"']
        pairs += [f'{k}=~"{v}"' if "|" in v else f'{k}="{v}"' for k, v in extra.items()]
        return ",".join(pairs)

    def labels(self, **extra: str) -> str:
        """``{config="k",version="3",variation="candidate",...}``."""
        return "{" + self.matchers(**extra) + "}"


def window_seconds(window_start: float, now: float) -> int:
    """The ``increase()`` window from the stage's start to now, in whole seconds (at least 1)."""
    return max(1, math.ceil(now - window_start))


def selectors(
    config: str, stable_version: int, candidate_version: int, stage_kind: str
) -> tuple[Selector, Selector]:
    """``(candidate, stable)`` selectors for a stage: the candidate is ``shadow`` during a shadow stage."""
    cand_variation = "shadow" if stage_kind == "shadow" else "candidate"
    return Selector(config, candidate_version, cand_variation), Selector(config, stable_version, "stable")


def _inc(metric: str, sel: Selector, window: int, **extra: str) -> str:
    return f"sum(increase({metric}{sel.labels(**extra)}[{window}s]))"


@dataclass(frozen=True)
class RateQueries:
    """Counts for a rate gate: ``events / total`` per variation."""

    events: str
    total: str


@dataclass(frozen=True)
class ValueQueries:
    """A value and its sample count per variation (``value`` may be a quotient computed by the caller:
    ``numerator / samples``)."""

    value: str | None
    numerator: str | None
    samples: str
    buckets: str | None = None


def rate_queries(metric: str, sel: Selector, window: int) -> RateQueries:
    """PromQL for the error, negative-feedback and completion rates."""
    if metric == "error_rate":
        return RateQueries(_inc(REQUESTS, sel, window, outcome="error"), _inc(REQUESTS, sel, window))
    if metric == "completion_rate":
        good = _inc(REQUESTS, sel, window, finish_reason=NORMAL_FINISH)
        return RateQueries(good, _inc(REQUESTS, sel, window))
    if metric == "negative_feedback_rate":
        # per request served, not per feedback given: no feedback at all is data (nothing negative), and
        # a sparse feedback stream does not leave the gate without a denominator
        return RateQueries(_inc(FEEDBACK, sel, window, sentiment="negative"), _inc(REQUESTS, sel, window))
    if metric == "tool_call_error_rate":
        # per tool call: arguments not valid JSON for the tool's schema, or a tool the request did not declare
        return RateQueries(_inc(TOOL_CALLS, sel, window, result="invalid_json|schema_mismatch|unknown_tool"),
                           _inc(TOOL_CALLS, sel, window))
    raise ValueError(f"{metric!r} is not a rate metric")


def value_queries(metric: str, sel: Selector, window: int) -> ValueQueries:
    """PromQL for latency quantiles, cost and tokens per request, and the shadow agreement mean."""
    if metric in QUANTILES:
        q = QUANTILES[metric]
        buckets = f"sum by (le) (increase({DURATION}_bucket{sel.labels()}[{window}s]))"
        count = _inc(f"{DURATION}_count", sel, window)
        return ValueQueries(f"histogram_quantile({q}, {buckets})", None, count, buckets)
    if metric == "cost_per_request":
        return ValueQueries(None, _inc(COST, sel, window), _inc(REQUESTS, sel, window, outcome="success"))
    if metric == "tokens_per_request":
        return ValueQueries(None, _inc(f"{TOKENS}_sum", sel, window),
                            _inc(f"{TOKENS}_count", sel, window, gen_ai_token_type="input"))
    if metric == "shadow_agreement":
        total = _inc(f"{AGREEMENT}_sum", sel, window)
        return ValueQueries(None, total, _inc(f"{AGREEMENT}_count", sel, window))
    raise ValueError(f"{metric!r} is not a value metric")


def expand(template: str, sel: Selector, window: int) -> str:
    """A custom ratio gate's query for one variation: ``$selector`` and ``$window`` filled in."""
    return template.replace("$selector", sel.matchers()).replace("$window", f"{window}s")


RATE_METRICS = frozenset({"error_rate", "completion_rate", "negative_feedback_rate", "tool_call_error_rate"})
VALUE_METRICS = frozenset({*QUANTILES, "cost_per_request", "tokens_per_request", "shadow_agreement"})

__all__ = [
    "AGREEMENT",
    "COST",
    "DURATION",
    "FEEDBACK",
    "QUANTILES",
    "RATE_METRICS",
    "REQUESTS",
    "TOKENS",
    "TOOL_CALLS",
    "VALUE_METRICS",
    "RateQueries",
    "Selector",
    "ValueQueries",
    "expand",
    "rate_queries",
    "selectors",
    "value_queries",
    "window_seconds",
]
