"""`canaryflow dev`: the local stack comes up wired together, and SIGTERM stops all of it.

Real subprocesses on free ports (Temporal dev server + UI, Prometheus, simulator, gateway): a config pushed
with the CLI is served through the gateway by the simulator, Prometheus scrapes the gateway and loads the
rules, and after SIGTERM nothing of the stack is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from canaryflow.devstack import PROMETHEUS_HINT, DevStack, Ports
from canaryflow.errors import CanaryflowError
from tests.servers import free_port
from tests.test_demo import _processes_mentioning

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.temporal, pytest.mark.prometheus]
CLI = [sys.executable, "-c", "from canaryflow.cli import main; main()"]


def test_without_prometheus_it_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    stack = DevStack(root=tmp_path / "stack", echo=lambda _: None)
    with pytest.raises(CanaryflowError) as info:
        stack.start()
    assert str(info.value) == PROMETHEUS_HINT and "apt-get install -y prometheus" in PROMETHEUS_HINT
    assert stack.services == []


def test_generated_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    stack = DevStack(root=tmp_path, ports=Ports(gateway=18080, prometheus=19090), echo=lambda _: None)
    path = stack.write_prometheus_config()
    config = json.loads(path.read_text())
    assert config["global"]["scrape_interval"] == "1s"
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == ["127.0.0.1:18080"]
    assert [Path(p).name for p in config["rule_files"]] == ["canaryflow.rules.yml"]
    done = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 21 rules found" in done.stdout


def test_dev_stack_serves_through_the_simulator_and_stops_on_sigterm(tmp_path: Path) -> None:
    ports = Ports(free_port(), free_port(), free_port(), free_port(), free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARYFLOW_")}
    env["CANARYFLOW_DB_URL"] = f"sqlite:///{tmp_path / 'registry.db'}"
    args = ["dev", "--dir", str(tmp_path / "stack"), "--no-worker", "--temporal-port", str(ports.temporal),
            "--ui-port", str(ports.ui), "--prometheus-port", str(ports.prometheus),
            "--gateway-port", str(ports.gateway), "--sim-port", str(ports.sim)]
    with open(tmp_path / "dev.out", "wb") as out:
        dev = subprocess.Popen([*CLI, *args], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while "Ctrl-C stops everything" not in (tmp_path / "dev.out").read_text():
            assert dev.poll() is None, (tmp_path / "dev.out").read_text()
            assert time.monotonic() < deadline, "the stack did not come up"
            time.sleep(0.5)
        printed = (tmp_path / "dev.out").read_text()
        assert f"http://127.0.0.1:{ports.ui}" in printed and f"http://127.0.0.1:{ports.gateway}/v1" in printed
        assert httpx.get(f"http://127.0.0.1:{ports.ui}/", timeout=10).status_code == 200

        pushed = subprocess.run([*CLI, "config", "push", str(ROOT / "deploy/demo/support-bot.v1.yaml")],
                                env=env, capture_output=True, text=True, timeout=60, check=False)
        assert pushed.returncode == 0, pushed.stderr
        question = [{"role": "user", "content": "What is the capital of France?"}]
        answer = httpx.post(f"http://127.0.0.1:{ports.gateway}/v1/chat/completions", timeout=30,
                            json={"model": "support-bot", "messages": question})
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"]
        assert answer.headers["x-canaryflow-version"] == "1"

        prom = f"http://127.0.0.1:{ports.prometheus}/api/v1"
        query = 'sum(canaryflow_requests_total{config="support-bot"})'
        deadline = time.monotonic() + 30
        while not httpx.get(f"{prom}/query", params={"query": query}).json()["data"]["result"]:
            assert time.monotonic() < deadline, "Prometheus never scraped the gateway"
            time.sleep(0.5)
        groups = httpx.get(f"{prom}/rules").json()["data"]["groups"]
        assert {g["name"] for g in groups} == {"canaryflow.recording", "canaryflow.alerts"}
    finally:
        dev.send_signal(signal.SIGTERM)
        code = dev.wait(60)
    assert code == 0, (tmp_path / "dev.out").read_text()
    assert "stopped." in (tmp_path / "dev.out").read_text()
    assert _processes_mentioning(str(tmp_path / "stack")) == []
    assert _processes_mentioning(str(tmp_path / "registry.db")) == []
