"""Shared fixtures: real PostgreSQL and Prometheus servers, and the guard against temporalio's exit crash."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.servers import Postgres, Prometheus


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """temporalio's Rust core can crash the interpreter at exit after everything passed (sdk-python#300).

    Flush and leave with pytest's own exit status before the interpreter tears the core down.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    status = getattr(config, "_cf_exitstatus", None)
    if status is not None:
        os._exit(int(status))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config._cf_exitstatus = exitstatus  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    server = Postgres()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: Postgres) -> str:
    """A new empty PostgreSQL database for one test."""
    return postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def prometheus() -> Iterator[Prometheus]:
    server = Prometheus()
    server.start()
    try:
        yield server
    finally:
        server.stop()
