"""On the real Temporal dev server (what the time-skipping server cannot do): the reconciler's Schedule and
`canaryflow doctor`, and a registry failing the final promote while a cancel arrives."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import CancelledError

from canaryflow.domain.rollout_status import RolloutStatus
from canaryflow.temporal import names, start_dev_server, workflow_id
from canaryflow.temporal.reconcile import ensure_schedule
from tests.rollout_fixtures import ScriptedAnalysis, Webhook, make_registry, unique_key
from tests.servers import free_port
from tests.test_rollout_safety import Holds, Refusal
from worker import build_worker

pytestmark = pytest.mark.temporal
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[str, Client]]:
    tmp = tmp_path_factory.mktemp("devserver")
    srv = start_dev_server(port=free_port(), ui_port=None, db_file=tmp / "temporal.db",
                           log_file=tmp / "server.log")
    try:
        deadline = time.monotonic() + 60
        while True:  # the port opens before the frontend reports healthy
            try:
                client = await Client.connect(srv.address, data_converter=pydantic_data_converter)
                break
            except RuntimeError:
                assert time.monotonic() < deadline, "the dev server never became healthy"
                await asyncio.sleep(0.2)
        yield srv.address, client
    finally:
        srv.stop()


async def poll(check: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"never saw {what}"
        await asyncio.sleep(0.1)


async def test_the_reconciler_schedule_and_doctor_restore_a_terminated_rollout(
    server: tuple[str, Client], tmp_path: Path
) -> None:
    address, client = server
    key = unique_key("recon")
    registry = make_registry(tmp_path / "registry.db", key)
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    plan = {"stages": [{"name": "canary", "kind": "percent", "percent": 5, "min_duration": "1h"},
                       {"name": "full", "kind": "full"}], "gates": []}
    async with build_worker(client, registry, task_queue=queue, activities=[]):
        assert await ensure_schedule(client, queue) is True
        assert await ensure_schedule(client, queue) is False  # idempotent: a second worker changes nothing
        schedule = client.get_schedule_handle(names.RECONCILE_SCHEDULE_ID)
        desc = await schedule.describe()
        assert desc.schedule.spec.intervals[0].every == names.RECONCILE_EVERY
        handle = await client.start_workflow(
            "RolloutWorkflow", {"config_key": key, "candidate_version": 2, "plan": plan, "requested_by": "t"},
            id=workflow_id(key), task_queue=queue, result_type=RolloutStatus)

        async def exposed() -> bool:
            return registry.serving_state(key).exposure.stage_kind == "percent"

        await poll(exposed, "the canary exposed")
        await handle.terminate(reason="fleet lost")
        env = {**os.environ, "CANARYFLOW_TEMPORAL_ADDRESS": address, "CANARYFLOW_DB_URL": registry.url}
        argv = [sys.executable, "-c", "from canaryflow.cli import main; main()", "doctor"]
        doctor = await asyncio.to_thread(subprocess.run, argv, cwd=ROOT, env=env, capture_output=True,
                                         text=True, timeout=60)
        assert doctor.returncode == 1, doctor.stdout + doctor.stderr  # something needs fixing
        assert key in doctor.stdout and "TERMINATED" in doctor.stdout and "restore" in doctor.stdout
        assert "need fixing: run 'canaryflow doctor --fix'" in doctor.stderr
        assert await exposed()  # a dry run changed nothing
        await schedule.trigger()

        async def restored() -> bool:
            state = registry.serving_state(key)
            return state.exposure.stage_kind == "none" and state.owner is None

        await poll(restored, "the reconciler's restore")
        last = registry.audit(key)[-1]
        assert (last.action, last.actor, last.source) == ("reconcile_restore", "reconciler", "reconciler")
        await schedule.delete()
    registry.close()


async def test_a_registry_failing_the_final_promote_then_a_cancel_restores_stable(
    server: tuple[str, Client], tmp_path: Path
) -> None:
    """Issue 15 item 1: with the promote refused, a cancel used to end with the candidate fully exposed."""
    _, client = server
    key = unique_key("promote")
    registry = make_registry(tmp_path / "registry.db", key)
    holds, hook, analysis = Holds(), Webhook(), ScriptedAnalysis()
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    plan = {"stages": [{"name": "canary", "kind": "percent", "percent": 5, "min_duration": "1s"},
                       {"name": "full", "kind": "full", "gates": []}], "gates": [], "notify": [hook.url]}
    holds.hold = {"promote_candidate"}  # the attempt runs when released, against the refusing registry
    refusal = Refusal(registry)
    try:
        async with build_worker(client, registry, task_queue=queue, activities=[analysis.analyze_stage],
                                interceptors=[holds]):
            handle = await client.start_workflow(
                "RolloutWorkflow", {"config_key": key, "candidate_version": 2, "plan": plan,
                                    "requested_by": "t"},
                id=workflow_id(key), task_queue=queue, result_type=RolloutStatus)

            async def promoting() -> bool:
                return "promote_candidate" in holds.started

            await poll(promoting, "the final promote")
            refusal.on()
            await handle.cancel()

            async def compensating() -> bool:
                return (await handle.query("status", result_type=RolloutStatus)).terminal

            holds.release.set()
            await poll(compensating, "the compensation under way")

            async def attempt_done() -> bool:
                return "promote_candidate" in holds.finished

            await poll(attempt_done, "the promote attempt refused")
            refusal.off()
            with pytest.raises(WorkflowFailureError) as info:
                await asyncio.wait_for(handle.result(), 60)
            assert isinstance(info.value.cause, CancelledError)
    finally:
        hook.close()
    state = registry.serving_state(key)
    assert (state.stable_version, state.exposure.stage_kind, state.owner) == (1, "none", None), state
    actions = [e.action for e in registry.audit(key)]
    assert "promote" not in actions and actions.count("clear_exposure") == 1
    assert actions[-1] == "rollout_aborted"
    assert hook.events().count("rolled_back") == 1 and "promoted" not in hook.events()
    registry.close()
