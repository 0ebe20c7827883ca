"""`canaryflow demo --quick` tells the whole story on its own local stack, exits 0 and leaves nothing running.

The real thing, end to end: Temporal dev server and UI, Prometheus, simulator, gateway and worker as
subprocesses on free ports; pushes, load, a good rollout approved by signal to full, a bad one rolled back by
its gates; then every process of the stack is gone (none keeps the demo's directory in its environment).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import free_port

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


@pytest.mark.timeout(420)
def test_quick_demo_tells_the_story_and_cleans_up(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("temporal", "ui", "prometheus", "gateway", "sim")}
    args = ["--quick", "--dir", str(tmp_path)]
    for name, port in ports.items():
        args += [f"--{name}-port", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CANARYFLOW_", "TEMPORAL_"))}
    with open(tmp_path / "demo.out", "wb") as log:
        demo = subprocess.Popen([*CLI, "demo", *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                cwd=tmp_path)
    try:
        code = demo.wait(400)
    except subprocess.TimeoutExpired:
        demo.terminate()  # the demo stops what it started on SIGTERM
        demo.wait(120)
        raise
    out = (tmp_path / "demo.out").read_text()
    assert code == 0, out[-4000:]
    # the story, in order, with the commands behind it
    steps = ["$ canaryflow config push", "$ canaryflow loadgen support-bot",
             "$ temporal workflow start --task-queue canaryflow --type RolloutWorkflow",
             "$ temporal workflow signal --workflow-id rollout-support-bot --name approve",
             "v2 reached full and is now the stable version",
             "rolled back by itself; the failed gate's evidence:",
             "$ canaryflow compare support-bot", "Temporal UI", "Stopped everything the demo started."]
    positions = [out.find(s) for s in steps]
    assert all(p >= 0 for p in positions), [s for s, p in zip(steps, positions, strict=True) if p < 0]
    assert positions == sorted(positions)
    evidence = out[out.index("the failed gate's evidence:"):]
    assert "verdict FAIL" in evidence and " FAIL: candidate " in evidence
    assert "stable v2" in out  # the comparison shows v2 serving as stable after the promotion
    assert _processes_mentioning(str(tmp_path)) == []
