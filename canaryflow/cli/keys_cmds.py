"""``canaryflow gateway-keys add|list|revoke``: the gateway's client API keys (stored hashed)."""

from __future__ import annotations

from pathlib import Path

import typer

from canaryflow.cli import app
from canaryflow.cli._common import print_json
from canaryflow.gateway.auth import KeyStore

keys_app = typer.Typer(help="Gateway client API keys (required when the gateway listens beyond loopback).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="gateway-keys")

FILE_HELP = "Keys file (default: CANARYFLOW_GATEWAY_KEYS_FILE or .canaryflow/gateway-keys.json)."


def _store(path: Path | None) -> KeyStore:
    return KeyStore(path)


@keys_app.command("add")
def add(name: str = typer.Argument(..., help="Who uses the key, e.g. web-app."),
        file: Path | None = typer.Option(None, "--file", help=FILE_HELP)) -> None:
    """Create a key; the key is printed once on stdout (only its salted hash is stored)."""
    record, key = _store(file).add(name)
    typer.echo(f"created key {record.id} ({record.name}); it is shown only now:", err=True)
    typer.echo(key)


@keys_app.command("list")
def list_keys(file: Path | None = typer.Option(None, "--file", help=FILE_HELP),
              as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every key's id, name and state (never the key)."""
    rows = [r.public() for r in _store(file).list()]
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("no gateway keys (create one with 'canaryflow gateway-keys add NAME')")
    for r in rows:
        typer.echo(f"{r['id']}  {r['name']:<24} {'active' if r['active'] else 'revoked'}")


@keys_app.command("revoke")
def revoke(key_id: str = typer.Argument(..., help="The key's id (see 'list')."),
           file: Path | None = typer.Option(None, "--file", help=FILE_HELP)) -> None:
    """Revoke a key; a running gateway refuses it within a second."""
    record = _store(file).revoke(key_id)
    typer.echo(f"revoked {record.id} ({record.name})")
