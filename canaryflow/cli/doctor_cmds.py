"""``canaryflow doctor [--fix]``: what the reconciler would do, now.

Lists every config that a rollout owns or that exposes a candidate, with the owning workflow's status in
Temporal, and what the reconciler does about it: nothing (its rollout runs), ``restore`` (the owner no
longer runs, or nobody owns the exposure) or ``release`` (a claim with nothing exposed). ``--fix`` applies
it now, audited as ``reconcile_restore`` by ``reconciler`` — the same pass the ``canaryflow-reconciler``
Schedule runs every 5 minutes. Exit code 0 when nothing needs fixing (or everything was fixed), else 1.
"""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from canaryflow.cli import app
from canaryflow.cli._common import print_json
from canaryflow.errors import CanaryflowError
from canaryflow.temporal.messages import ReconcileReport

DB = typer.Option(None, "--db", envvar="CANARYFLOW_DB_URL", show_envvar=True,
                  help="Registry database URL [default: sqlite:///canaryflow.db].")


def report_table(report: ReconcileReport) -> Table:
    """One row per owned or exposed config."""
    table = Table(title="canaryflow doctor: exposures and their owning rollouts", title_justify="left")
    for column in ("config", "exposure", "owner", "owner status", "fix", "why"):
        table.add_column(column)
    for f in report.findings:
        done = (" (done)" if f.applied else " (dry run: --fix applies it)") if f.fix != "none" else ""
        table.add_row(f.config_key, f.exposure, f.owner or "-", f.owner_status, f.fix + done, f.why)
    return table


@app.command("doctor")
def doctor(fix: bool = typer.Option(False, "--fix", help="Restore stable where the owner no longer runs."),
           db: str | None = DB, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show (and with --fix restore) exposures whose owning rollout is no longer running."""
    from canaryflow.registry import Registry
    from canaryflow.settings import get_settings
    from canaryflow.temporal import connect
    from canaryflow.temporal.reconcile import reconcile

    async def go() -> ReconcileReport:
        client = await connect(get_settings())
        registry = Registry(db)
        try:
            return await reconcile(registry, client, fix=fix)
        finally:
            registry.close()

    report = asyncio.run(go())
    if as_json:
        print_json(report.model_dump(mode="json"))
    elif not report.findings:
        typer.echo("nothing exposed and no rollout owns a config: nothing to do")
    else:
        Console(width=160).print(report_table(report))
    if report.fixes and not fix:
        raise CanaryflowError(f"{len(report.fixes)} config(s) need fixing: run 'canaryflow doctor --fix' "
                              "(or wait for the canaryflow-reconciler schedule)")


__all__ = ["doctor", "report_table"]
