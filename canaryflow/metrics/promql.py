"""PromQL for the built-in gates, over the metric names of DESIGN.md (query side).

The built-in gates read **raw samples**: a range selector ``metric{<selector>}[<W>s]`` evaluated at now,
``W`` reaching :data:`LOOKBACK_S` before the stage's start, so :mod:`canaryflow.metrics.deltas` finds each
series' baseline and counts exactly (:func:`raw`). :data:`RATE_SPECS` and :data:`MEAN_SPECS` say which
series and labels each gate adds up. The candidate is ``variation="candidate"`` of the candidate version —
or ``variation="shadow"`` during a shadow stage — and the stable side ``variation="stable"`` of the stable
version, both filtered by the config label and, in a segments stage, by the stage's segments (like with
like). Latency, cost and tokens read the primary's own attempts (``served_by="primary"``; series from
before that label existed have none and count as primary).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

REQUESTS = "canaryflow_requests_total"
DURATION = "gen_ai_client_operation_duration_seconds"
TOKENS = "gen_ai_client_token_usage"
COST = "canaryflow_cost_usd_total"
FEEDBACK = "canaryflow_feedback_total"
#: feedback replaced by a later one on the same request: subtracted, so each request counts once
FEEDBACK_RETRACTED = "canaryflow_feedback_retracted_total"
AGREEMENT = "canaryflow_shadow_agreement"
TOOL_CALLS = "canaryflow_tool_calls_total"
IMPLICIT = "canaryflow_implicit_feedback_total"
#: online evaluators: a histogram of scores (0–1) and a counter of results (``result`` = pass | fail), both
#: labelled ``evaluator``
EVAL_SCORE = "canaryflow_eval_score"
EVAL_RESULTS = "canaryflow_eval_total"
EVAL_DROPPED = "canaryflow_eval_dropped_total"
QUANTILES = {"latency_p50": 0.5, "latency_p95": 0.95, "latency_p99": 0.99}
NORMAL_FINISH = "stop|tool_calls"
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass(frozen=True)
class Selector:
    """One variation's series: config, version and variation labels (and a segments stage's segments)."""

    config: str
    version: int
    variation: str
    segments: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        values = (self.config, self.variation, *self.segments)
        if not all(_LABEL_VALUE.match(v) for v in values):
            raise ValueError(f"unsafe label value in {self!r}")

    def matchers(self, **extra: str) -> str:
        """``config="k",version="3",variation="candidate",...`` (what ``$selector`` expands to)."""
        pairs = [f'config="{self.config}"', f'version="{self.version}"', f'variation="{self.variation}"']
        if self.segments:
            seg = "|".join(self.segments)
            pairs.append(f'segment=~"{seg}"' if len(self.segments) > 1 else f'segment="{seg}"')
        pairs += [f'{k}=~"{v}"' if "|" in v else f'{k}="{v}"' for k, v in extra.items()]
        return ",".join(pairs)

    def labels(self, **extra: str) -> str:
        """``{config="k",version="3",variation="candidate",...}``."""
        return "{" + self.matchers(**extra) + "}"


def window_seconds(window_start: float, now: float) -> int:
    """The ``increase()`` window from the stage's start to now, in whole seconds (at least 1)."""
    return max(1, math.ceil(now - window_start))


def selectors(
    config: str, stable_version: int, candidate_version: int, stage_kind: str,
    segments: tuple[str, ...] = (),
) -> tuple[Selector, Selector]:
    """``(candidate, stable)`` selectors for a stage: the candidate is ``shadow`` during a shadow stage; in
    a segments stage both sides are restricted to the stage's segments."""
    cand_variation = "shadow" if stage_kind == "shadow" else "candidate"
    segs = tuple(segments) if stage_kind == "segments" else ()
    return (Selector(config, candidate_version, cand_variation, segs),
            Selector(config, stable_version, "stable", segs))


#: How far before the stage's start raw samples are fetched, to find every series' baseline.
LOOKBACK_S = 600


def raw_seconds(window_start: float, now: float) -> int:
    """The range of a raw-sample fetch: the stage so far plus :data:`LOOKBACK_S`."""
    return max(1, math.ceil(now - window_start)) + LOOKBACK_S


def raw(metric: str, sel: Selector, seconds: int) -> str:
    """A range selector of raw samples: ``metric{config="k",...}[Ns]`` (evaluate it at now)."""
    return f"{metric}{sel.labels()}[{seconds}s]"


LabelTest = Callable[[Mapping[str, str]], bool]


def _is(label: str, *values: str) -> LabelTest:
    return lambda labels: labels.get(label, "") in values


def primary(labels: Mapping[str, str]) -> bool:
    """Attempts the primary answered (``served_by="primary"``, or no ``served_by`` label at all)."""
    return labels.get("served_by", "") in ("primary", "")


@dataclass(frozen=True)
class RateSpec:
    """A rate gate: the metric whose series it sums, which of them are events (the rest only count in
    the total), and whether the events are the good ones."""

    metric: str
    events: LabelTest
    events_text: str
    higher_is_better: bool = False


RATE_SPECS: dict[str, RateSpec] = {
    "error_rate": RateSpec(REQUESTS, _is("outcome", "error"), 'outcome="error"'),
    "fallback_rate": RateSpec(REQUESTS, _is("served_by", "fallback"), 'served_by="fallback"'),
    "completion_rate": RateSpec(REQUESTS, _is("finish_reason", "stop", "tool_calls"),
                                'finish_reason=~"stop|tool_calls"', higher_is_better=True),
    # the denominator is the requests that received feedback, not every request served
    "negative_feedback_rate": RateSpec(FEEDBACK, _is("sentiment", "negative"), 'sentiment="negative"'),
    # per tool call: arguments not valid JSON for the tool's schema, or a tool the request did not declare
    "tool_call_error_rate": RateSpec(
        TOOL_CALLS, _is("result", "invalid_json", "schema_mismatch", "unknown_tool"),
        'result=~"invalid_json|schema_mismatch|unknown_tool"'),
}


@dataclass(frozen=True)
class MeanSpec:
    """A mean gate: ``sum`` over the series of one metric, divided by ``count`` over another's."""

    sum_metric: str
    sum_keep: LabelTest
    count_metric: str
    count_keep: LabelTest
    text: str


MEAN_SPECS: dict[str, MeanSpec] = {
    "cost_per_request": MeanSpec(
        COST, primary, REQUESTS, lambda lb: primary(lb) and lb.get("outcome") == "success",
        'cost of served_by="primary" / its requests with outcome="success"'),
    "tokens_per_request": MeanSpec(
        # input and output (cached_input is part of input, reasoning of output: not added twice)
        f"{TOKENS}_sum", lambda lb: primary(lb) and lb.get("gen_ai_token_type") in ("input", "output"),
        f"{TOKENS}_count",
        lambda lb: primary(lb) and lb.get("gen_ai_token_type") == "input",
        'tokens (input + output) of served_by="primary" / its requests'),
}


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
        # per request that received feedback (the denominator of a feedback rate)
        return RateQueries(_inc(FEEDBACK, sel, window, sentiment="negative"), _inc(FEEDBACK, sel, window))
    if metric == "fallback_rate":
        return RateQueries(_inc(REQUESTS, sel, window, served_by="fallback"), _inc(REQUESTS, sel, window))
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


RATE_METRICS = frozenset(RATE_SPECS)
VALUE_METRICS = frozenset({*QUANTILES, "cost_per_request", "tokens_per_request", "shadow_agreement"})

__all__ = [
    "AGREEMENT",
    "COST",
    "DURATION",
    "EVAL_DROPPED",
    "EVAL_RESULTS",
    "EVAL_SCORE",
    "FEEDBACK",
    "FEEDBACK_RETRACTED",
    "LOOKBACK_S",
    "MEAN_SPECS",
    "QUANTILES",
    "RATE_METRICS",
    "RATE_SPECS",
    "REQUESTS",
    "TOKENS",
    "TOOL_CALLS",
    "VALUE_METRICS",
    "MeanSpec",
    "RateQueries",
    "RateSpec",
    "Selector",
    "ValueQueries",
    "expand",
    "primary",
    "rate_queries",
    "raw",
    "raw_seconds",
    "selectors",
    "value_queries",
    "window_seconds",
]
