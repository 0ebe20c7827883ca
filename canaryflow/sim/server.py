"""Run an ASGI app (the simulator, or any other) with uvicorn in a background thread.

Handy for tests, benchmarks and the local stack::

    with run_simulator(seed=7, latency_scale=0) as sim:
        client = openai.OpenAI(base_url=sim.openai_base_url, api_key="x")
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from canaryflow.sim.app import create_app
from canaryflow.sim.engine import Simulator


def pick_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ThreadedServer:
    """uvicorn serving ``app`` on ``host:port`` from a daemon thread."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int | None = None):
        self.app = app
        self.host = host
        self.port = port or pick_port(host)
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning", lifespan="off",
                                access_log=False, timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"uvicorn-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        """Start serving; returns once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.host}:{self.port} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self._server.should_exit = True
        self._thread.join(10)


class SimServer(ThreadedServer):
    """The provider simulator in a thread; ``.simulator`` gives its profiles, seed and counters."""

    def __init__(self, simulator: Simulator, *, admin: bool = False, host: str = "127.0.0.1",
                 port: int | None = None):
        self.simulator = simulator
        super().__init__(create_app(simulator=simulator, admin=admin), host, port)

    @property
    def openai_base_url(self) -> str:
        """Base URL for ``openai.OpenAI(base_url=...)`` / ``OPENAI_BASE_URL``."""
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Base URL for ``anthropic.Anthropic(base_url=...)`` / ``ANTHROPIC_BASE_URL``."""
        return self.url


@contextlib.contextmanager
def run_simulator(seed: int = 0, *, latency_scale: float = 0.0, admin: bool = False,
                  port: int | None = None) -> Iterator[SimServer]:
    """A running simulator for the duration of the ``with`` block (latency off by default)."""
    server = SimServer(Simulator(seed=seed, latency_scale=latency_scale), admin=admin, port=port)
    server.start()
    try:
        yield server
    finally:
        server.stop()


__all__ = ["SimServer", "ThreadedServer", "pick_port", "run_simulator"]
