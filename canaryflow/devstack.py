"""The local stack of ``canaryflow dev``: Temporal dev server + UI, Prometheus, simulator, gateway, worker.

Each piece is a subprocess in its own process group with its log under ``<dir>/logs/``; :meth:`DevStack.start`
waits until each one is ready (port, ``/-/ready``, ``/healthz``, a worker polling the task queue) before the
next, and :meth:`DevStack.stop` ends them in reverse order (SIGTERM to the group, SIGKILL after a grace
period), so nothing outlives the stack. The gateway talks to the simulator through the providers' own
``OPENAI_BASE_URL``/``ANTHROPIC_BASE_URL`` with dummy keys: no API key is needed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from canaryflow.errors import CanaryflowError
from canaryflow.settings import get_settings
from canaryflow.temporal.devserver import start_dev_server, temporal_binary

REPO_RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "rules"
PROMETHEUS_HINT = ("Prometheus is not installed: run 'sudo apt-get install -y prometheus' "
                   "(Debian/Ubuntu; 'make demo' does it when run as root), "
                   "or put a 'prometheus' binary on PATH")


@dataclass
class Ports:
    """The stack's ports (defaults: DESIGN.md's)."""

    temporal: int = 7233
    ui: int = 8233
    prometheus: int = 9090
    gateway: int = 8080
    sim: int = 8091


@dataclass
class Service:
    """One running piece of the stack."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path


def canaryflow_command(*args: str) -> list[str]:
    """A command line running ``canaryflow ARGS`` with this interpreter (works without the console script)."""
    return [sys.executable, "-c", "from canaryflow.cli import main; main()", *args]


@dataclass
class DevStack:
    """The local stack under ``root`` (default ``.canaryflow/``)."""

    root: Path = field(default_factory=lambda: Path(".canaryflow"))
    ports: Ports = field(default_factory=Ports)
    scrape_interval: str = "1s"
    with_worker: bool = True
    echo: Callable[[str], None] = print
    services: list[Service] = field(default_factory=list)

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def env(self) -> dict[str, str]:
        """The environment of every child (and of commands run against the stack)."""
        settings = get_settings()
        env = dict(os.environ)
        env.update({
            "CANARYFLOW_DB_URL": settings.db_url,
            "CANARYFLOW_TEMPORAL_ADDRESS": f"127.0.0.1:{self.ports.temporal}",
            "CANARYFLOW_TEMPORAL_NAMESPACE": settings.temporal_namespace,
            "CANARYFLOW_TASK_QUEUE": settings.task_queue,
            "CANARYFLOW_PROMETHEUS_URL": f"http://127.0.0.1:{self.ports.prometheus}",
            "CANARYFLOW_GATEWAY_HOST": "127.0.0.1",
            "CANARYFLOW_GATEWAY_PORT": str(self.ports.gateway),
            "CANARYFLOW_SIM_PORT": str(self.ports.sim),
            "OPENAI_BASE_URL": f"http://127.0.0.1:{self.ports.sim}/v1",
            "OPENAI_API_KEY": "sim-key",
            "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{self.ports.sim}",
            "ANTHROPIC_API_KEY": "sim-key",
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def urls(self) -> dict[str, str]:
        """What a user opens or points an app at."""
        return {
            "Temporal UI": f"http://127.0.0.1:{self.ports.ui}",
            "Temporal": f"127.0.0.1:{self.ports.temporal}",
            "Prometheus": f"http://127.0.0.1:{self.ports.prometheus}",
            "Gateway (OpenAI/Anthropic API)": f"http://127.0.0.1:{self.ports.gateway}/v1",
            "Simulator": f"http://127.0.0.1:{self.ports.sim}",
        }

    # ------------------------------------------------------------------------------------------- start
    def start(self) -> None:
        """Start every piece and wait for it; on any failure stop what started and raise CanaryflowError."""
        prometheus = shutil.which("prometheus")
        if prometheus is None:
            raise CanaryflowError(PROMETHEUS_HINT)
        taken = [f"{name} {port}" for name, port in vars(self.ports).items() if _port_open(port)]
        if taken:
            raise CanaryflowError(f"port(s) already in use: {', '.join(taken)} — is another stack (or a "
                                  "system Prometheus/Temporal) running? Stop it or pick other ports (--help)")
        self.logs.mkdir(parents=True, exist_ok=True)
        try:
            self._start_temporal()
            self._start_prometheus(prometheus)
            sim = self._spawn("sim", canaryflow_command("sim"))
            _wait(lambda: _http_ok(f"http://127.0.0.1:{self.ports.sim}/v1/models")
                  or _port_open(self.ports.sim), sim, "the simulator")
            # The local stack logs every request (production samples 10 %): `canaryflow feedback` shows more.
            gw = self._spawn("gateway", canaryflow_command("gateway", "--traffic-rate", "1.0"))
            _wait(lambda: _http_ok(f"http://127.0.0.1:{self.ports.gateway}/healthz"), gw, "the gateway")
            if self.with_worker:
                worker = self._spawn("worker", canaryflow_command("worker"))
                _wait(self._worker_polling, worker, "the worker", timeout=90)
        except BaseException:
            self.stop()
            raise

    def _start_temporal(self) -> None:
        self.echo(f"starting Temporal dev server on :{self.ports.temporal} (UI :{self.ports.ui})")
        log = self.logs / "temporal.log"
        server = start_dev_server(self.ports.temporal, self.ports.ui, self.root / "temporal.db", log_file=log)
        svc = Service("temporal", server.process, log)
        self.services.append(svc)
        _wait(lambda: _http_ok(f"http://127.0.0.1:{self.ports.ui}/"), svc, "the Temporal UI")

    def _start_prometheus(self, exe: str) -> None:
        config = self.write_prometheus_config()
        svc = self._spawn("prometheus", [
            exe, f"--config.file={config}", f"--storage.tsdb.path={self.root / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{self.ports.prometheus}", "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=7d"])
        _wait(lambda: _http_ok(f"http://127.0.0.1:{self.ports.prometheus}/-/ready"), svc, "Prometheus")

    def write_prometheus_config(self) -> Path:
        """Write ``<root>/prometheus.yml``: the gateway scraped every ``scrape_interval``, with the rules."""
        rules = sorted(str(p) for p in REPO_RULES.glob("*.yml")) if REPO_RULES.is_dir() else []
        config = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "rule_files": rules,
            "scrape_configs": [
                {"job_name": "canaryflow-gateway",
                 "static_configs": [{"targets": [f"127.0.0.1:{self.ports.gateway}"]}]},
                {"job_name": "prometheus",
                 "static_configs": [{"targets": [f"127.0.0.1:{self.ports.prometheus}"]}]},
            ],
        }
        path = self.root / "prometheus.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        return path

    def _spawn(self, name: str, cmd: list[str]) -> Service:
        self.echo(f"starting {name}: logs in {self.logs / (name + '.log')}")
        log = self.logs / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=self.env(), start_new_session=True)
        svc = Service(name, proc, log)
        self.services.append(svc)
        return svc

    def _worker_polling(self) -> bool:
        """True once a worker polls the task queue (asked through the stock Temporal CLI)."""
        env = self.env()
        cmd = [temporal_binary(), "task-queue", "describe", "--address", env["CANARYFLOW_TEMPORAL_ADDRESS"],
               "--namespace", env["CANARYFLOW_TEMPORAL_NAMESPACE"],
               "--task-queue", env["CANARYFLOW_TASK_QUEUE"], "--output", "json"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=15, check=False)
        return out.returncode == 0 and '"identity"' in out.stdout

    # -------------------------------------------------------------------------------------------- stop
    def dead(self) -> list[Service]:
        """Services whose process has exited."""
        return [s for s in self.services if s.process.poll() is not None]

    def stop(self, grace: float = 10.0) -> None:
        """Stop every piece, newest first: SIGTERM to its process group, SIGKILL after ``grace`` seconds."""
        for svc in reversed(self.services):
            _stop_group(svc.process, grace)
        self.services.clear()


def _stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    # whatever is left in the group (children of the child) goes too
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def _http_ok(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url, timeout=1.0).status_code < 400
    return False


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.3):
        return True
    return False


def _wait(ready: Callable[[], bool], svc: Service, what: str, *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if svc.process.poll() is not None:
            raise CanaryflowError(f"{what} exited with code {svc.process.returncode}{tail(svc.log)}")
        if ready():
            return
        time.sleep(0.3)
    raise CanaryflowError(f"{what} was not ready within {timeout:g}s{tail(svc.log)}")


def tail(log: Path, n: int = 5) -> str:
    """``; see LOG; last lines: ...`` for an error message."""
    if not log.exists():
        return ""
    lines = log.read_text(errors="replace").strip().splitlines()[-n:]
    return f"; see {log}" + ("; last lines:\n  " + "\n  ".join(lines) if lines else "")


__all__ = ["PROMETHEUS_HINT", "DevStack", "Ports", "Service", "canaryflow_command"]
