"""The repository stands on its own: its docs link only to files inside it, the packaging metadata installs
without deprecation warnings, and what the local stack leaves behind is ignored by git."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _local_links(doc: Path) -> list[str]:
    links = LINK.findall(doc.read_text())
    return [t for t in links if not re.match(r"^[a-z]+:", t) and not t.startswith("#")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_link_only_to_files_in_the_repository(doc: Path) -> None:
    for target in _local_links(doc):
        path = (doc.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT), f"{doc.name} links {target}, outside the repository"
        assert path.exists(), f"{doc.name} links {target}, which does not exist"


def test_the_readme_links_the_reference() -> None:
    assert "docs/reference.md" in _local_links(ROOT / "README.md")
    reference = (ROOT / "docs" / "reference.md").read_text()
    for heading in ("## Config file", "## Plans", "### Gates", "## Signals", "## Metrics"):
        assert heading in reference


def test_the_license_is_an_spdx_expression() -> None:
    """``license = {text = ...}`` makes setuptools print a deprecation warning twice per install."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
    build = " ".join(project["build-system"]["requires"])
    assert re.search(r"setuptools>=(\d+)", build) and int(re.search(r"setuptools>=(\d+)", build)[1]) >= 77


@pytest.mark.parametrize("name", ["canaryflow.db", "canaryflow.db-wal", "canaryflow.db-shm",
                                  ".canaryflow/env", ".venv"])
def test_what_the_local_stack_leaves_is_ignored(name: str) -> None:
    done = subprocess.run(["git", "check-ignore", "--no-index", "-q", name], cwd=ROOT, check=False)
    assert done.returncode == 0, f"{name} is not in .gitignore"
