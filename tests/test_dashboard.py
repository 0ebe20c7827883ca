"""Every PromQL query of the Grafana dashboard runs against a real Prometheus and returns data.

Prometheus scrapes a real metrics exposition fed with a few dozen requests of a stable and a candidate
version (errors, feedback, a fallback, a stream, shadow mirrors); the dashboard's template variables are
substituted with values that fit a fresh Prometheus (a short `offset`, a 1m rate interval).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import start_http_server

from canaryflow.metrics.instruments import (
    Labels,
    Metrics,
    record_fallback,
    record_feedback,
    record_request,
    record_shadow,
)
from tests.servers import Prometheus, free_port

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards" / "canaryflow.json"
pytestmark = pytest.mark.prometheus


def _targets() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dash["panels"] if p["type"] != "row" for t in p["targets"]]


def substitute(expr: str, config: str) -> str:
    """Replace the dashboard's variables (and Grafana's built-ins) as Grafana would."""
    values = {"$__rate_interval": "1m", "$__range": "5m", "$config": config, "$version": ".*",
              "$offset": "4s"}
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(name, values[name])
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def _feed(metrics: Metrics, config: str, rounds: int, stop: threading.Event) -> None:
    """A few dozen requests over several scrapes: stable v1, candidate v2 (slower, some errors), shadow."""
    stable = Labels(config, 1, "stable", "none", "openai", "gpt-4o-mini")
    cand = Labels(config, 2, "candidate", "beta", "openai", "gpt-4o-mini")
    shadow = Labels(config, 2, "shadow", "none", "openai", "gpt-4o-mini")
    for i in range(rounds):
        if stop.is_set():
            return
        for j in range(4):
            record_request(stable, outcome="success", finish_reason="stop", duration_s=0.2 + 0.05 * j,
                           input_tokens=40, output_tokens=60, cost_usd=0.0004, metrics=metrics)
        record_request(cand, outcome="success", finish_reason="length" if i % 3 == 0 else "stop",
                       duration_s=0.5, ttfc_s=0.1, input_tokens=30, output_tokens=50, cost_usd=0.0002,
                       metrics=metrics)
        record_request(cand, outcome="error", error_type="rate_limit" if i % 2 else "server_error",
                       metrics=metrics)
        record_request(shadow, outcome="success", finish_reason="stop", duration_s=0.4, input_tokens=30,
                       output_tokens=55, cost_usd=0.0002, metrics=metrics)
        record_shadow(shadow, 0.8, metrics=metrics)
        record_feedback(stable, "positive", metrics=metrics)
        record_feedback(cand, "negative" if i % 2 else "positive", metrics=metrics)
        if i % 4 == 0:
            record_fallback(cand, "server_error", metrics=metrics)
            record_request(Labels(config, 2, "candidate", "beta", "anthropic", "claude-haiku-4-5"),
                           outcome="success", finish_reason="stop", duration_s=0.7, input_tokens=30,
                           output_tokens=40, cost_usd=0.0003, metrics=metrics)
        stop.wait(0.5)


@pytest.fixture(scope="module")
def fed_config(prometheus: Prometheus) -> Iterator[str]:
    """A config with live traffic scraped by the session's Prometheus."""
    metrics = Metrics()
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    address = f"127.0.0.1:{port}"
    config = f"dash-{uuid.uuid4().hex[:8]}"
    stop = threading.Event()
    feeder = threading.Thread(target=_feed, args=(metrics, config, 60, stop), daemon=True)
    try:
        prometheus.add_target(address)
        prometheus.wait_scraped(address)
        feeder.start()
        yield config
    finally:
        stop.set()
        feeder.join(5)
        server.shutdown()
        thread.join(5)


def _has_finite_value(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in result)  # type: ignore[index]


def test_dashboard_is_well_formed() -> None:
    dash = json.loads(DASHBOARD.read_text())
    names = {v["name"] for v in dash["templating"]["list"]}
    assert {"config", "version", "offset"} <= names
    exprs = [e for _, e in _targets()]
    assert len(exprs) >= 20
    assert any("offset $offset" in e for e in exprs), "a time comparison panel"
    assert all('config="$config"' in e and 'version=~"$version"' in e for e in exprs)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for topic in ("latency", "error", "token", "cost", "feedback", "fallback", "shadow"):
        assert topic in titles, topic


def test_every_panel_query_returns_data(prometheus: Prometheus, fed_config: str) -> None:
    pending = {(title, substitute(expr, fed_config)) for title, expr in _targets()}
    deadline = time.monotonic() + 90
    last: dict[str, Any] = {}
    while pending and time.monotonic() < deadline:
        for title, expr in sorted(pending):
            result = prometheus.query(expr)
            last[expr] = result
            if result and _has_finite_value(result):
                pending.discard((title, expr))
        if pending:
            time.sleep(1)
    assert not pending, "panels without data:\n" + "\n".join(f"{t}: {e} -> {last.get(e)}" for t, e in pending)


def test_side_by_side_table_compares_stable_candidate_and_shadow(
    prometheus: Prometheus, fed_config: str
) -> None:
    dash = json.loads(DASHBOARD.read_text())
    table = next(p for p in dash["panels"] if p["type"] == "table")
    requests = substitute(table["targets"][0]["expr"], fed_config)
    deadline = time.monotonic() + 60
    seen: set[str] = set()
    while time.monotonic() < deadline:
        seen = {str(r["metric"]["variation"]) for r in prometheus.query(requests)}  # type: ignore[index]
        if {"stable", "candidate", "shadow"} <= seen:
            break
        time.sleep(1)
    assert {"stable", "candidate", "shadow"} <= seen


def test_substitution_leaves_valid_promql(prometheus: Prometheus) -> None:
    """Each substituted query parses (Prometheus answers 200, not 400), and a broken one does not."""
    for _, expr in _targets():
        prometheus.query(substitute(expr, "nothing"))
    with pytest.raises(Exception, match="400"):
        prometheus.query(re.sub(r"\)$", "", substitute(_targets()[0][1], "nothing")) + "(")
