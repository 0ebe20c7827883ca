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
    temporal_port: int | None = typer.Option(
        None, help="Temporal port (default: CANARYFLOW_TEMPORAL_ADDRESS's, 7233)."),
    ui_port: int | None = typer.Option(
        None, help="Temporal UI port (default: CANARYFLOW_TEMPORAL_UI_PORT, 8233)."),
    prometheus_port: int | None = typer.Option(
        None, help="Prometheus port (default: CANARYFLOW_PROMETHEUS_URL's, 9090)."),
    gateway_port: int | None = typer.Option(
        None, help="Gateway port (default: CANARYFLOW_GATEWAY_PORT, 8080)."),
    sim_port: int | None = typer.Option(None, help="Simulator port (default: CANARYFLOW_SIM_PORT, 8091)."),
    worker: bool = typer.Option(True, "--worker/--no-worker", help="Run a rollout worker too."),
    wait: bool = typer.Option(False, "--wait", help="Start nothing: wait (up to --timeout) until the "
                              "stack in --dir is up, then print the file to source."),
    timeout: float = typer.Option(180.0, help="With --wait: seconds to wait."),
) -> None:
    """Run the local stack (Temporal dev server + UI, Prometheus, simulator, gateway, worker) until Ctrl-C.

    Once it is up it writes DIR/env: `. .canaryflow/env` puts canaryflow and temporal on PATH and points them
    (and the providers' variables) at the stack.
    """
    from canaryflow.devstack import NEXT_STEPS, DevStack, Ports
    from canaryflow.settings import get_settings

    defaults = Ports.from_settings(get_settings())
    ports = Ports(temporal_port or defaults.temporal, ui_port or defaults.ui,
                  prometheus_port or defaults.prometheus, gateway_port or defaults.gateway,
                  sim_port or defaults.sim)
    stack = DevStack(root=state_dir, ports=ports, with_worker=worker,
                     echo=lambda line: typer.echo(line, err=True))
    if wait:
        deadline = time.monotonic() + timeout
        while (env_file := stack.live_env_file()) is None:
            if time.monotonic() > deadline:
                raise CanaryflowError(f"no dev stack came up in {state_dir} within {timeout:g}s: is "
                                      f"'make dev' running? Its logs are in {stack.logs}/")
            time.sleep(0.5)
        typer.echo(env_file)
        return
    _stop_on_sigterm()
    try:
        stack.start()
        env_file = stack.write_env_file()
        typer.echo("\ncanaryflow dev stack is up:")
        for name, url in stack.urls().items():
            typer.echo(f"  {name:<32} {url}")
        typer.echo(f"  {'Logs':<32} {stack.logs}/")
        typer.echo(f"In a shell, from the repository: '. {env_file}' puts canaryflow and temporal on PATH "
                   "and points them at this stack; then, as in the README's ten lines:")
        for line in NEXT_STEPS:
            typer.echo(f"  {line}")
        typer.echo("Ctrl-C (or SIGTERM: 'kill %1' when started with 'make dev &') stops everything.")
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
    typer.echo(f"{key}, last {window}, by {by} (Prometheus {url}: increase() over the window; feedback "
               "counted once per request, as 'canaryflow feedback --window' counts it)")
    typer.echo(format_table(rows, group))


@app.command("feedback")
def feedback_cmd(
    key: str = typer.Argument(..., help="Config key."),
    version: int | None = typer.Option(None, help="Only this version."),
    window: str = typer.Option("1h", help="How far back (5m, 1h, 1d): the same window as 'compare'."),
    negative: bool = typer.Option(False, "--negative", help="List only negative feedback."),
    limit: int = typer.Option(10, min=1, help="Feedback items listed per version."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Feedback over a window by version: every feedback counted, the newest listed with the request and
    answer excerpts, and the common failure patterns of the sampled traffic log."""
    from canaryflow.domain.plan import parse_duration
    from canaryflow.feedback_report import feedback_report, format_report
    from canaryflow.registry import Registry

    try:
        seconds = parse_duration(window).total_seconds()
    except ValueError as exc:
        raise ValidationFailed(f"--window {window!r}: {exc}", source="window") from None
    reports = feedback_report(Registry(), key, version=version, negative_only=negative, limit=limit,
                              window_s=seconds)
    if as_json:
        out: list[dict[str, Any]] = []
        for rep in reports:
            out.append({"version": rep.version, "positive": rep.positive, "negative": rep.negative,
                        "logged_requests": rep.logged_requests, "patterns": dict(rep.patterns.most_common()),
                        "implicit": [vars(e) for e in rep.implicit],
                        "items": [vars(i) for i in rep.items],
                        "quality": [vars(q) for q in rep.quality],
                        "lowest_scored": [vars(i) for i in rep.lowest],
                        "lost_to_stable": [vars(i) for i in rep.lost],
                        "most_edited": [vars(i) for i in rep.most_edited]})
        print_json({"config": key, "window": window, "counted": "every feedback in the window",
                    "patterns_from": "the sampled traffic log", "versions": out})
        return
    typer.echo(format_report(reports, key, window))
