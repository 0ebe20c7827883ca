"""The ``canaryflow`` command. Each command group lives in its own module and is added here.

Exit codes: 0 ok, 1 a user error with a one-line message (no traceback), 2 usage.
"""

from __future__ import annotations

import os
import sys

import typer

from canaryflow.cli._common import run_app

app = typer.Typer(
    name="canaryflow",
    help="Durable, metric-gated rollouts of AI configurations on Temporal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Command groups register themselves on `app` when imported (keep this list sorted).
from canaryflow.cli import commands_registry  # noqa: E402,F401


def main() -> None:
    """Console-script entry point."""
    code = run_app(app, sys.argv[1:])
    from canaryflow import tracing

    tracing.shutdown()  # export the spans still batched (no-op when tracing is off)
    sys.stdout.flush()
    sys.stderr.flush()
    # temporalio's core may crash the interpreter at exit (sdk-python#300): leave without teardown.
    os._exit(code)


__all__ = ["app", "main"]
