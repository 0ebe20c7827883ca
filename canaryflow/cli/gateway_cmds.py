"""``canaryflow gateway`` (the OpenAI/Anthropic-compatible gateway) and ``canaryflow loadgen``."""

from __future__ import annotations

import asyncio

import typer

from canaryflow.cli import app
from canaryflow.errors import ValidationFailed


@app.command("gateway")
def gateway(
    host: str | None = typer.Option(None, help="Interface (default: CANARYFLOW_GATEWAY_HOST or 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default: CANARYFLOW_GATEWAY_PORT or 8080)."),
    traffic_rate: float = typer.Option(0.1, min=0.0, max=1.0,
                                       help="Share of requests written to the traffic log (0: off)."),
    retention: int = typer.Option(100_000, min=1, help="Traffic-log rows kept per config."),
    shadow_concurrency: int = typer.Option(4, min=1, help="Shadow mirror calls in flight at most."),
    shadow_queue: int = typer.Option(100, min=1, help="Shadow mirrors waiting at most (more are dropped)."),
    timeout: float = typer.Option(60.0, min=0.1, help="Seconds per provider attempt."),
) -> None:
    """Serve /v1/chat/completions (OpenAI) and /v1/messages (Anthropic) where model = the config key."""
    from canaryflow.gateway.server import serve
    from canaryflow.settings import get_settings

    settings = get_settings()
    listen_host = host or settings.gateway_host
    listen_port = port or settings.gateway_port
    typer.echo(f"canaryflow gateway on http://{listen_host}:{listen_port} (registry {settings.db_url}): "
               f"OPENAI_BASE_URL=http://{listen_host}:{listen_port}/v1", err=True)
    serve(listen_host, listen_port, traffic_rate=traffic_rate, retention=retention,
          shadow_concurrency=shadow_concurrency, shadow_queue=shadow_queue, timeout=timeout)


@app.command("loadgen")
def loadgen(
    config: str = typer.Argument(..., help="The config key to call (sent as the model)."),
    url: str | None = typer.Option(None, help="Gateway URL (default: http://<gateway host>:<gateway port>)."),
    rate: float = typer.Option(10.0, min=0.01, help="Requests per second."),
    duration: float = typer.Option(10.0, min=0.1, help="Seconds of load."),
    concurrency: int = typer.Option(16, min=1, help="Requests in flight at most."),
    users: int = typer.Option(200, min=1, help="Synthetic users (~10% internal, ~20% beta, rest regular)."),
    seed: int = typer.Option(7, help="Seed of users, questions and feedback draws."),
    feedback_share: float = typer.Option(1.0, min=0.0, max=1.0, help="Share of answers that get feedback."),
    var: list[str] = typer.Option([], "--var", help="Template variable NAME=VALUE (repeatable)."),
) -> None:
    """Send the simulator's known questions through the gateway as synthetic users, with feedback."""
    from canaryflow.settings import get_settings
    from canaryflow.sim.loadgen import run_loadgen

    variables = {}
    for item in var:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValidationFailed(f"--var {item!r}: write NAME=VALUE", source="--var")
        variables[name] = value
    settings = get_settings()
    base = url or f"http://{settings.gateway_host}:{settings.gateway_port}"
    try:
        summary = asyncio.run(run_loadgen(base, config, rate=rate, duration=duration, concurrency=concurrency,
                                          users=users, seed=seed, feedback_share=feedback_share,
                                          variables=variables))
    except OSError as exc:
        raise ValidationFailed(f"cannot reach the gateway at {base}: {exc}", source="--url") from exc
    for line in summary.lines():
        typer.echo(line)
