"""The repository stands on its own: a fresh checkout in a temporary folder, with nothing beside it, runs the
suite's fast part (Compose validation, docs links, packaging, pure domain tests) and stays clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.checkout import checkout, clean_env

FAST_PART = ["tests/test_compose.py", "tests/test_repository.py", "tests/test_rollout_words.py",
             "tests/test_rollout_outcome.py", "tests/test_devstack.py"]


@pytest.mark.timeout(240)
def test_a_fresh_checkout_runs_the_fast_part_alone(tmp_path: Path) -> None:
    repo = checkout(tmp_path / "alone" / "canaryflow")
    assert sorted(p.name for p in repo.parent.iterdir()) == ["canaryflow"]  # no shared/ beside it
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *FAST_PART],
                          cwd=repo, env=clean_env(repo), capture_output=True, text=True, timeout=220,
                          check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo,
                           capture_output=True, text=True, check=True).stdout
    assert dirty == "", dirty
