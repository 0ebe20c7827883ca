"""``canaryflow codec-server``: decrypt encrypted rollout payloads for the Temporal UI."""

from __future__ import annotations

import typer

from canaryflow.cli import app
from canaryflow.errors import ValidationFailed


@app.command("codec-server")
def codec_server(
    host: str = typer.Option("127.0.0.1", help="Interface (keep it private: the server holds the key)."),
    port: int = typer.Option(8888, help="Port."),
    ui_origin: list[str] = typer.Option(["http://localhost:8233", "http://127.0.0.1:8233"],
                                        help="Temporal UI origin(s) allowed to call it (CORS)."),
) -> None:
    """Serve /encode and /decode with the CANARYFLOW_PAYLOAD_KEY (UI: Settings → Codec Server)."""
    import uvicorn

    from canaryflow.codec_server import build_codec_app
    from canaryflow.temporal_codec import KEY_ENV, key_from_env

    key = key_from_env()
    if key is None:
        raise ValidationFailed(f"{KEY_ENV} is not set: the codec server needs the key the workers use",
                               source=KEY_ENV)
    typer.echo(f"codec server on http://{host}:{port} for {', '.join(ui_origin)}", err=True)
    uvicorn.run(build_codec_app(key, list(ui_origin)), host=host, port=port, log_level="warning",
                access_log=False)
