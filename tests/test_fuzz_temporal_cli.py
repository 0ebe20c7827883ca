"""Temporal CLI misuse against the real dev server: malformed ``--input``, unknown input fields, signal
payloads of the wrong type or shape, unknown fields, unknown signal names. Each is refused up front, fails the
workflow fast naming the field, or is ignored and recorded in the rollout's events — never a hang, never a
corrupted state: the same rollout then goes on to promotion."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from canaryflow.domain.rollout_status import RolloutStatus
from canaryflow.temporal import start_dev_server, temporal_binary, workflow_id
from tests.rollout_fixtures import make_registry
from tests.servers import free_port
from worker import build_worker

pytestmark = pytest.mark.temporal


@pytest.fixture(scope="module")
async def dev(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Client, str]]:
    d = tmp_path_factory.mktemp("cli")
    server = start_dev_server(port=free_port(), ui_port=None, db_file=d / "t.db", log_file=d / "server.log")
    try:
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        yield client, server.address
    finally:
        server.stop()


async def temporal(address: str, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        temporal_binary(), *args, "--address", address, env={**os.environ},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


def start_args(wid: str, payload: str, queue: str = "canaryflow") -> list[str]:
    return ["workflow", "start", "--task-queue", queue, "--type", "RolloutWorkflow", "--workflow-id", wid,
            "--input", payload]


async def test_malformed_input_json_is_refused_before_anything_starts(dev: tuple[Client, str]) -> None:
    client, address = dev
    wid = f"rollout-bad-{uuid.uuid4().hex[:6]}"
    code, out = await temporal(address, *start_args(wid, '{"config_key": "x", '))
    assert code != 0 and "json" in out.lower()
    with pytest.raises(RPCError):
        await client.get_workflow_handle(wid).describe()


@pytest.mark.parametrize(("payload", "field"), [
    ('{"config_key": "bot", "candidate_version": 2, "plan": "fast", "zz_typo": 1}', "zz_typo"),
    ('{"config_key": "bot", "candidate_version": -3, "plan": "fast"}', "candidate_version"),
    ('{"config_key": "Not A Key!", "candidate_version": 2}', "config_key"),
    ('{"config_key": "bot", "candidate_version": 2, "plan": "warp-speed"}', "plan"),
    ('{"config_key": "bot", "candidate_version": 2, "plan": {"stages": []}}', "plan"),
    ('"just a string"', "input"),
    ("[1, 2, 3]", "input"),
])
async def test_bad_inputs_fail_fast_naming_the_field(dev: tuple[Client, str], tmp_path: Path,
                                                     payload: str, field: str) -> None:
    client, address = dev
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    wid = f"rollout-bad-{uuid.uuid4().hex[:6]}"
    registry = make_registry(tmp_path / "r.db", "bot")
    async with build_worker(client, registry, task_queue=queue, activities=[]):
        code, out = await temporal(address, *start_args(wid, payload, queue))
        assert code == 0, out
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(client.get_workflow_handle(wid).result(), 30)
    message = str(failed.value.cause)
    assert "invalid" in message and field in message, message
    registry.close()


async def test_bad_signals_are_ignored_and_recorded_then_the_rollout_goes_on(
        dev: tuple[Client, str], tmp_path: Path) -> None:
    client, address = dev
    key = f"sig-{uuid.uuid4().hex[:6]}"
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    registry = make_registry(tmp_path / "r.db", key)
    plan = {"stages": [{"name": "internal", "kind": "segments", "segments": ["internal"],
                        "approval": "required"}, {"name": "full", "kind": "full"}],
            "gates": [], "approvers": ["alice"]}
    wid = workflow_id(key)
    payload = json.dumps({"config_key": key, "candidate_version": 2, "plan": plan, "requested_by": "t"})
    bad_signals = [
        ("approve", '"alice"'),  # not an object
        ("approve", "[1, 2]"),
        ("approve", '{"by": 5}'),  # wrong type
        ("approve", "{}"),  # missing field
        ("approve", '{"by": "mallory"}'),  # not an approver: refused and audited
        ("pause", '{"by": "alice", "reason": {"nested": true}}'),
        ("approv", '{"by": "alice"}'),  # no such signal
    ]
    async with build_worker(client, registry, task_queue=queue, activities=[]):
        code, out = await temporal(address, *start_args(wid, payload, queue))
        assert code == 0, out
        handle = client.get_workflow_handle(wid, result_type=RolloutStatus)
        for _ in range(300):
            status = await handle.query("status", result_type=RolloutStatus)
            if status.state == "awaiting_approval":
                break
            await asyncio.sleep(0.1)
        assert status.state == "awaiting_approval"
        for name, body in bad_signals:
            code, out = await temporal(address, "workflow", "signal", "--workflow-id", wid, "--name", name,
                                       "--input", body)
            assert code == 0, out
        for _ in range(300):
            status = await handle.query("status", result_type=RolloutStatus)
            if status.signals_seen >= len(bad_signals) - 1:
                break
            await asyncio.sleep(0.1)
        assert status.state == "awaiting_approval" and status.approved == [] and status.paused_by is None
        refused = [e for e in status.events if e.accepted is False]
        assert len(refused) == len(bad_signals) - 1  # every known signal recorded; the unknown one dropped
        assert any("payload must be a JSON object" in e.detail for e in refused)
        assert any("by:" in e.detail for e in refused)
        assert any("not an approver" in e.detail and e.by == "mallory" for e in refused)
        code, out = await temporal(address, "workflow", "signal", "--workflow-id", wid, "--name", "approve",
                                   "--input", '{"by": "alice", "zz_note": "lgtm"}')
        assert code == 0, out
        result = await asyncio.wait_for(handle.result(), 60)
    assert result.state == "promoted" and result.approved == ["internal"]
    accepted = [e for e in result.events if e.action == "approve" and e.accepted]
    assert len(accepted) == 1 and "zz_note" in accepted[0].detail  # unknown field ignored and recorded
    refusals = [e for e in registry.audit(key) if e.action == "approval_refused"]
    assert [e.actor for e in refusals] == ["mallory"]
    assert registry.serving_state(key).stable_version == 2
    registry.close()
