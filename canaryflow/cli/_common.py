"""What every command shares: error handling, JSON output, settings."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import typer
from typer._click import exceptions as typer_click  # typer >= 0.16 vendors its own click

from canaryflow.errors import CanaryflowError


def run_app(app: typer.Typer, argv: list[str]) -> int:
    """Run the Typer app; user errors print one line and return 1, usage errors return 2."""
    try:
        app(args=argv, prog_name="canaryflow", standalone_mode=False)
    except CanaryflowError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 1
    except (click.exceptions.Exit, typer.Exit) as exc:
        return int(exc.exit_code or 0)
    except (click.exceptions.Abort, typer.Abort):
        typer.echo("aborted", err=True)
        return 1
    except (click.UsageError, typer_click.UsageError) as exc:
        exc.show()
        return 2
    except (click.ClickException, typer_click.ClickException) as exc:
        exc.show()
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
