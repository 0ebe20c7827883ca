"""`make dev` and the README's "Ten lines": the local stack comes up wired together, the block runs as
written, and stopping it stops all of it.

Real subprocesses on free ports (Temporal dev server + UI, Prometheus, simulator, gateway, worker) in a fresh
checkout: configs pushed with the CLI are served through the gateway by the simulator, Prometheus scrapes the
gateway and loads the rules, a rollout starts with the stock Temporal CLI and takes an approval, and after
``kill %2 %1`` nothing of the stack is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from canaryflow.devstack import NEXT_STEPS, PROMETHEUS_HINT, DevStack, Ports
from canaryflow.errors import CanaryflowError
from canaryflow.temporal.devserver import temporal_binary
from tests.checkout import checkout, clean_env
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


def readme_ten_lines() -> list[str]:
    """The README's "Ten lines" block: one entry per command (continuation lines joined)."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## Ten lines", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands: list[str] = []
    pending = ""
    for line in block.splitlines():
        pending += line + "\n"
        if not line.rstrip().endswith("\\"):
            commands.append(pending.rstrip("\n"))
            pending = ""
    return commands


def _without_comment(line: str) -> str:
    return re.sub(r"\s+# [^'\"]*$", "", line)


def test_make_dev_prints_the_readme_lines() -> None:
    lines = [_without_comment(line) for c in readme_ten_lines() for line in c.splitlines()]
    assert lines[:2] == ["make dev &", "make dev-wait && . .canaryflow/env"]
    assert tuple(lines[2:]) == NEXT_STEPS


class Terminal:
    """A bash reading commands from a pipe, as a terminal would: state (cwd, variables, jobs) carries over."""

    def __init__(self, cwd: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.out = open(log, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=cwd, env=env,
                                     stdin=subprocess.PIPE, stdout=self.out, stderr=subprocess.STDOUT)
        self.done = 0

    def run(self, command: str, timeout: float = 120) -> int:
        """Type ``command``; return its exit code (a backgrounded one returns at once)."""
        self.done += 1
        marker = f"__rc_{self.done}__"
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command}\necho {marker}=$?\n".encode())
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while (found := re.search(rf"{marker}=(\d+)", self.text())) is None:
            assert self.proc.poll() is None, self.text()[-3000:]
            assert time.monotonic() < deadline, f"{command!r} runs past {timeout}s:\n{self.text()[-3000:]}"
            time.sleep(0.2)
        return int(found[1])

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()


def _sourced(env_file: Path, base: dict[str, str]) -> dict[str, str]:
    """``base`` plus the ``export`` lines of the dev stack's env file, as a shell sourcing it would have."""
    env = dict(base)
    done = subprocess.run(["bash", "-c", f". {env_file} && env -0"], env=base, capture_output=True,
                          check=True)
    env.update(item.split("=", 1) for item in done.stdout.decode().split("\0") if "=" in item)
    return env


def _status(env: dict[str, str]) -> dict[str, Any] | None:
    done = subprocess.run([temporal_binary(), "workflow", "query", "--workflow-id", "rollout-support-bot",
                           "--name", "status", "--output", "json"], env=env, capture_output=True, text=True,
                          timeout=30, check=False)
    return dict(json.loads(done.stdout)["queryResult"][0]) if done.returncode == 0 else None


def _wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g}s"
        time.sleep(1.0)


@pytest.mark.timeout(600)
def test_the_readme_ten_lines_run_as_written(tmp_path: Path) -> None:
    """A fresh checkout, a shell without the venv on PATH, the README's block typed in order (the --watch line
    in a second terminal, the approval when the status asks for it); every command exits 0; the stack serves,
    scrapes and loads its rules; ``kill %2 %1`` stops everything and the checkout stays clean."""
    repo = checkout(tmp_path / "repo")
    ports = Ports(free_port(), free_port(), free_port(), free_port(), free_port())
    env = clean_env(repo)
    env.update({"CANARYFLOW_TEMPORAL_ADDRESS": f"127.0.0.1:{ports.temporal}",  # free ports, not the defaults
                "CANARYFLOW_TEMPORAL_UI_PORT": str(ports.ui),
                "CANARYFLOW_PROMETHEUS_URL": f"http://127.0.0.1:{ports.prometheus}",
                "CANARYFLOW_GATEWAY_PORT": str(ports.gateway), "CANARYFLOW_SIM_PORT": str(ports.sim)})
    commands = readme_ten_lines()
    second: subprocess.Popen[bytes] | None = None
    term = Terminal(repo, env, tmp_path / "terminal.log")
    try:
        codes: dict[str, int] = {}
        for command in commands:
            if "--watch" in command:  # the README gives it a second terminal
                with open(tmp_path / "watch.log", "wb") as out:
                    second = subprocess.Popen(["bash", "-c", f". .canaryflow/env && {command}"], cwd=repo,
                                              env=env, stdout=out, stderr=subprocess.STDOUT)
                continue
            if "--name approve" in command:  # "whenever the status says awaiting_approval"
                asks = _sourced(repo / ".canaryflow" / "env", env)
                _wait_for("awaiting_approval", lambda e=asks: (_status(e) or {}).get("state")  # type: ignore[misc]
                          == "awaiting_approval", timeout=300)
            codes[command] = term.run(command, timeout=240)
        assert all(code == 0 for code in codes.values()), (codes, term.text()[-4000:])

        printed = term.text()
        assert f"http://127.0.0.1:{ports.ui}" in printed, printed[-3000:]
        for line in NEXT_STEPS:  # make dev's hint is the README's block
            assert line in printed
        sourced = _sourced(repo / ".canaryflow" / "env", env)
        assert Path(sourced["PATH"].split(":")[0], "canaryflow").exists()
        status = _status(sourced)
        assert status is not None
        approvals = [e for e in status["events"] if e["action"] == "approve"]
        assert approvals and approvals[0]["accepted"] and approvals[0]["by"] == "alice", status["events"]
        assert '"state":' in printed  # the jq line printed its pick

        prom = f"http://127.0.0.1:{ports.prometheus}/api/v1"
        groups = httpx.get(f"{prom}/rules", timeout=10).json()["data"]["groups"]
        assert {g["name"] for g in groups} == {"canaryflow.recording", "canaryflow.alerts"}
        served = httpx.get(f"{prom}/query", timeout=10, params={
            "query": 'sum(canaryflow_requests_total{config="support-bot",version="1"})'}).json()
        assert float(served["data"]["result"][0]["value"][1]) > 0

        # End the rollout; the watching terminal then returns 0 with the outcome.
        assert term.run("canaryflow rollout abort support-bot --by test --reason 'end of the test'") == 0
        assert second is not None
        assert second.wait(60) == 0, (tmp_path / "watch.log").read_text()[-3000:]
        assert "aborted" in (tmp_path / "watch.log").read_text()

        # The README's way to stop it all.
        assert term.run("kill %2 %1; wait", timeout=90) in (0, 143)
        assert "stopped." in term.text()
        assert not (repo / ".canaryflow" / "env").exists()
    finally:
        if second is not None and second.poll() is None:
            second.kill()
        term.close()
        leftovers = _processes_mentioning(str(repo))
        for line in leftovers:  # do not leave a stack running for the next test, whatever failed
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)
    assert leftovers == []
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo,
                           capture_output=True, text=True, check=True).stdout
    assert dirty == "", dirty
