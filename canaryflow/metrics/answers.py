"""What modern answers add to the metrics: cached input and reasoning tokens, and tool-call validity.

* ``gen_ai_client_token_usage{gen_ai_token_type="cached_input"|"reasoning"}`` — observed when the usage
  reports them (input tokens include the cached ones; output tokens include the reasoning ones).
* ``canaryflow_tool_calls_total{result}`` — one per tool call in an answer, ``result`` one of
  :data:`~canaryflow.domain.answers.TOOL_CALL_RESULTS` (``valid``, ``invalid_json``: arguments that are not a
  JSON object, ``schema_mismatch``: not valid for the tool's JSON schema, ``unknown_tool``: a name the
  request did not declare). The ``tool_call_error_rate`` gate is the share of tool calls not ``valid``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence

from prometheus_client import Counter

from canaryflow.metrics.instruments import COMMON_LABELS, Labels, Metrics, default_metrics

TOOL_CALLS = "canaryflow_tool_calls"
_counters: weakref.WeakKeyDictionary[Metrics, Counter] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def tool_calls_counter(metrics: Metrics) -> Counter:
    """``canaryflow_tool_calls_total`` on ``metrics``' registry (created on first use)."""
    found = _counters.get(metrics)
    if found is None:
        with _lock:
            found = _counters.get(metrics)
            if found is None:
                found = _counters[metrics] = Counter(
                    TOOL_CALLS, "Tool calls in answers, by whether they fit the request's tools.",
                    (*COMMON_LABELS, "result"), registry=metrics.registry)
    return found


def record_answer_details(labels: Labels, *, cached_input_tokens: int = 0, reasoning_tokens: int = 0,
                          tool_call_results: Sequence[str] = (), metrics: Metrics | None = None) -> None:
    """Count what a successful answer reported beyond text and plain usage."""
    m = metrics or default_metrics()
    values = labels.values()
    if cached_input_tokens:
        m.tokens.labels(*values, "cached_input").observe(cached_input_tokens)
    if reasoning_tokens:
        m.tokens.labels(*values, "reasoning").observe(reasoning_tokens)
    if tool_call_results:
        counter = tool_calls_counter(m)
        for result in tool_call_results:
            counter.labels(*values, result).inc()


__all__ = ["TOOL_CALLS", "record_answer_details", "tool_calls_counter"]
