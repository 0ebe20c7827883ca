"""`canaryflow dev`, `demo`, `compare`, `feedback`: the local stack, the story, the operator's views."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any, cast

import typer

from canaryflow.cli import app
from canaryflow.cli._common import print_json
from canaryflow.errors import CanaryflowError, ValidationFailed


def _stop_on_sigterm() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@app.command("dev")
def dev(
    state_dir: Path = typer.Option(Path(".canaryflow"), "--dir", help="Logs, databases, generated config."),
    temporal_port: int = typer.Option(7233, help="Temporal frontend port."),
    ui_port: int = typer.Option(8233, help="Temporal UI port."),
    prometheus_port: int = typer.Option(9090, help="Prometheus port."),
    gateway_port: int = typer.Option(8080, help="Gateway port."),
    sim_port: int = typer.Option(8091, help="Provider simulator port."),
    worker: bool = typer.Option(True, "--worker/--no-worker", help="Run a rollout worker too."),
) -> None:
    """Run the local stack (Temporal dev server + UI, Prometheus, simulator, gateway, worker) until Ctrl-C."""
    from canaryflow.devstack import DevStack, Ports

    ports = Ports(temporal_port, ui_port, prometheus_port, gateway_port, sim_port)
    stack = DevStack(root=state_dir, ports=ports, with_worker=worker,
                     echo=lambda line: typer.echo(line, err=True))
    _stop_on_sigterm()
    try:
        stack.start()
        typer.echo("\ncanaryflow dev stack is up:")
        for name, url in stack.urls().items():
            typer.echo(f"  {name:<32} {url}")
        typer.echo(f"  {'Logs':<32} {stack.logs}/")
        typer.echo("In another terminal, from the repository:\n"
                   "  canaryflow segment push examples/segments.yaml\n"
                   "  canaryflow config push deploy/demo/support-bot.v1.yaml "
                   "deploy/demo/support-bot.v2.yaml\n"
                   "  canaryflow loadgen support-bot --duration 600 &\n"
                   "  canaryflow rollout start support-bot 2 --plan fast\n"
                   "  canaryflow rollout status support-bot --watch")
        typer.echo("Ctrl-C stops everything.")
        while True:
            dead = stack.dead()
            if dead:
                names = ", ".join(f"{s.name} (exit {s.process.returncode}, log {s.log})" for s in dead)
                raise CanaryflowError(f"stopped because a piece of the stack exited: {names}")
            time.sleep(1)
    except KeyboardInterrupt:
        typer.echo("\nstopping the stack…", err=True)
    finally:
        stack.stop()
        typer.echo("stopped.", err=True)


@app.command("demo")
def demo(
    quick: bool = typer.Option(False, "--quick", help="Shorter story (CI): less traffic, shorter waits."),
    state_dir: Path = typer.Option(Path(".canaryflow"), "--dir", help="Logs, databases, generated config."),
    keep: bool = typer.Option(False, "--keep", help="Leave the stack running at the end (until Ctrl-C)."),
    temporal_port: int = typer.Option(7233, help="Temporal frontend port."),
    ui_port: int = typer.Option(8233, help="Temporal UI port."),
    prometheus_port: int = typer.Option(9090, help="Prometheus port."),
    gateway_port: int = typer.Option(8080, help="Gateway port."),
    sim_port: int = typer.Option(8091, help="Provider simulator port."),
) -> None:
    """The whole story on a local stack: push configs, roll out a good candidate, see a bad one roll back."""
    from canaryflow.demo import run_demo
    from canaryflow.devstack import Ports

    _stop_on_sigterm()
    ports = Ports(temporal_port, ui_port, prometheus_port, gateway_port, sim_port)
    run_demo(state_dir=state_dir, quick=quick, keep=keep, ports=ports)


@app.command("compare")
def compare_cmd(
    key: str = typer.Argument(..., help="Config key."),
    window: str = typer.Option("1h", help="How far back (a Prometheus duration: 5m, 1h, 1d)."),
    by: str = typer.Option("version", help="Group by version, variation or segment."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Compare a config's versions side by side (Prometheus): traffic, errors, latency, tokens, cost."""
    from canaryflow.metrics.compare import By, compare, format_table, queries
    from canaryflow.settings import get_settings

    if by not in ("version", "variation", "segment"):
        raise ValidationFailed(f"--by {by!r}: choose version, variation or segment", source="by")
    group = cast(By, by)
    url = get_settings().prometheus_url
    rows = compare(url, key, window=window, by=group)
    if as_json:
        print_json({"config": key, "window": window, "by": by, "rows": [r.as_dict() for r in rows],
                    "queries": queries(key, window, group)})
        return
    if not rows:
        raise CanaryflowError(f"no traffic for {key!r} in the last {window} at {url}")
    typer.echo(f"{key}, last {window}, by {by} (Prometheus {url})")
    typer.echo(format_table(rows, group))


@app.command("feedback")
def feedback_cmd(
    key: str = typer.Argument(..., help="Config key."),
    version: int | None = typer.Option(None, help="Only this version."),
    negative: bool = typer.Option(False, "--negative", help="List only negative feedback."),
    limit: int = typer.Option(10, min=1, help="Feedback items listed per version."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Recent feedback with the request and answer excerpts, by version, and the common failure patterns."""
    from canaryflow.feedback_report import feedback_report, format_report
    from canaryflow.registry import Registry

    reports = feedback_report(Registry(), key, version=version, negative_only=negative, limit=limit)
    if as_json:
        out: list[dict[str, Any]] = []
        for rep in reports:
            out.append({"version": rep.version, "positive": rep.positive, "negative": rep.negative,
                        "logged_requests": rep.logged_requests, "patterns": dict(rep.patterns.most_common()),
                        "items": [vars(i) for i in rep.items]})
        print_json({"config": key, "versions": out})
        return
    typer.echo(format_report(reports, key))
