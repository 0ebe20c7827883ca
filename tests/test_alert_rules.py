"""The alert and recording rules pass Prometheus's own checks and unit tests (promtool).

The unit tests under deploy/prometheus/tests/ feed series that must fire each alert and series that must not
(within margins, too little traffic, or no change), so a rule that stops firing or fires too eagerly
fails here.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROM = ROOT / "deploy" / "prometheus"
RULES = PROM / "rules" / "canaryflow.rules.yml"
ALERTS = {
    "CanaryflowCostAnomaly",
    "CanaryflowCandidateLatencyAboveStable",
    "CanaryflowLatencyDegradation",
    "CanaryflowCandidateErrorRateAboveStable",
    "CanaryflowErrorRateIncrease",
    "CanaryflowQualityDrop",
    "CanaryflowOutputTokensDrift",
    "CanaryflowLatencyDrift",
}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool is missing: run 'make test' (it installs the Debian prometheus package)"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, cwd=PROM / "tests")


def test_rules_pass_promtool_check() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_compose_prometheus_config_passes_promtool_check() -> None:
    result = _promtool("check", "config", str(PROM / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    files = sorted(p.name for p in (PROM / "tests").glob("*.test.yml"))
    assert len(files) >= 4
    result = _promtool("test", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    """Each alert appears in a unit test that expects it to fire and in one that expects silence."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    defined = {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
    assert defined == ALERTS
    firing: set[str] = set()
    silent: set[str] = set()
    for path in (PROM / "tests").glob("*.test.yml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case["exp_alerts"] else silent).add(case["alertname"])
    assert firing == ALERTS
    assert silent == ALERTS


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    """The check is real: a rule with a PromQL syntax error fails it."""
    bad = tmp_path / "bad.yml"
    bad.write_text("groups: [{name: x, rules: [{alert: X, expr: 'sum(rate(x[5m])'}]}]\n")
    assert _promtool("check", "rules", str(bad)).returncode != 0
