"""`canaryflow dev`'s pieces: what it says without Prometheus, the Prometheus config it writes, and the lines
it prints (the README's "Ten lines", which ``tests/test_demo.py`` runs as written on a real stack)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from canaryflow.devstack import NEXT_STEPS, PROMETHEUS_HINT, DevStack, Ports
from canaryflow.errors import CanaryflowError

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.prometheus]


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
