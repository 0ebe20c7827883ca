"""A fresh checkout of this working tree in a temporary folder, with nothing beside it.

The files git would commit (tracked, plus untracked ones not ignored, as they are now) are copied into
``dest`` and committed there, so a test sees what a fresh clone of the current work sees and can check that
running things leaves ``git status`` clean. ``.venv`` is a symlink to this tree's venv (installed already);
``pyproject.toml`` is dated back so ``make`` sees that venv as up to date instead of reinstalling it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def checkout(dest: Path) -> Path:
    """Copy the working tree into ``dest`` (a new folder) as a one-commit git repository; return ``dest``."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    dest.mkdir(parents=True)
    for name in filter(None, listed):
        src = ROOT / name
        if not src.exists():  # deleted in the working tree, not yet committed
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / name)
    git = ["git", "-c", "user.name=checkout", "-c", "user.email=checkout@localhost",
           "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "checkout"], cwd=dest, check=True)
    (dest / ".venv").symlink_to((ROOT / ".venv").resolve(), target_is_directory=True)
    os.utime(dest / "pyproject.toml", (0, 0))
    return dest


def clean_env(checkout_dir: Path) -> dict[str, str]:
    """The environment of a new user's shell in ``checkout_dir``: no canaryflow, Temporal or provider
    variables, no venv on PATH; ``PYTHONPATH`` at the checkout so its own code is what runs."""
    drop = ("CANARYFLOW_", "TEMPORAL_", "OPENAI_", "ANTHROPIC_", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep)
                                  if ".venv" not in p and p)
    env["PYTHONPATH"] = str(checkout_dir)
    return env
