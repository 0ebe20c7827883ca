"""``canaryflow sim``: the OpenAI/Anthropic-compatible provider simulator (see :mod:`canaryflow.sim`)."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml
from pydantic import ValidationError

from canaryflow.cli import app
from canaryflow.errors import ValidationFailed
from canaryflow.sim.profiles import ModelProfile, default_profiles


def _load_profiles(path: Path) -> dict[str, ModelProfile]:
    """Built-in profiles with the file's (model name -> profile fields) merged over them."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValidationFailed(f"cannot read profiles: {exc}", source=str(path)) from exc
    if not isinstance(raw, dict):
        raise ValidationFailed("expected a mapping of model name -> profile fields", source=str(path))
    profiles = default_profiles()
    for model, fields in raw.items():
        try:
            profiles[str(model)] = ModelProfile.model_validate(fields or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValidationFailed(f"{model}.{where}: {first['msg']}", source=str(path)) from exc
    return profiles


@app.command("sim")
def sim(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int | None = typer.Option(None, help="Port (default: CANARYFLOW_SIM_PORT or 8091)."),
    seed: int = typer.Option(0, help="Seed of every random draw: the same seed repeats a run."),
    admin: bool = typer.Option(False, "--admin", help="Serve /admin/profiles and /admin/reset."),
    latency_scale: float = typer.Option(1.0, min=0.0, help="Multiply every simulated latency (0: none)."),
    profiles: Path | None = typer.Option(None, exists=True, dir_okay=False,
                                         help="YAML: model name -> profile fields (merged over built-ins)."),
) -> None:
    """Serve a simulated OpenAI (/v1/chat/completions) and Anthropic (/v1/messages) API."""
    import uvicorn

    from canaryflow.settings import get_settings
    from canaryflow.sim.app import create_app

    typed = _load_profiles(profiles) if profiles else None
    listen_port = port or get_settings().sim_port
    asgi = create_app(seed, admin=admin, latency_scale=latency_scale, profiles=typed)
    base = f"http://{host}:{listen_port}"
    typer.echo(f"canaryflow sim on {base} (seed {seed}, admin {'on' if admin else 'off'}): "
               f"OPENAI_BASE_URL={base}/v1 ANTHROPIC_BASE_URL={base}", err=True)
    uvicorn.run(asgi, host=host, port=listen_port, log_level="warning", access_log=False)
