"""Every rollout ends in one of two states, whatever stops it and wherever: promoted (the candidate is stable,
nothing exposed) or restored (stable unchanged, nothing exposed), with the audit log saying which, by whom
and why — checked in a real registry (SQLite, and PostgreSQL where the registry's own behaviour matters).

On Temporal's time-skipping test server, one server per test (a test server stops skipping time once an
activity completes after its workflow was cancelled). A worker interceptor holds a chosen activity before it
runs, so a stop can arrive at each step of the run loop; the held activity then runs for real.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from temporalio import activity
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from canaryflow.domain.rollout_status import RolloutStatus
from canaryflow.registry import Registry
from canaryflow.temporal import workflow_id
from canaryflow.temporal.messages import ReconcileReport, ReconcileRequest
from canaryflow.temporal.reconcile import reconcile
from tests.rollout_fixtures import (
    SAVE_HISTORIES,
    SEGMENTS,
    ScriptedAnalysis,
    Webhook,
    drive,
    make_registry,
    save_history,
    unique_key,
)
from tests.test_registry import spec
from tests.test_rollout_timeskipping import start_env
from worker import build_worker

pytestmark = pytest.mark.temporal

PLAN: dict[str, Any] = {
    "stages": [
        {"name": "canary", "kind": "percent", "percent": 5, "min_duration": "5m", "approval": "required"},
        {"name": "full", "kind": "full", "gates": []},
    ],
    "gates": [{"metric": "error_rate", "margin": 0.01}],
    "analysis_interval": "1m",
    "approval_timeout": "1d",
}
STOPS = ["cancel", "abort", "reject"]
CHANGES = ("rollout_claim", "apply_exposure", "promote", "clear_exposure", "undo_promote")


class Holds(Interceptor):
    """Holds the activities named in ``hold`` before they run, until ``release`` is set."""

    def __init__(self) -> None:
        self.hold: set[str] = set()
        self.started: list[str] = []
        self.finished: list[str] = []
        self.release = asyncio.Event()

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        holds = self

        class Inbound(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput) -> Any:
                name = activity.info().activity_type
                holds.started.append(name)
                try:
                    if name in holds.hold:
                        await holds.release.wait()
                    return await self.next.execute_activity(input)
                finally:
                    holds.finished.append(name)

        return Inbound(next)


class Refusal:
    """Make the real registry database refuse every serving-state write (a trigger), and accept again."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.postgres = registry.engine.dialect.name == "postgresql"

    def on(self) -> None:
        with self.registry.engine.begin() as conn:
            if self.postgres:
                conn.execute(sa.text(
                    "CREATE OR REPLACE FUNCTION cf_refuse() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'registry refuses writes (test)'; END $$ LANGUAGE plpgsql"))
                conn.execute(sa.text("CREATE TRIGGER cf_refuse BEFORE UPDATE ON serving_state "
                                     "FOR EACH ROW EXECUTE FUNCTION cf_refuse()"))
            else:
                conn.execute(sa.text("CREATE TRIGGER cf_refuse BEFORE UPDATE ON serving_state BEGIN "
                                     "SELECT RAISE(ABORT, 'registry refuses writes (test)'); END"))

    def off(self) -> None:
        with self.registry.engine.begin() as conn:
            conn.execute(sa.text("DROP TRIGGER cf_refuse" + (" ON serving_state" if self.postgres else "")))


@dataclass
class Rig:
    env: WorkflowEnvironment
    registry: Registry
    analysis: ScriptedAnalysis
    holds: Holds
    hook: Webhook
    key: str
    task_queue: str
    handles: list[WorkflowHandle[Any, Any]] = field(default_factory=list)

    async def start(self, plan: Any = None, wid: str | None = None) -> WorkflowHandle[Any, Any]:
        handle = await self.env.client.start_workflow(
            "RolloutWorkflow",
            {"config_key": self.key, "candidate_version": 2, "requested_by": "carol", "reason": "shorter",
             "plan": {**(plan or PLAN), "notify": [self.hook.url]}},
            id=wid or workflow_id(self.key), task_queue=self.task_queue, result_type=RolloutStatus)
        self.handles.append(handle)
        return handle

    async def until(self, handle: WorkflowHandle[Any, Any], check: Any, what: str) -> RolloutStatus:
        """Poll (real time, bounded) until ``check(status)``; time is not skipped meanwhile."""
        for _ in range(400):
            status = await handle.query("status", result_type=RolloutStatus)
            if check(status):
                return status
            await asyncio.sleep(0.025)
        raise AssertionError(f"never saw {what}; last state: {status}")

    async def stop_seen(self, handle: WorkflowHandle[Any, Any], name: str) -> None:
        """Until the workflow has acted on a stop while ``name`` is held: its cancel is requested (or, for
        an activity that is not waited for, it is no longer pending). Releasing it earlier races the cancel
        request with the completion, which the time-skipping test server mishandles."""
        for _ in range(400):
            desc = await handle.describe()
            pending = [a for a in desc.raw_description.pending_activities if a.activity_type.name == name]
            if not pending or all(a.state == PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED
                                  for a in pending):
                return
            await asyncio.sleep(0.025)
        raise AssertionError(f"the stop never reached {name}")

    async def started(self, name: str) -> None:
        for _ in range(400):
            if name in self.holds.started:
                return
            await asyncio.sleep(0.025)
        raise AssertionError(f"{name} never started (started: {self.holds.started})")

    def changes(self) -> list[str]:
        """The serving-state changes the rollout made, in order."""
        return [e.action for e in self.registry.audit(self.key, limit=1000)
                if e.action in CHANGES]

    def assert_restored(self) -> None:
        state = self.registry.serving_state(self.key)
        assert (state.stable_version, state.exposure.stage_kind, state.owner) == (1, "none", None), state

    def assert_promoted(self) -> None:
        state = self.registry.serving_state(self.key)
        assert (state.stable_version, state.exposure.stage_kind, state.owner) == (2, "none", None), state

    def ends(self) -> list[tuple[str, str]]:
        """The rollout's end in the audit log: (action, actor)."""
        return [(e.action, e.actor) for e in self.registry.audit(self.key, limit=1000)
                if e.action.startswith("rollout_") and e.action != "rollout_claim"]


@pytest.fixture
async def rig(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    env = await start_env()
    key = unique_key("safe")
    backend = getattr(request, "param", "sqlite")
    if backend == "postgres":
        registry = Registry(str(request.getfixturevalue("postgres_url")))
        registry.push_config(spec(key=key))
        registry.push_config(spec(key=key, model="gpt-4o"))
        registry.push_segments(SEGMENTS, by="test")
    else:
        registry = make_registry(tmp_path / "registry.db", key)
    analysis, holds, hook = ScriptedAnalysis(), Holds(), Webhook()
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    try:
        async with build_worker(env.client, registry, task_queue=queue, activities=[analysis.analyze_stage],
                                interceptors=[holds]):
            rig = Rig(env, registry, analysis, holds, hook, key, queue)
            yield rig
            holds.release.set()
            label = os.environ.get(SAVE_HISTORIES)
            if label:  # add histories of this release beside the others (tests/test_replay.py)
                for n, handle in enumerate(rig.handles):
                    await save_history(env.client, handle, f"{request.node.name}-{n}-{label}")
    finally:
        hook.close()
        registry.close()
        await env.shutdown()


async def stop(rig: Rig, handle: WorkflowHandle[Any, Any], kind: str, by: str = "ops") -> None:
    if kind == "cancel":
        await handle.cancel()
    else:
        await handle.signal(kind, {"by": by, "reason": f"{kind} at this step"})


async def ended_restored(rig: Rig, handle: WorkflowHandle[Any, Any], kind: str, by: str = "ops",
                         applied: int = 1) -> None:
    """The rollout ended as ``kind`` asks, with stable restored, audited once, notified once."""
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    cause = info.value.cause
    if kind == "cancel":
        assert isinstance(cause, CancelledError), cause
    else:
        assert isinstance(cause, ApplicationError) and cause.type == {"abort": "Aborted",
                                                                      "reject": "RolledBack"}[kind], cause
        assert f"{ {'abort': 'aborted', 'reject': 'rejected'}[kind]} by {by}" in str(cause), cause
    rig.assert_restored()
    outcome = "rollout_rolled_back" if kind == "reject" else "rollout_aborted"
    assert rig.ends() == [(outcome, "temporal" if kind == "cancel" else by)]
    events = rig.hook.events()
    assert events.count("rolled_back") == 1 and "promoted" not in events, events
    changes = rig.changes()
    assert changes.count("clear_exposure") + changes.count("undo_promote") <= 1, changes
    assert changes.count("apply_exposure") == applied, changes  # each exposure change applied once
    status = await handle.query("status", result_type=RolloutStatus)
    assert status.state in ("aborted", "rolled_back"), status.state


async def approve(rig: Rig, handle: WorkflowHandle[Any, Any]) -> None:
    await drive(rig.env, handle, lambda s: _true(s.state == "awaiting_approval"), step=60)
    await handle.signal("approve", {"by": "alice", "comment": "looks fine"})


@pytest.mark.parametrize("kind", STOPS)
@pytest.mark.parametrize("step", ["validation", "apply", "measure", "wait", "approval", "promote"])
async def test_a_stop_at_any_step_restores_stable(rig: Rig, step: str, kind: str) -> None:
    held = {"validation": "validate_rollout", "apply": "apply_exposure", "measure": "analyze_stage",
            "promote": "promote_candidate"}.get(step)
    if held:
        rig.holds.hold = {held}
    handle = await rig.start()
    if step == "wait":
        await drive(rig.env, handle, lambda s: _true(s.waiting_for.startswith("min duration")), step=30)
    elif step == "approval":
        await drive(rig.env, handle, lambda s: _true(s.state == "awaiting_approval"), step=60)
    elif step == "promote":
        await approve(rig, handle)
    if step == "measure":  # the first analysis is due 1 min into the stage (a held activity stops the clock)
        await drive(rig.env, handle, lambda s: _true(held in rig.holds.started), step=60.5)
    elif held:
        await rig.started(held)
    await stop(rig, handle, kind)
    if held in ("apply_exposure", "promote_candidate") or (held and kind == "cancel"):
        await rig.stop_seen(handle, held)  # exposure changes (and anything, on a cancel) are cut short
    rig.holds.release.set()  # the held activity now runs for real (a cancelled one is waited for)
    await ended_restored(rig, handle, kind, applied={"validation": 0, "promote": 2}.get(step, 1))
    if step == "promote":  # the promote ran after the stop arrived: it was applied, then undone
        assert rig.changes()[-2:] == ["promote", "undo_promote"], rig.changes()
    if kind != "cancel":
        signal = [e for e in rig.registry.audit(rig.key) if e.action == f"signal_{kind}"]
        assert len(signal) == 1 and signal[0].actor == "ops"
        assert signal[0].after["stage"] == ("full" if step == "promote" else "canary")
        assert signal[0].after["received_at"]


@pytest.mark.parametrize("second", STOPS)
async def test_a_stop_during_the_compensation_changes_nothing_more(rig: Rig, second: str) -> None:
    rig.holds.hold = {"restore_stable"}
    handle = await rig.start()
    await drive(rig.env, handle, lambda s: _true(s.applied_stage == 0), step=30)
    await handle.signal("abort", {"by": "ops", "reason": "incident 7"})
    await rig.started("restore_stable")
    await stop(rig, handle, second, by="bob")
    rig.holds.release.set()
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    assert isinstance(info.value.cause, CancelledError if second == "cancel" else ApplicationError)
    rig.assert_restored()
    assert rig.changes() == ["rollout_claim", "apply_exposure", "clear_exposure"]
    assert rig.ends() == [("rollout_aborted", "ops")]
    assert rig.hook.events().count("rolled_back") == 1
    if second != "cancel":  # refused (already stopping) and recorded
        status = await handle.query("status", result_type=RolloutStatus)
        assert [e.accepted for e in status.events if e.action == second][-1:] == [False]


@pytest.mark.parametrize("rig", ["sqlite", "postgres"], indirect=True)
async def test_a_registry_refusing_the_restore_shows_restore_failed_and_retries_until_it_applies(
    rig: Rig,
) -> None:
    handle = await rig.start()
    await drive(rig.env, handle, lambda s: _true(s.applied_stage == 0), step=30)
    await handle.signal("abort", {"by": " ", "reason": "blank"})  # refused: never reaches the registry
    status = await rig.until(handle, lambda s: s.events[-1].action == "abort", "the blank abort recorded")
    assert not status.events[-1].accepted and "by" in status.events[-1].detail and status.stop is None
    refusal = Refusal(rig.registry)
    refusal.on()
    await handle.signal("abort", {"by": "ops", "reason": "incident 9"})
    status = await drive(rig.env, handle, lambda s: _true(s.state == "restore_failed"), step=20)
    assert "registry refuses writes" in status.waiting_for
    desc = await handle.describe()
    attrs = {k.name: v for k, v in desc.typed_search_attributes}
    assert attrs["CanaryflowState"] == "restore_failed"
    await rig.env.sleep(600)  # several more failed rounds: still alive, notified once
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    assert rig.hook.events().count("restore_failed") == 1
    assert rig.registry.serving_state(rig.key).exposure.stage_kind == "percent"
    refusal.off()
    await ended_restored(rig, handle, "abort")


async def test_a_second_rollout_for_the_same_config_is_refused_whatever_its_workflow_id(rig: Rig) -> None:
    first = await rig.start(wid=f"adhoc-{uuid.uuid4().hex[:6]}")  # a raw `temporal workflow start`
    await drive(rig.env, first, lambda s: _true(s.applied_stage == 0), step=30)
    second = await rig.start()  # the usual id, rollout-KEY: a different workflow
    with pytest.raises(WorkflowFailureError) as info:
        await second.result()
    assert isinstance(info.value.cause, ApplicationError) and info.value.cause.type == "InvalidRollout"
    assert f"owned by rollout {first.id}" in str(info.value.cause), info.value.cause
    assert {e.source for e in rig.registry.audit(rig.key) if e.action != "push_version"} <= {first.id, "cli"}
    assert rig.registry.serving_state(rig.key).exposure.stage_kind == "percent"  # the first is untouched
    await first.signal("abort", {"by": "ops", "reason": "done"})
    await ended_restored(rig, first, "abort")


async def test_a_terminated_rollout_is_restored_by_the_reconciler(rig: Rig) -> None:
    handle = await rig.start()
    await drive(rig.env, handle, lambda s: _true(s.applied_stage == 0), step=30)
    await handle.terminate(reason="worker fleet lost")  # no compensation can run
    client = rig.env.client
    dry = await reconcile(rig.registry, client, fix=False)  # what `canaryflow doctor` shows
    mine = [f for f in dry.findings if f.config_key == rig.key]
    assert [(f.fix, f.owner, f.owner_status, f.applied) for f in mine] == [
        ("restore", handle.id, "TERMINATED", False)]
    assert rig.registry.serving_state(rig.key).exposure.stage_kind == "percent"
    report = await client.execute_workflow("ReconcileWorkflow", ReconcileRequest(fix=True),
                                           id=f"reconcile-{uuid.uuid4().hex[:6]}", task_queue=rig.task_queue,
                                           result_type=ReconcileReport)
    assert [f.applied for f in report.findings if f.config_key == rig.key] == [True]
    rig.assert_restored()
    last = rig.registry.audit(rig.key)[-1]
    assert (last.action, last.actor) == ("reconcile_restore", "reconciler")
    assert handle.id in last.reason and "terminated" in last.reason
    again = await reconcile(rig.registry, client, fix=True)  # idempotent: nothing more to do
    assert [f.fix for f in again.findings if f.config_key == rig.key] == []


async def test_an_approval_pause_resume_and_promote_are_audited_with_actor_stage_and_time(rig: Rig) -> None:
    handle = await rig.start({**PLAN, "stages": [PLAN["stages"][0], {"name": "full", "kind": "full",
                                                                       "gates": [], "min_duration": "1h"}]})
    await handle.signal("pause", {"by": "dave", "reason": "lunch"})
    await handle.signal("resume", {"by": "dave"})
    await approve(rig, handle)
    await drive(rig.env, handle, lambda s: _true(s.stage == "full"), step=10)
    await handle.signal("promote", {"by": "erin", "full": True})
    status: RolloutStatus = await handle.result()
    assert status.state == "promoted"
    rig.assert_promoted()
    audit = rig.registry.audit(rig.key)
    signals = [(e.action, e.actor, e.after["stage"]) for e in audit if e.action.startswith("signal_")]
    assert signals == [("signal_pause", "dave", "canary"), ("signal_resume", "dave", "canary"),
                       ("signal_approve", "alice", "canary"), ("signal_promote", "erin", "full")]
    assert all(e.after["received_at"] for e in audit if e.action.startswith("signal_"))
    full = [e for e in audit if e.action == "apply_exposure"][-1]
    assert (full.after["exposure"]["stage"], full.actor) == ("full", "alice")  # opened by alice's approval
    assert rig.hook.events().count("promoted") == 1


async def _true(value: bool) -> bool:
    return value

