"""The rollout on the real Temporal dev server, driven the way the README says: the stock ``temporal`` CLI
(start, signal, query) against ``python worker.py`` subprocesses and a SQLite registry."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.rollout_status import RolloutStatus
from canaryflow.temporal import DevServer, ensure_search_attributes, start_dev_server, temporal_binary
from tests.rollout_fixtures import make_registry
from tests.servers import free_port

pytestmark = pytest.mark.temporal
ROOT = Path(__file__).resolve().parent.parent
PLAN = {
    "stages": [
        {
            "name": "internal",
            "kind": "segments",
            "segments": ["internal"],
            "min_duration": "2s",
            "approval": "required",
        },
        {"name": "canary-5", "kind": "percent", "percent": 5, "min_duration": "2s"},
        {"name": "full", "kind": "full"},
    ],
    "gates": [],
}


def start_command(workflow_id: str, input_json: str) -> list[str]:
    """``temporal workflow start`` for a rollout, as the README writes it."""
    return ["temporal", "workflow", "start", "--task-queue", "canaryflow", "--type", "RolloutWorkflow",
            "--workflow-id", workflow_id, "--input", input_json]


INPUT = json.dumps(
    {"config_key": "support-bot", "candidate_version": 2, "requested_by": "alice", "plan": PLAN}
)
# The README's commands, exactly as written there.
README = [
    start_command("rollout-support-bot", INPUT),
    [
        "temporal",
        "workflow",
        "signal",
        "--workflow-id",
        "rollout-support-bot",
        "--name",
        "approve",
        "--input",
        '{"by": "alice"}',
    ],
    ["temporal", "workflow", "query", "--workflow-id", "rollout-support-bot", "--name", "status"],
    ["temporal", "workflow", "list", "--query", 'CanaryflowConfigKey="support-bot"'],
    [
        "temporal",
        "workflow",
        "signal",
        "--workflow-id",
        "rollout-support-bot",
        "--name",
        "reject",
        "--input",
        '{"by": "alice", "reason": "answers too terse"}',
    ],
]


@dataclass
class Stack:
    server: DevServer
    client: Client
    db_url: str
    dir: Path

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TEMPORAL_ADDRESS": self.server.address,
            "CANARYFLOW_DB_URL": self.db_url,
            "CANARYFLOW_TEMPORAL_ADDRESS": self.server.address,
            "CANARYFLOW_TASK_QUEUE": "canaryflow",
        }

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = open(self.dir / "worker.log", "ab")  # noqa: SIM115
        return subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")],
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    async def temporal(self, args: list[str]) -> str:
        proc = await asyncio.create_subprocess_exec(
            temporal_binary(),
            *args[1:],
            env=self.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, f"{args[:3]} failed: {err.decode()}"
        return out.decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevServer, Path]]:
    d = tmp_path_factory.mktemp("devserver")
    srv = start_dev_server(
        port=free_port(), ui_port=None, db_file=d / "temporal.db", log_file=d / "server.log"
    )
    yield srv, d
    srv.stop()


@pytest.fixture
async def stack(server: tuple[DevServer, Path], tmp_path: Path) -> AsyncIterator[Stack]:
    srv, _ = server
    client = await Client.connect(srv.address, data_converter=pydantic_data_converter)
    yield Stack(srv, client, f"sqlite:///{tmp_path / 'registry.db'}", tmp_path)


@contextlib.contextmanager
def worker(stack: Stack) -> Iterator[subprocess.Popen[bytes]]:
    proc = stack.start_worker()
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
    assert proc.returncode == 0, f"the worker did not shut down cleanly: {proc.returncode}"
    assert "shutting down" in (stack.dir / "worker.log").read_text()


async def wait_status(stack: Stack, wf_id: str, ok: Any, timeout: float = 60) -> RolloutStatus:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            last = await stack.client.get_workflow_handle(wf_id).query("status", result_type=RolloutStatus)
            if ok(last):
                return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"{wf_id} never reached the state; last: {last}")


async def test_readme_commands_drive_a_rollout_to_promotion(stack: Stack) -> None:
    registry = make_registry(stack.dir / "registry.db", "support-bot")
    with worker(stack):
        await stack.temporal(README[0])
        await wait_status(stack, "rollout-support-bot", lambda s: s.state == "awaiting_approval")
        await stack.temporal(README[1])
        assert "support-bot" in await stack.temporal(README[2])
        queried = json.loads(await stack.temporal([*README[2], "-o", "json"]))
        result = await stack.client.get_workflow_handle(
            "rollout-support-bot", result_type=RolloutStatus
        ).result()
    assert result.state == "promoted" and result.approved == ["internal"]
    status = queried["queryResult"][0] if "queryResult" in queried else queried
    assert status["config_key"] == "support-bot" and status["candidate_version"] == 2
    state = registry.serving_state("support-bot")
    assert state.stable_version == 2 and state.exposure.stage_kind == "none"
    changes = [e.action for e in registry.audit("support-bot")
               if e.source == "rollout-support-bot" and not e.action.startswith("signal_")]
    assert changes == ["rollout_claim", "apply_exposure", "apply_exposure", "apply_exposure", "promote"]
    desc = await stack.client.get_workflow_handle("rollout-support-bot").describe()
    attrs = {k.name: v for k, v in desc.typed_search_attributes if k.name.startswith("Canaryflow")}
    assert attrs == {
        "CanaryflowConfigKey": "support-bot",
        "CanaryflowStage": "full",
        "CanaryflowPercent": 100.0,
        "CanaryflowState": "promoted",
    }
    await until_listed(stack, README[3], "rollout-support-bot")

    # A second rollout (v3) rejected by signal: compensation restores the stable v2 at once.
    registry.push_config(
        ConfigSpec.model_validate({"key": "support-bot", "provider": "openai", "model": "m3"})
    )
    with worker(stack):
        await stack.temporal(
            [*README[0][:-1], INPUT.replace('"candidate_version": 2', '"candidate_version": 3')]
        )
        await wait_status(stack, "rollout-support-bot", lambda s: s.state == "awaiting_approval")
        assert registry.serving_state("support-bot").exposure.candidate_version == 3
        await stack.temporal(README[4])
        with pytest.raises(WorkflowFailureError) as info:
            await stack.client.get_workflow_handle("rollout-support-bot").result()
    assert "stage internal: rejected by alice: answers too terse; stable v2 restored" in str(info.value.cause)
    state = registry.serving_state("support-bot")
    assert state.stable_version == 2 and state.exposure.stage_kind == "none"
    registry.close()


async def until_listed(stack: Stack, command: list[str], wf_id: str, timeout: float = 30) -> None:
    """Visibility is eventually consistent: poll ``temporal workflow list`` until it shows ``wf_id``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if wf_id in await stack.temporal(command):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{command} never listed {wf_id}")


async def test_a_bad_input_fails_fast_naming_the_field(stack: Stack) -> None:
    with worker(stack):
        bad = json.dumps({"config_key": "support-bot", "candidate_version": "two", "plan": "fast"})
        await stack.temporal(start_command("rollout-bad-input", bad))
        handle = stack.client.get_workflow_handle("rollout-bad-input")
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 30)
    assert "candidate_version: Input should be a valid integer" in str(info.value.cause)
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED


async def test_a_worker_killed_mid_stage_is_replaced_and_each_change_applies_once(stack: Stack) -> None:
    key = "kill-bot"
    registry = make_registry(stack.dir / "registry.db", key)
    plan = {
        **PLAN,
        "stages": [
            {**PLAN["stages"][0], "approval": "none", "min_duration": "4s"},
            {**PLAN["stages"][1], "min_duration": "4s"},
            PLAN["stages"][2],
        ],
    }
    inp = json.dumps({"config_key": key, "candidate_version": 2, "requested_by": "t", "plan": plan})
    first = stack.start_worker()
    try:
        await stack.temporal(start_command(f"rollout-{key}", inp))
        await wait_status(stack, f"rollout-{key}", lambda s: s.applied_stage == 0 and s.waiting_for)
    finally:
        first.kill()  # SIGKILL: no graceful shutdown, mid-stage
        first.wait()
    with worker(stack):
        result = await asyncio.wait_for(
            stack.client.get_workflow_handle(f"rollout-{key}", result_type=RolloutStatus).result(), 90
        )
    assert result.state == "promoted"
    changes = [e.action for e in registry.audit(key)
               if e.source == f"rollout-{key}" and not e.action.startswith("signal_")]
    assert changes == ["rollout_claim", "apply_exposure", "apply_exposure", "apply_exposure", "promote"]
    assert registry.serving_state(key).stable_version == 2
    registry.close()


async def test_the_canaryflow_rollout_commands(stack: Stack) -> None:
    key = "cli-bot"
    registry = make_registry(stack.dir / "registry.db", key)
    plan_file = stack.dir / "plan.yaml"
    plan_file.write_text(json.dumps({**PLAN, "approvers": ["alice"]}))

    async def cf(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "canaryflow"),
            *args,
            env=stack.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode(), err.decode()

    with worker(stack):
        code, out, _ = await cf("rollout", "start", key, "2", "--plan", str(plan_file), "--by", "alice")
        assert code == 0 and f"started rollout-{key}" in out
        code, _, err = await cf("rollout", "start", key, "2", "--plan", str(plan_file))
        assert code == 1 and err.strip() == (
            f"error: a rollout of '{key}' is already running (workflow rollout-{key}): see "
            f"'canaryflow rollout status {key}', or abort it first"
        )
        await wait_status(stack, f"rollout-{key}", lambda s: s.state == "awaiting_approval")
        code, _, err = await cf("rollout", "approve", key, "--by", "mallory")
        assert (
            code == 1
            and "approve refused: 'mallory' is not an approver" in err
            and len(err.splitlines()) == 1
        )
        code, out, _ = await cf("rollout", "approve", key, "--by", "alice", "--comment", "looks good")
        assert code == 0 and "approve accepted: approved stage 'internal': looks good" in out
        await stack.client.get_workflow_handle(f"rollout-{key}").result()
        code, out, _ = await cf("rollout", "status", key, "--json")
        assert code == 0 and json.loads(out)["state"] == "promoted"
        code, out, _ = await cf("rollout", "status", key)
        assert code == 0 and "promoted" in out and "completed" in out
        code, out, _ = await cf("rollout", "status", key, "--watch")  # an ended rollout: one frame, exit
        assert code == 0 and "promoted" in out and "workflow completed" in out
        code, _, err = await cf("rollout", "status", "nobody")
        assert code == 1 and "no rollout of 'nobody'" in err
        code, _, err = await cf("rollout", "start", key, "2", "--plan", "slow")
        assert code == 1 and "--plan 'slow': neither a preset" in err
    assert [a.action for a in registry.audit(key) if a.action.endswith("refused")] == ["approval_refused"]
    registry.close()


async def test_the_worker_registers_missing_search_attributes(tmp_path: Path) -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(), data_converter=pydantic_data_converter, port=free_port()
    )
    try:
        assert await ensure_search_attributes(env.client) == [
            "CanaryflowConfigKey",
            "CanaryflowPercent",
            "CanaryflowStage",
            "CanaryflowState",
        ]
        assert await ensure_search_attributes(env.client) == []
    finally:
        await env.shutdown()
