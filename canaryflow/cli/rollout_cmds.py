"""``canaryflow rollout …`` and ``canaryflow worker``: conveniences over the same RolloutWorkflow that the
stock Temporal CLI drives (``temporal workflow start/signal/query``)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from canaryflow.cli import app
from canaryflow.cli._common import print_json
from canaryflow.domain.plan import PRESETS, Plan, RolloutInput
from canaryflow.domain.rollout_status import RolloutStatus
from canaryflow.domain.rollout_view import clock, describe_exposure, summary_line, verdict_line
from canaryflow.domain.rollout_words import approve_commands, gate_lines, waiting_words
from canaryflow.domain.validation import parse
from canaryflow.errors import CanaryflowError, Conflict, NotFound, ValidationFailed
from canaryflow.registry import Registry
from canaryflow.registry.evidence import MeasurementRecord
from canaryflow.settings import get_settings
from canaryflow.temporal import connect, workflow_id

rollout = typer.Typer(help="Start, watch and steer rollouts (the RolloutWorkflow on Temporal).",
                      no_args_is_help=True)
app.add_typer(rollout, name="rollout")
BY = typer.Option(..., "--by", help="who does this (recorded in the rollout and the audit log)")


def load_plan(value: str) -> str | Plan:
    """A preset name, or a YAML/JSON plan file validated strictly."""
    if value in PRESETS:
        return value
    path = Path(value)
    if not path.exists():
        raise ValidationFailed(f"--plan {value!r}: neither a preset ({', '.join(PRESETS)}) nor a file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValidationFailed(f"not valid YAML/JSON: {exc}", source=str(path)) from exc
    return parse(Plan, data, source=str(path))


async def _client() -> Client:
    return await connect(get_settings())


def _handle(client: Client, key: str) -> WorkflowHandle[Any, Any]:
    return client.get_workflow_handle(workflow_id(key))


async def _status(handle: WorkflowHandle[Any, Any], key: str) -> RolloutStatus:
    try:
        result: RolloutStatus = await handle.query("status", result_type=RolloutStatus)
        return result
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(f"no rollout of {key!r} (workflow {workflow_id(key)}): start one with "
                           f"'canaryflow rollout start {key} VERSION'") from exc
        raise CanaryflowError(f"cannot query rollout {workflow_id(key)}: {exc.message}") from exc


@rollout.command("start")
def start(key: str, version: int, plan: str = typer.Option("default", "--plan", help="preset or plan file"),
          by: str = typer.Option("cli", "--by"), reason: str = typer.Option("", "--reason")) -> None:
    """Start rolling out VERSION of KEY (one rollout per config at a time)."""
    inp = parse(RolloutInput, {"config_key": key, "candidate_version": version, "plan": load_plan(plan),
                               "requested_by": by, "reason": reason}, source="rollout")
    plan_name = inp.plan if isinstance(inp.plan, str) else "inline"
    # The starter resolves a preset once: the workflow's first input freezes it (a preset edited later
    # changes only the rollouts started after the edit).
    inp = inp.model_copy(update={"plan": inp.resolved_plan()})

    async def go() -> None:
        client = await _client()
        settings = get_settings()
        try:
            await client.start_workflow(
                "RolloutWorkflow", inp, id=workflow_id(key), task_queue=settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                static_summary=f"Rollout of {key} v{version} (plan {plan_name}) by {by}",
                static_details=f"**{key}** v{version}, plan `{plan_name}`, requested by {by}. {reason}")
        except WorkflowAlreadyStartedError as exc:
            raise Conflict(f"a rollout of {key!r} is already running (workflow {workflow_id(key)}): see "
                           f"'canaryflow rollout status {key}', or abort it first") from exc
    asyncio.run(go())
    typer.echo(f"started {workflow_id(key)}: {key} v{version}, plan {plan_name}; "
               f"watch it with 'canaryflow rollout status {key} --watch'")


def render(status: RolloutStatus, ended: str = "", now: float | None = None,
           evidence: list[MeasurementRecord] | None = None) -> Table:
    """The status as a rich table: stage, exposure, each gate in words (its statistics dimmed under it),
    what it waits for and what would settle it, the command that approves, each gate's running counters
    and the stage's last measurements as the registry recorded them (``evidence``)."""
    now = time.time() if now is None else now
    stage = status.plan.stages[status.stage_index]
    table = Table(title=summary_line(status), show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("state", status.state + (f" (paused by {status.paused_by})" if status.paused_by else ""))
    table.add_row("stage", f"{status.stage_index + 1}/{len(status.plan.stages)} {stage.name} since "
                  f"{clock(status.stage_started_at)}")
    table.add_row("exposure", describe_exposure(stage))
    table.add_row("verdict", verdict_line(status.last_verdict).split(": ")[0])
    for words, stats in gate_lines(status):
        table.add_row("  gate", escape(words))
        table.add_row("", f"[dim]{escape(stats)}[/dim]")
    for line in status.last_verdict.dry_run if status.last_verdict else []:
        table.add_row("  dry run", escape(line))
    for name, c in status.counters.items():
        table.add_row("  counted", escape(f"{name}: {c.count + c.error} measured, {c.failed} failed, "
                      f"{c.inconclusive} inconclusive, {c.error} errors ({c.consecutive_errors} in a row)"))
    for rec in evidence or []:
        table.add_row("  recorded", escape(f"{clock(rec.measurement.at)} {rec.measurement.summary()}"))
    table.add_row("waiting for", "-" if status.terminal or ended else escape(waiting_words(status, now)))
    if status.approval is not None:
        until = (f"until {clock(status.approval.deadline)}" if status.approval.deadline is not None
                 else "no deadline")
        table.add_row("approval", f"{status.approval.stage}: {escape(status.approval.why)} ({until})")
        table.add_row("  approve with", escape(approve_commands(status)))
    for e in status.events[-5:]:
        mark = "" if e.accepted else " [red](refused)[/red]"
        table.add_row("  event", f"{clock(e.at)} {e.action} {e.by} {escape(e.detail)}{mark}")
    if status.outcome or ended:
        parts = (status.outcome, f"workflow {ended}" if ended else "")
        table.add_row("outcome", escape(" — ".join(t for t in parts if t)))
    return table


async def _ended(handle: WorkflowHandle[Any, Any]) -> str:
    desc = await handle.describe()
    if desc.status == WorkflowExecutionStatus.RUNNING:
        return ""
    try:
        await handle.result()
    except WorkflowFailureError as exc:
        cause = exc.cause
        return f"{desc.status.name if desc.status else 'ended'}: {getattr(cause, 'message', cause)}"
    return "completed"


def recorded(key: str, st: RolloutStatus, limit: int) -> list[MeasurementRecord]:
    """The stage's last ``limit`` measurements with their full evidence, from the registry (the workflow
    keeps only counters and the last ones)."""
    if limit <= 0:
        return []
    registry = Registry()
    try:
        rows = registry.measurements(key, stage=st.stage, limit=limit)
    finally:
        registry.close()
    return [r for r in rows if r.rollout_id.startswith(f"{workflow_id(key)}/")
            and r.candidate_version == st.candidate_version]


@rollout.command("status")
def status(key: str, watch: bool = typer.Option(False, "--watch", help="update in place until it ends"),
           as_json: bool = typer.Option(False, "--json"),
           evidence: int = typer.Option(0, "--evidence", help="also show the stage's last N measurements "
                                        "with their evidence, from the registry")) -> None:
    """Show a rollout: stage, exposure, gates and their numbers, what it waits for."""
    async def go() -> None:
        handle = _handle(await _client(), key)
        st = await _status(handle, key)
        rows = await asyncio.to_thread(recorded, key, st, evidence)
        if as_json:
            data = st.model_dump(mode="json")
            if evidence:
                data["recorded"] = [r.model_dump(mode="json") for r in rows]
            print_json(data)
            return
        console = Console()
        if not watch:
            console.print(render(st, await _ended(handle), evidence=rows))
            return
        with Live(render(st), console=console, refresh_per_second=2) as live:
            while True:
                ended = await _ended(handle)
                st = await _status(handle, key)
                live.update(render(st, ended))
                if ended:
                    return
                await asyncio.sleep(1.0)
    asyncio.run(go())


def _signal(name: str, key: str, payload: dict[str, Any]) -> None:
    """Send a signal, then report whether the rollout accepted it (it records every signal)."""
    async def go() -> str:
        handle = _handle(await _client(), key)
        before = await _status(handle, key)
        try:
            await handle.signal(name, payload)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise Conflict(f"the rollout of {key!r} has already ended ({before.state})") from exc
            raise CanaryflowError(f"cannot signal {workflow_id(key)}: {exc.message}") from exc
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            st = await _status(handle, key)
            if st.signals_seen > before.signals_seen:
                mine = [e for e in st.events if e.action == name and e.by == str(payload.get("by"))]
                event = mine[-1] if mine else st.events[-1]
                if not event.accepted:
                    raise Conflict(f"{name} refused: {event.detail}")
                return f"{name} accepted" + (f": {event.detail}" if event.detail else "")
            await asyncio.sleep(0.2)
        return f"{name} sent (not yet processed: is a worker running?)"
    typer.echo(asyncio.run(go()))


@rollout.command("approve")
def approve(key: str, by: str = BY, stage: str | None = typer.Option(None, "--stage"),
            comment: str | None = typer.Option(None, "--comment")) -> None:
    """Approve the stage that waits for approval."""
    _signal("approve", key, {"by": by, **({"stage": stage} if stage else {}),
                             **({"comment": comment} if comment else {})})


@rollout.command("reject")
def reject(key: str, by: str = BY, reason: str = typer.Option(..., "--reason")) -> None:
    """Reject: restore stable now and end the rollout as rolled back."""
    _signal("reject", key, {"by": by, "reason": reason})


@rollout.command("pause")
def pause(key: str, by: str = BY, reason: str | None = typer.Option(None, "--reason")) -> None:
    """Stop advancing (a failing gate still rolls back)."""
    _signal("pause", key, {"by": by, **({"reason": reason} if reason else {})})


@rollout.command("resume")
def resume(key: str, by: str = BY) -> None:
    """Advance again after a pause."""
    _signal("resume", key, {"by": by})


@rollout.command("abort")
def abort(key: str, by: str = BY, reason: str = typer.Option(..., "--reason")) -> None:
    """Restore stable now and end the rollout as aborted."""
    _signal("abort", key, {"by": by, "reason": reason})


@rollout.command("promote")
def promote(key: str, by: str = BY, full: bool = typer.Option(False, "--full",
                                                              help="make the candidate stable now")) -> None:
    """Skip the rest of the current stage (or, with --full, promote to stable now)."""
    _signal("promote", key, {"by": by, "full": full})


@app.command("worker")
def worker_cmd() -> None:
    """Run the Temporal worker (settings from CANARYFLOW_* environment variables; Ctrl-C stops it)."""
    import logging

    from worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_worker())


__all__ = ["load_plan", "render", "rollout"]
