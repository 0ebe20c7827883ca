"""What modern answers add to the metrics: cached input and reasoning tokens, and tool-call validity.

* ``gen_ai_client_token_usage{gen_ai_token_type="cached_input"|"reasoning"}`` — observed when the usage
  reports them (input tokens include the cached ones; output tokens include the reasoning ones).
* ``canaryflow_tool_calls_total{result}`` — one per tool call in an answer, ``result`` one of
  :data:`~canaryflow.domain.answers.TOOL_CALL_RESULTS` (``valid``, ``invalid_json``: arguments that are not a
  JSON object, ``schema_mismatch``: not valid for the tool's JSON schema, ``unknown_tool``: a name the
  request did not declare). The ``tool_call_error_rate`` gate is the share of tool calls not ``valid``.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter

from canaryflow.metrics.instruments import TOOL_CALLS, Labels, Metrics, Series, default_metrics


def tool_calls_counter(metrics: Metrics) -> Counter:
    """``canaryflow_tool_calls_total`` on ``metrics``' registry."""
    return metrics.tool_calls


def record_answer_details(labels: Labels, *, cached_input_tokens: int = 0, reasoning_tokens: int = 0,
                          tool_call_results: Sequence[str] = (), served_by: str = "primary",
                          answered_by: tuple[str, str] | None = None, metrics: Metrics | None = None,
                          series: Series | None = None) -> None:
    """Count what an answer reported beyond text and plain usage.

    Args:
        labels: the variation's own labels (as for :func:`~canaryflow.metrics.instruments.record_request`).
        served_by: ``primary`` (the variation's own model answered: what the gates read) or ``fallback``.
        answered_by: the (provider, model) that answered, needed when ``served_by="fallback"``.
        series: the prepared children of ``labels`` (skips the lookup; must belong to ``metrics``).
    """
    if series is None:
        series = (metrics or default_metrics()).series(labels)
    if served_by == "primary":
        answer = series.primary
    else:
        if answered_by is None:
            raise ValueError("answered_by (provider, model) is required when served_by='fallback'")
        answer = series.fallback(*answered_by)
    if cached_input_tokens:
        answer.tokens("cached_input").observe(cached_input_tokens)
    if reasoning_tokens:
        answer.tokens("reasoning").observe(reasoning_tokens)
    for result in tool_call_results:
        answer.tool_call(result).inc()


__all__ = ["TOOL_CALLS", "record_answer_details", "tool_calls_counter"]
