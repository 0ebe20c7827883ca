"""examples/openfeature_app.py, run as a user runs it: it resolves support-bot through the OpenFeature SDK
during a 50 % rollout, calls the simulator with the official client, tracks each call and its feedback —
and Prometheus, scraping the app, has the series the rollout's gates read, split by variation."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from pathlib import Path

import pytest

from canaryflow.domain.serving import Exposure
from canaryflow.files import load_config, load_segments
from canaryflow.registry import Registry
from canaryflow.sim.engine import Simulator
from canaryflow.sim.server import SimServer
from tests.servers import Prometheus, free_port

pytestmark = pytest.mark.prometheus
ROOT = Path(__file__).resolve().parent.parent
USERS = 20


def _first_line(proc: subprocess.Popen[str], timeout: float = 120.0) -> str:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    assert sel.select(timeout), "the example printed nothing in time"
    line = proc.stdout.readline()
    assert line, f"the example exited early: {proc.stderr.read() if proc.stderr else ''}"
    return line


def _wait_query(prometheus: Prometheus, promql: str, want: dict[str, float], timeout: float = 30.0
                ) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        got = {str(r["metric"].get("variation", "")): float(r["value"][1])  # type: ignore[index]
               for r in prometheus.query(promql)}
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.3)


def test_openfeature_example_shows_up_in_the_rollout_metrics(tmp_path: Path, prometheus: Prometheus) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    registry = Registry(db)
    registry.push_segments(load_segments(ROOT / "examples" / "segments.yaml"), by="test")
    for n in (1, 2):
        registry.push_config(load_config(ROOT / "examples" / f"support-bot.v{n}.yaml"))
    half = Exposure(candidate_version=2, stage="canary-50", stage_kind="percent", percent=50.0, salt="ex")
    registry.apply_exposure("support-bot", half, by="test", reason="example", source="test")
    registry.close()
    sim = SimServer(Simulator(seed=5, latency_scale=0.0))
    sim.start()
    port = free_port()
    env = {**os.environ, "CANARYFLOW_DB_URL": db, "OPENAI_BASE_URL": sim.openai_base_url,
           "OPENAI_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": sim.anthropic_base_url,
           "ANTHROPIC_API_KEY": "sk-ant-test", "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, str(ROOT / "examples" / "openfeature_app.py"), "--users", str(USERS),
            "--metrics-port", str(port)]
    pipe = subprocess.PIPE
    proc = subprocess.Popen(argv, env=env, stdin=pipe, stdout=pipe, stderr=pipe, text=True)
    try:
        summary = json.loads(_first_line(proc))
        served = summary["served"]
        assert set(served) == {"stable-v1", "candidate-v2"} and sum(served.values()) == USERS, served
        address = f"127.0.0.1:{port}"
        prometheus.add_target(address)
        prometheus.wait_scraped(address)
        want = {"stable": float(served["stable-v1"]), "candidate": float(served["candidate-v2"]),
                "shadow": 0.0}  # every variation the candidate may serve as exists at 0 before its traffic
        got = _wait_query(prometheus, 'sum by (variation) (canaryflow_requests_total'
                                      '{config="support-bot", outcome="success"})', want)
        assert got == want
        tokens = _wait_query(prometheus, 'sum by (variation) (gen_ai_client_token_usage_count'
                                         '{config="support-bot", gen_ai_token_type="output"})', want)
        assert tokens == want
        feedback = prometheus.query('sum(canaryflow_feedback_total{config="support-bot"})')
        assert float(feedback[0]["value"][1]) == USERS  # type: ignore[index]
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
        finally:
            if proc.poll() is None:
                proc.kill()
            sim.stop()
