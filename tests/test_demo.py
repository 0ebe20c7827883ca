"""The first hour, end to end on real stacks: the README's "Ten lines" typed as written into a fresh
checkout, and `canaryflow demo --quick` telling the whole story on its own stack — each exits cleanly and
leaves nothing running.

Ten lines: `make dev` in the background (Temporal dev server + UI, Prometheus, simulator, gateway, worker on
free ports), configs pushed with the CLI and served through the gateway by the simulator, Prometheus
scraping the gateway with the rules loaded, a rollout started with the stock Temporal CLI that takes an
approval when it asks, and ``kill %2 %1`` stopping everything. Demo: pushes, load, a good rollout approved by
signal to full, a bad one rolled back by its gates; then every process of the stack is gone. The demo runs in
the background while the ten lines run (both mostly wait on timers), so the suite pays for one of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from canaryflow.devstack import NEXT_STEPS, Ports
from canaryflow.temporal.devserver import temporal_binary
from tests.checkout import checkout, clean_env
from tests.servers import free_port
from tests.temporal_ui import CHROMIUM, CHROMIUM_ARGS, WorkflowPage, capture_workflow_page
from tests.test_devstack import readme_ten_lines

pytestmark = [pytest.mark.temporal, pytest.mark.prometheus]
CLI = [sys.executable, "-c", "from canaryflow.cli import main; main()"]


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes whose arguments, environment or working directory mention ``text``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            blob = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
            state = (proc / "stat").read_text().split(") ", 1)[1][:1]
            blob += os.readlink(proc / "cwd").encode()
        except OSError:
            continue
        if text.encode() in blob and state != "Z":
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{proc.name}: {cmdline}")
    return found


@dataclass
class Demo:
    """The background demo; ``at_exit`` is what still ran the moment it returned (taken by a watcher)."""

    dir: Path
    process: subprocess.Popen[bytes]
    watcher: threading.Thread
    at_exit: list[str] = field(default_factory=list)

    def wait(self, timeout: float) -> int:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.terminate()  # the demo stops what it started on SIGTERM
            self.process.wait(120)
            raise
        self.watcher.join(30)
        return code


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """``canaryflow demo --quick`` started in the background on free ports (stopped if still running)."""
    root = tmp_path_factory.mktemp("demo")
    ports = {name: free_port() for name in ("temporal", "ui", "prometheus", "gateway", "sim")}
    args = ["--quick", "--dir", str(root)]
    for name, port in ports.items():
        args += [f"--{name}-port", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CANARYFLOW_", "TEMPORAL_"))}
    with open(root / "demo.out", "wb") as log:
        process = subprocess.Popen([*CLI, "demo", *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=root)
    at_exit: list[str] = []

    def watch() -> None:
        process.wait()
        at_exit.extend(_processes_mentioning(str(root)))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    running = Demo(root, process, watcher, at_exit)
    yield running
    if process.poll() is None:
        process.terminate()
        process.wait(120)


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
    try:
        done = subprocess.run([temporal_binary(), "workflow", "query", "--workflow-id", "rollout-support-bot",
                               "--name", "status", "--output", "json"], env=env, capture_output=True,
                              text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:  # a loaded machine: ask again (the caller's wait is bounded)
        return None
    return dict(json.loads(done.stdout)["queryResult"][0]) if done.returncode == 0 else None


def _wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g}s"
        time.sleep(1.0)


def _the_ui_shows(ui_url: str, tmp_path: Path) -> WorkflowPage:
    """The rollout's page in the Temporal UI, saved to ``CANARYFLOW_SCREENSHOT`` (``make screenshot``) or a
    temporary file."""
    from playwright.sync_api import sync_playwright

    shot = Path(os.environ.get("CANARYFLOW_SCREENSHOT") or tmp_path / "temporal-ui.png").resolve()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            return capture_workflow_page(browser, ui_url, "rollout-support-bot", shot, "awaiting_approval")
        finally:
            browser.close()


@pytest.mark.timeout(600)
@pytest.mark.browser
def test_the_readme_ten_lines_run_as_written(tmp_path: Path, demo: Demo) -> None:
    """A fresh checkout, a shell without the venv on PATH, the README's block typed in order (the --watch line
    in a second terminal, the approval when the status asks for it); every command exits 0; the stack serves,
    scrapes and loads its rules; ``kill %2 %1`` stops everything and the checkout stays clean.

    (``demo`` only starts the demo in the background meanwhile.)"""
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
                shown = _the_ui_shows(f"http://127.0.0.1:{ports.ui}", tmp_path)
            codes[command] = term.run(command, timeout=240)
        assert all(code == 0 for code in codes.values()), (codes, term.text()[-4000:])

        # The Temporal UI shows what the README's picture shows: the summary given at the start, the stage
        # and what it waits for (``make screenshot`` saves this page as docs/temporal-ui.png).
        summary = re.search(r"--static-summary '([^']+)'", "\n".join(commands))
        assert summary is not None and summary.group(1) in shown.summary, shown
        assert "awaiting_approval" in shown.details and "a human approval of stage" in shown.details, shown

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
        # a scrape that times out on a loaded machine marks the gateway's series stale until the next one
        query = {"query": 'sum(canaryflow_requests_total{config="support-bot"})'}
        _wait_for("a scrape of the gateway's requests", lambda: bool(
            httpx.get(f"{prom}/query", timeout=10, params=query).json()["data"]["result"]), timeout=60)
        served = httpx.get(f"{prom}/query", timeout=10, params=query).json()
        logs = repo / ".canaryflow" / "logs"
        why = {name: (logs / name).read_text(errors="replace")[-1500:] for name in ("gateway.log", "sim.log")
               if (logs / name).exists()}
        assert served["data"]["result"], (served, why, term.text()[-2000:])
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


@pytest.mark.timeout(420)
def test_quick_demo_tells_the_story_and_cleans_up(demo: Demo) -> None:
    code = demo.wait(400)
    out = (demo.dir / "demo.out").read_text()
    tmp_path = demo.dir
    assert code == 0, out[-4000:]
    # the story, in order, with the commands behind it
    steps = ["$ canaryflow config push", "$ canaryflow loadgen support-bot",
             "$ temporal workflow start --task-queue canaryflow --type RolloutWorkflow",
             "$ temporal workflow signal --workflow-id rollout-support-bot --name approve",
             "v2 reached full and is now the stable version",
             "rolled back by itself; the failed gate's evidence:",
             "pair-judge.v1.yaml",
             "rolled back in shadow on its win rate; the workflow's failure message:",
             "$ canaryflow compare support-bot", "Temporal UI", "Stopped everything the demo started."]
    positions = [out.find(s) for s in steps]
    assert all(p >= 0 for p in positions), [s for s, p in zip(steps, positions, strict=True) if p < 0]
    assert positions == sorted(positions)
    evidence = out[out.index("the failed gate's evidence:"):]
    assert "verdict FAIL" in evidence and " FAIL: candidate " in evidence, evidence[:2000]
    quality = out[out.index("rolled back in shadow on its win rate"):out.index("5. Compare the versions")]
    assert "pref_win_rate FAIL" in quality and "worst: cf1_" in quality, quality[:2000]
    assert "stable v2" in out  # the comparison shows v2 serving as stable after the promotion
    assert demo.at_exit == []  # nothing of the demo's folder ran the moment it returned
    assert _processes_mentioning(str(tmp_path)) == []
