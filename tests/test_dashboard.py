"""Every PromQL query of the Grafana dashboard runs against a real Prometheus and returns data.

Prometheus scrapes the real gateway, in front of the provider simulator, after a few dozen requests of a
stable and a candidate version (errors, feedback, fallbacks, streams, shadow mirrors: see
tests/operator_fixtures.py); the dashboard's template variables are substituted with values that fit a fresh
Prometheus (a short `offset`; a 5m rate interval so the rates outlive the feed while the module runs).
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.operator_fixtures import Fed, fed
from tests.servers import Prometheus

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards" / "canaryflow.json"
pytestmark = pytest.mark.prometheus
__all__ = ["fed"]  # the module fixture, used below


def _targets() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dash["panels"] if p["type"] != "row" for t in p["targets"]]


def substitute(expr: str, config: str) -> str:
    """Replace the dashboard's variables (and Grafana's built-ins) as Grafana would."""
    values = {"$__rate_interval": "5m", "$__range": "10m", "$config": config, "$version": ".*",
              "$offset": "4s"}
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(name, values[name])
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


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


def test_every_panel_query_returns_data(fed: Fed) -> None:
    prometheus = fed.prometheus
    pending = {(title, substitute(expr, fed.key)) for title, expr in _targets()}
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


def test_side_by_side_table_compares_stable_candidate_and_shadow(fed: Fed) -> None:
    prometheus = fed.prometheus
    dash = json.loads(DASHBOARD.read_text())
    table = next(p for p in dash["panels"] if p["type"] == "table")
    requests = substitute(table["targets"][0]["expr"], fed.key)
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
