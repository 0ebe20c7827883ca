"""`canaryflow compare` (from a real Prometheus) and `canaryflow feedback` (from the real traffic log) on the
traffic of tests/operator_fixtures.py: v1 stable, v2 a candidate that fails often and cuts its answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from canaryflow.errors import CanaryflowError, ValidationFailed
from canaryflow.feedback_report import feedback_report, format_report, looks_like_broken_json
from canaryflow.metrics.compare import compare, format_table
from tests.operator_fixtures import Fed, fed
from tests.servers import free_port

pytestmark = pytest.mark.prometheus
__all__ = ["fed"]  # the module fixture, used below


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from canaryflow.cli import main; main()", *args],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False)


def test_compare_by_version_puts_the_candidate_beside_stable(fed: Fed) -> None:
    rows = {r.group: r for r in compare(fed.prometheus.url, fed.key, window="10m", by="version")}
    assert set(rows) == {"v1", "v2"}
    v1, v2 = rows["v1"], rows["v2"]
    assert v1.requests > v2.requests > 0
    assert v2.error_rate is not None and v1.error_rate is not None
    assert v2.error_rate > v1.error_rate
    for r in (v1, v2):
        assert r.latency_p50_s is not None and r.latency_p95_s is not None
        assert r.latency_p50_s <= r.latency_p95_s
        assert r.input_tokens_per_request and r.output_tokens_per_request
        assert r.cost_per_request_usd is not None and r.cost_per_request_usd > 0
        assert r.negative_feedback_rate is not None and 0 < r.negative_feedback_rate < 1
    table = format_table(list(rows.values()), "version")
    assert table.splitlines()[0].split()[:3] == ["version", "requests", "errors"]
    assert len(table.splitlines()) == 3


def test_compare_by_variation_and_segment(fed: Fed) -> None:
    variations = {r.group for r in compare(fed.prometheus.url, fed.key, window="10m", by="variation")}
    assert {"stable v1", "candidate v2", "shadow v2"} <= variations
    segments = {r.group for r in compare(fed.prometheus.url, fed.key, window="10m", by="segment")}
    assert "beta" in segments


def test_compare_refuses_bad_input_and_unreachable_prometheus(fed: Fed) -> None:
    with pytest.raises(ValidationFailed, match="window"):
        compare(fed.prometheus.url, fed.key, window="an hour")
    with pytest.raises(ValidationFailed, match="--by"):
        compare(fed.prometheus.url, fed.key, by="colour")  # type: ignore[arg-type]
    with pytest.raises(CanaryflowError, match="cannot reach Prometheus"):
        compare(f"http://127.0.0.1:{free_port()}", fed.key)
    assert compare(fed.prometheus.url, "no-such-config", window="10m") == []


def test_compare_cli(fed: Fed) -> None:
    env = {"CANARYFLOW_PROMETHEUS_URL": fed.prometheus.url}
    done = _cli("compare", fed.key, "--window", "10m", "--json", env=env)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert {r["group"] for r in data["rows"]} == {"v1", "v2"}
    assert "histogram_quantile(0.95" in data["queries"]["latency_p95_s"]
    text = _cli("compare", fed.key, "--window", "10m", "--by", "variation", env=env)
    assert text.returncode == 0 and "shadow v2" in text.stdout
    missing = _cli("compare", "no-such-config", "--window", "10m", env=env)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "no traffic" in missing.stderr
    bad = _cli("compare", fed.key, "--by", "colour", env=env)
    assert bad.returncode == 1 and "--by" in bad.stderr


def test_feedback_report_groups_by_version_with_failure_patterns(fed: Fed) -> None:
    reports = {r.version: r for r in feedback_report(fed.stack.registry, fed.key, limit=3)}
    assert set(reports) == {1, 2}
    v1, v2 = reports[1], reports[2]
    assert v1.positive > 0 and v1.negative > 0
    assert v2.patterns["truncated answer (finish_reason=length)"] > 0
    assert any(name.startswith("error: ") for name in v2.patterns)
    assert not any(name.startswith("error: ") for name in v1.patterns)
    item = v1.items[0]
    assert item.question.startswith("Question ") and item.answer
    negative = feedback_report(fed.stack.registry, fed.key, version=2, negative_only=True, limit=5)
    assert [r.version for r in negative] == [2]
    assert negative[0].items and all(i.sentiment == "negative" for i in negative[0].items)
    assert all(i.comment == "too long" for i in negative[0].items)
    text = format_report(negative, fed.key)
    assert text.splitlines()[2].startswith(f"{fed.key} v2:")
    assert "most common failure patterns" in text and "asked:" in text


def test_feedback_counts_what_compare_counts_over_the_same_window(fed: Fed) -> None:
    """Every stored feedback of the window is counted (no newest-N cap), per version, as Prometheus counts it;
    the listed items of an older version still carry their question and answer."""
    compared = {r.group: r for r in compare(fed.prometheus.url, fed.key, window="10m", by="version")}
    reports = {r.version: r for r in feedback_report(fed.stack.registry, fed.key, limit=2, scan=1,
                                                     window_s=600)}
    assert set(reports) == {1, 2}
    for version, rep in reports.items():
        row = compared[f"v{version}"]
        for mine, theirs in ((rep.positive, row.feedback_positive), (rep.negative, row.feedback_negative)):
            assert abs(mine - theirs) <= max(2.0, 0.1 * mine), (version, mine, theirs)
        assert rep.logged_requests == 1  # scan=1: the patterns' sample is what it says
    old = feedback_report(fed.stack.registry, fed.key, version=1, limit=3, window_s=600)
    assert [r.version for r in old] == [1] and old[0].items
    assert any(i.question and i.answer for i in old[0].items)


def test_feedback_cli(fed: Fed) -> None:
    env = {"CANARYFLOW_DB_URL": str(fed.stack.registry.engine.url)}
    done = _cli("feedback", fed.key, "--negative", "--json", env=env)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [v["version"] for v in data["versions"]] == [2, 1]
    assert all(i["sentiment"] == "negative" for v in data["versions"] for i in v["items"])
    assert data["window"] == "1h" and data["counted"] == "every feedback in the window"
    text = _cli("feedback", fed.key, "--version", "2", env=env)
    assert text.returncode == 0 and "truncated answer" in text.stdout and f"{fed.key} v1" not in text.stdout
    assert text.stdout.startswith(f"{fed.key}, feedback in the last 1h: every feedback counted (registry)")
    both = _cli("feedback", fed.key, "--window", "10m", env=env)
    assert both.returncode == 0 and f"{fed.key} v1:" in both.stdout and f"{fed.key} v2:" in both.stdout


@pytest.mark.parametrize(("text", "broken"), [
    ('{"answer": 42}', False), ('{"answer": 42', True), ("```json\n{\"a\": [1, 2}\n```", True),
    ("[1, 2, 3]", False), ("Paris is the capital.", False), ("", False)])
def test_broken_json_detection(text: str, broken: bool) -> None:
    assert looks_like_broken_json(text) is broken
