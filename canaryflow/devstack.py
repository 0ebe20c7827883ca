"""The local stack of ``canaryflow dev``: Temporal dev server + UI, Prometheus, simulator, gateway, worker.

Each piece is a subprocess in its own process group with its log under ``<dir>/logs/``; :meth:`DevStack.start`
waits until each one is ready (port, ``/-/ready``, ``/healthz``, a worker polling the task queue) before the
next, and :meth:`DevStack.stop` ends them in reverse order (SIGTERM to the group, SIGKILL after a grace
period), so nothing outlives the stack. The gateway talks to the simulator through the providers' own
``OPENAI_BASE_URL``/``ANTHROPIC_BASE_URL`` with dummy keys: no API key is needed.

Once everything is up, ``<dir>/env`` is written for a shell to source (``. .canaryflow/env``): the venv's
``bin`` on ``PATH`` (``canaryflow``, ``temporal``), the stack's addresses for canaryflow and the Temporal CLI,
and the simulator as the provider, so commands typed by hand reach what the stack's own children reach. It
is removed when the stack stops; ``canaryflow dev --wait`` waits for it (``make dev-wait``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
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
from canaryflow.settings import Settings, get_settings
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

    @classmethod
    def from_settings(cls, settings: Settings) -> Ports:
        """The ports the ``CANARYFLOW_*`` settings name (so ``canaryflow dev`` serves where commands look)."""
        temporal = int(settings.temporal_address.rsplit(":", 1)[1])
        prometheus = httpx.URL(settings.prometheus_url).port or 9090
        return cls(temporal, settings.temporal_ui_port, prometheus, settings.gateway_port, settings.sim_port)


#: What to type once ``make dev`` is up: the README's "Ten lines" after its first two, without their
#: comments (a test keeps the two equal).
NEXT_STEPS = (
    "canaryflow segment push examples/segments.yaml --by alice",
    "canaryflow config push examples/support-bot.v1.yaml examples/support-bot.v2.yaml",
    "canaryflow loadgen support-bot --rate 20 --duration 900 --var product=Acme &",
    "temporal workflow start --task-queue canaryflow --type RolloutWorkflow --workflow-id rollout-support-bot \\",  # noqa: E501
    "  --static-summary 'support-bot v1 → v2, plan fast, by alice' \\",
    """  --input '{"config_key": "support-bot", "candidate_version": 2, "plan": "fast", "requested_by": "alice"}'""",  # noqa: E501
    "canaryflow rollout status support-bot --watch",
    """temporal workflow signal --workflow-id rollout-support-bot --name approve --input '{"by": "alice"}'""",
    "temporal workflow query --workflow-id rollout-support-bot --name status --output json \\",
    "  | jq '.queryResult[0] | {state, stage: .plan.stages[.stage_index].name, waiting_for, outcome}'",
)


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

    @property
    def env_file(self) -> Path:
        """The file a shell sources to reach this stack (written once it is up, removed when it stops)."""
        return self.root / "env"

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

    def write_env_file(self) -> Path:
        """Write :attr:`env_file`: ``export`` lines for PATH, the stack's addresses and the providers."""
        env = self.env()
        db_url = env["CANARYFLOW_DB_URL"]
        if db_url.startswith("sqlite:///") and not db_url.startswith("sqlite:////"):  # relative: pin it
            db_url = "sqlite:///" + str(Path(db_url.removeprefix("sqlite:///")).resolve())
        values = {
            "PATH": f"{Path(sys.executable).parent.absolute()}:$PATH",
            "CANARYFLOW_DB_URL": db_url,
            **{k: env[k] for k in ("CANARYFLOW_TEMPORAL_ADDRESS", "CANARYFLOW_TEMPORAL_NAMESPACE",
                                   "CANARYFLOW_TASK_QUEUE", "CANARYFLOW_PROMETHEUS_URL",
                                   "CANARYFLOW_GATEWAY_HOST", "CANARYFLOW_GATEWAY_PORT",
                                   "CANARYFLOW_SIM_PORT")},
            "CANARYFLOW_TEMPORAL_UI_PORT": str(self.ports.ui),
            "TEMPORAL_ADDRESS": env["CANARYFLOW_TEMPORAL_ADDRESS"],
            "TEMPORAL_NAMESPACE": env["CANARYFLOW_TEMPORAL_NAMESPACE"],
            **{k: env[k] for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL",
                                   "ANTHROPIC_API_KEY")},
            "CANARYFLOW_DEV_PID": str(os.getpid()),
        }
        lines = [f"# The canaryflow dev stack's environment (pid {os.getpid()}): . {self.env_file}"]
        for key, value in values.items():
            quoted = f'"{value}"' if key == "PATH" else shlex.quote(value)
            lines.append(f"export {key}={quoted}")
        tmp = self.env_file.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self.env_file)
        return self.env_file

    def live_env_file(self) -> Path | None:
        """:attr:`env_file` if the stack that wrote it still runs; None if absent or left by a dead one."""
        with contextlib.suppress(OSError, ValueError):
            text = self.env_file.read_text()
            pid = int(text.split("export CANARYFLOW_DEV_PID=", 1)[1].split()[0].strip("'"))
            os.kill(pid, 0)
            return self.env_file
        return None

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
        with contextlib.suppress(FileNotFoundError):
            self.env_file.unlink()  # left by a stack that was killed: not this one's
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
        with contextlib.suppress(FileNotFoundError):
            self.env_file.unlink()
        for svc in reversed(self.services):
            stop_group(svc.process, grace)
        self.services.clear()


def stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the process group led by ``proc``; return once every member is gone (SIGKILL after ``grace``).

    Waiting for the leader alone is not enough: a child it started may still be exiting when the leader has.
    """
    if proc.poll() is None or _group_alive(proc.pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        _wait_group(proc, grace)
    if _group_alive(proc.pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        _wait_group(proc, 5.0)


def _wait_group(proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout)
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is in process group ``pgid``."""
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


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


__all__ = [
    "NEXT_STEPS", "PROMETHEUS_HINT", "DevStack", "Ports", "Service", "canaryflow_command", "stop_group",
]
