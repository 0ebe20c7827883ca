"""Query side of the metrics: Prometheus through ``prometheus-api-client``, with a bounded timeout.

Anything that goes wrong (connection refused, timeout, HTTP error, a bad query, an unparsable answer) is
raised as :class:`~canaryflow.errors.MetricsUnavailable`; callers turn it into an ERROR measurement.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import requests
from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from canaryflow.errors import MetricsUnavailable
from canaryflow.metrics.deltas import RawSeries

DEFAULT_TIMEOUT_S = 5.0


class PrometheusUnreachable(MetricsUnavailable):
    """Prometheus did not answer at all (connection refused, timeout) — as opposed to refusing a query."""


class MetricsSource(Protocol):
    """Anything that evaluates an instant PromQL query to one number."""

    def scalar(self, promql: str, *, at: float) -> float | None:
        """The sum of the instant vector's values at time ``at`` (None when the vector is empty).

        Raises:
            MetricsUnavailable: the query could not be answered.
        """
        ...

    def vector(self, promql: str, *, at: float, label: str) -> dict[str, float]:
        """The instant vector's values keyed by one label's value (e.g. ``le`` of histogram buckets).

        Raises:
            MetricsUnavailable: the query could not be answered.
        """
        ...

    def matrix(self, promql: str, *, at: float) -> list[RawSeries]:
        """A range selector's raw samples at time ``at``: ``[(labels, [(t, value), ...]), ...]``.

        Raises:
            MetricsUnavailable: the query could not be answered.
        """
        ...


class PrometheusSource:
    """A :class:`MetricsSource` over a Prometheus server's HTTP API.

    Args:
        url: the server, e.g. ``http://localhost:9090`` (default: ``CANARYFLOW_PROMETHEUS_URL``).
        timeout: seconds for each query, both the HTTP call and Prometheus' own evaluation.
    """

    def __init__(self, url: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if url is None:
            from canaryflow.settings import get_settings

            url = get_settings().prometheus_url
        self.url = url.rstrip("/")
        self.timeout = timeout
        # No client-side retries: Temporal owns retries, and a down Prometheus must fail fast.
        self._prom = PrometheusConnect(url=self.url, disable_ssl=True, retry=Retry(total=0), timeout=timeout)

    def close(self) -> None:
        """Release the HTTP session."""
        self._prom.close()

    def _query(self, promql: str, at: float) -> Any:
        try:
            return self._prom.custom_query(
                promql, params={"time": f"{at:.3f}", "timeout": f"{self.timeout:g}s"}, timeout=self.timeout
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise PrometheusUnreachable(f"Prometheus at {self.url} did not answer: {_short(exc)}") from exc
        except Exception as exc:  # HTTP errors (a bad query), prometheus_api_client errors
            raise MetricsUnavailable(f"Prometheus at {self.url} refused the query: {_short(exc)}") from exc

    def scalar(self, promql: str, *, at: float) -> float | None:
        """Evaluate ``promql`` at ``at`` and sum the values of the resulting vector (or read the scalar)."""
        return parse_result(self._query(promql, at))

    def vector(self, promql: str, *, at: float, label: str) -> dict[str, float]:
        """Evaluate ``promql`` at ``at``: values by the ``label`` of each series (NaN values skipped)."""
        data = self._query(promql, at)
        try:
            out: dict[str, float] = {}
            for item in data:
                value = float(item["value"][1])
                if not math.isnan(value):
                    key = str(item["metric"].get(label, ""))
                    out[key] = out.get(key, 0.0) + value
            return out
        except (TypeError, KeyError, ValueError, IndexError, AttributeError) as exc:
            raise MetricsUnavailable(f"unexpected Prometheus answer: {str(data)[:200]}") from exc


    def matrix(self, promql: str, *, at: float) -> list[RawSeries]:
        """Evaluate a range selector (``metric{...}[600s]``) at ``at``: every series' raw samples."""
        return parse_matrix(self._query(promql, at))


def parse_matrix(data: Any) -> list[RawSeries]:
    """A range query's ``result`` (a matrix) as ``[(labels, [(t, value), ...])]``; NaN samples skipped.

    Raises:
        MetricsUnavailable: the answer is not a matrix.
    """
    try:
        out: list[RawSeries] = []
        for item in data:
            labels = {str(k): str(v) for k, v in item["metric"].items()}
            samples = [(float(t), float(v)) for t, v in item["values"]]
            out.append((labels, [(t, v) for t, v in samples if not math.isnan(v)]))
        return out
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise MetricsUnavailable(f"unexpected Prometheus answer (not a matrix): {str(data)[:200]}") from exc


def parse_result(data: Any) -> float | None:
    """Sum an instant query's ``result`` (vector or scalar); None when empty; NaN values are skipped.

    Raises:
        MetricsUnavailable: the answer is not an instant vector or scalar.
    """
    try:
        if isinstance(data, list) and len(data) == 2 and not isinstance(data[0], dict):
            value = float(data[1])  # a scalar result: [time, "value"]
            return None if math.isnan(value) else value
        values = [float(item["value"][1]) for item in data]
    except (TypeError, KeyError, ValueError, IndexError) as exc:
        raise MetricsUnavailable(f"unexpected Prometheus answer: {str(data)[:200]}") from exc
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return None
    return sum(finite)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "…"


__all__ = [
    "DEFAULT_TIMEOUT_S",
    "MetricsSource",
    "PrometheusSource",
    "PrometheusUnreachable",
    "parse_matrix",
    "parse_result",
]
