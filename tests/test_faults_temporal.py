"""Temporal-side faults on the real dev server with ``python worker.py`` subprocesses and a SQLite registry:

- the worker is SIGKILLed at 10 seeded random points of a rollout and restarted each time: the rollout ends
  promoted (what its gates call for), each exposure change is applied once with no revision gap, and the
  webhook receiver gets every event under one idempotency key (a retried delivery repeats the same key);
- the dev server itself is stopped mid-rollout and started again on the same database file: the rollout
  goes on to promotion.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter

from canaryflow.domain.rollout_status import RolloutStatus
from canaryflow.sim.server import ThreadedServer
from canaryflow.temporal import DevServer, start_dev_server, workflow_id
from tests.rollout_fixtures import make_registry
from tests.servers import Prometheus, free_port

pytestmark = [pytest.mark.temporal, pytest.mark.slow_faults]
ROOT = Path(__file__).resolve().parent.parent
KILLS = 10
SEED = 20261125


@dataclass
class Receiver:
    """A webhook endpoint recording every delivery with its Idempotency-Key."""

    deliveries: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def hook(request: Request) -> JSONResponse:
            self.deliveries.append((request.headers.get("idempotency-key", ""), await request.json()))
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])

    def by_key(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for key, body in self.deliveries:
            out[key].append(body)
        return out


def plan(hook: str, stage_s: int) -> dict[str, Any]:
    return {"stages": [
        {"name": "internal", "kind": "segments", "segments": ["internal"], "min_duration": f"{stage_s}s"},
        {"name": "canary-5", "kind": "percent", "percent": 5, "min_duration": f"{stage_s}s"},
        {"name": "canary-20", "kind": "percent", "percent": 20, "min_duration": f"{stage_s}s"},
        {"name": "full", "kind": "full"}], "gates": [], "notify": [hook]}


class Rig:
    def __init__(self, server: DevServer, tmp: Path, key: str, prometheus_url: str = "") -> None:
        self.server, self.tmp, self.key, self.prometheus_url = server, tmp, key, prometheus_url
        self.db = tmp / "registry.db"
        self.registry = make_registry(self.db, key)
        self.log = tmp / "worker.log"

    def env(self) -> dict[str, str]:
        return {**os.environ, "CANARYFLOW_DB_URL": f"sqlite:///{self.db}",
                "CANARYFLOW_PROMETHEUS_URL": self.prometheus_url or "http://127.0.0.1:1",
                "CANARYFLOW_TEMPORAL_ADDRESS": self.server.address, "CANARYFLOW_TASK_QUEUE": "canaryflow"}

    def start_worker(self) -> subprocess.Popen[bytes]:
        with open(self.log, "ab") as out:
            return subprocess.Popen([sys.executable, str(ROOT / "worker.py")], cwd=ROOT, env=self.env(),
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, proc: subprocess.Popen[bytes], seen: int, timeout: float = 60) -> int:
        """Wait for the worker's start line (the ``seen``-th + 1 in the shared log)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            count = self.log.read_text(errors="replace").count("worker: task queue")
            if count > seen:
                return count
            assert proc.poll() is None, self.log.read_text()[-2000:]
            time.sleep(0.05)
        raise AssertionError("the worker did not start")

    def audit_checks(self) -> None:
        wid = workflow_id(self.key)
        events = [e for e in self.registry.audit(self.key) if e.source == wid]
        actions = [e.action for e in events if e.action in ("apply_exposure", "promote", "clear_exposure")]
        assert actions == ["apply_exposure"] * 4 + ["promote"], actions
        revisions = [e.after.get("revision") for e in events if e.after.get("revision") is not None]
        assert revisions == list(range(revisions[0], revisions[0] + len(revisions))), revisions
        state = self.registry.serving_state(self.key)
        assert state.stable_version == 2 and state.exposure.stage_kind == "none"


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    rec = Receiver()
    server = ThreadedServer(rec.app())
    server.start()
    try:
        yield rec, f"{server.url}/hook"
    finally:
        server.stop()


def check_notifications(rec: Receiver) -> None:
    by_key = rec.by_key()
    for key, bodies in by_key.items():
        assert key, "a delivery without an Idempotency-Key"
        assert all(b == bodies[0] for b in bodies), f"retries of {key} differ"
    events = sorted(bodies[0]["event"] for bodies in by_key.values())
    assert events == ["promoted"] + ["stage_started"] * 4, events


async def kill_repeatedly(rig: Rig, handle: Any, kills: int, seed: int) -> list[str]:
    """Start a worker, let it run a seeded random moment after it is ready, SIGKILL it; ``kills`` times
    (fewer if the rollout ends first). Returns where each kill landed (stage/what it was doing)."""
    rng, seen, kill_points = random.Random(seed), 0, []
    for _ in range(kills):
        proc = rig.start_worker()
        seen = await asyncio.to_thread(rig.wait_ready, proc, seen)
        await asyncio.sleep(rng.uniform(0.0, 1.2))
        with contextlib.suppress(Exception):
            status = await handle.query("status", result_type=RolloutStatus, rpc_timeout=None)
            kill_points.append(f"{status.stage}/{status.waiting_for or status.state}")
        proc.kill()  # SIGKILL: no graceful shutdown, wherever it is
        proc.wait()
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            break
    print("kill points:", json.dumps(kill_points))
    return kill_points


async def test_worker_sigkilled_at_random_points(tmp_path: Path,
                                                 receiver: tuple[Receiver, str]) -> None:
    rec, hook = receiver
    server = start_dev_server(port=free_port(), ui_port=None, db_file=tmp_path / "temporal.db",
                              log_file=tmp_path / "server.log")
    rig = Rig(server, tmp_path, f"kill-{uuid.uuid4().hex[:6]}")
    try:
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        handle = await client.start_workflow(
            "RolloutWorkflow", {"config_key": rig.key, "candidate_version": 2, "plan": plan(hook, 5),
                                "requested_by": "t"},
            id=workflow_id(rig.key), task_queue="canaryflow", result_type=RolloutStatus)
        kill_points = await kill_repeatedly(rig, handle, KILLS, SEED)
        final = rig.start_worker()
        try:
            result = await asyncio.wait_for(handle.result(), 120)
        finally:
            stop(final)
        assert result.state == "promoted", result
        # up to KILLS kills, fewer when the rollout's 15 s of stages end first (a fast machine restarts its
        # worker sooner and so makes them faster; the count is the machine's pace, not the rollout's doing)
        assert len(kill_points) >= KILLS // 2, kill_points
        assert len({p.split("/")[0] for p in kill_points}) >= 2, f"kills all in one place: {kill_points}"
        rig.audit_checks()
        check_notifications(rec)
    finally:
        rig.registry.close()
        server.stop()


@pytest.mark.prometheus
async def test_worker_sigkilled_during_a_failing_rollout_restores_stable_once(
        tmp_path: Path, receiver: tuple[Receiver, str], prometheus: Prometheus) -> None:
    """The gate fails (a custom gate on ``vector(0)`` that wants >= 1, measured on real Prometheus by the
    worker's real analysis activity); kills land during the stage, the measurement and the compensation."""
    rec, hook = receiver
    server = start_dev_server(port=free_port(), ui_port=None, db_file=tmp_path / "temporal.db",
                              log_file=tmp_path / "server.log")
    rig = Rig(server, tmp_path, f"killfail-{uuid.uuid4().hex[:6]}", prometheus_url=prometheus.url)
    failing = {"stages": [{"name": "canary-5", "kind": "percent", "percent": 5, "min_duration": "10s"},
                          {"name": "full", "kind": "full"}],
               "gates": [{"metric": "custom", "name": "always_low", "query": "vector(0)",
                          "success": "result >= 1"}], "analysis_interval": "2s", "notify": [hook]}
    try:
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        handle = await client.start_workflow(
            "RolloutWorkflow", {"config_key": rig.key, "candidate_version": 2, "plan": failing,
                                "requested_by": "t"},
            id=workflow_id(rig.key), task_queue="canaryflow", result_type=RolloutStatus)
        await kill_repeatedly(rig, handle, 6, SEED + 1)
        final = rig.start_worker()
        try:
            with pytest.raises(WorkflowFailureError) as failed:
                await asyncio.wait_for(handle.result(), 120)
        finally:
            stop(final)
        assert "gate failed" in str(failed.value.cause)
        wid = workflow_id(rig.key)
        actions = [e.action for e in rig.registry.audit(rig.key) if e.source == wid
                   and e.action in ("apply_exposure", "clear_exposure", "promote")]
        assert actions == ["apply_exposure", "clear_exposure"], actions
        assert [e.action for e in rig.registry.audit(rig.key)].count("rollout_rolled_back") == 1
        state = rig.registry.serving_state(rig.key)
        assert state.stable_version == 1 and state.exposure.stage_kind == "none"
        by_key = rec.by_key()
        assert all(all(b == bodies[0] for b in bodies) for bodies in by_key.values())
        assert sorted(bodies[0]["event"] for bodies in by_key.values()) == ["rolled_back", "stage_started"]
    finally:
        rig.registry.close()
        server.stop()


async def test_dev_server_restarted_mid_rollout(tmp_path: Path, receiver: tuple[Receiver, str]) -> None:
    rec, hook = receiver
    port = free_port()
    db_file = tmp_path / "temporal.db"
    server = start_dev_server(port=port, ui_port=None, db_file=db_file, log_file=tmp_path / "server.log")
    rig = Rig(server, tmp_path, f"restart-{uuid.uuid4().hex[:6]}")
    worker = rig.start_worker()
    try:
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        handle = await client.start_workflow(
            "RolloutWorkflow", {"config_key": rig.key, "candidate_version": 2, "plan": plan(hook, 3),
                                "requested_by": "t"},
            id=workflow_id(rig.key), task_queue="canaryflow", result_type=RolloutStatus)
        deadline = time.monotonic() + 60
        while True:
            status = await handle.query("status", result_type=RolloutStatus)
            if status.applied_stage is not None and status.applied_stage >= 1:
                break
            assert time.monotonic() < deadline, status
            await asyncio.sleep(0.2)
        server.stop()  # the whole Temporal server goes away mid-stage ...
        await asyncio.sleep(2)
        server = start_dev_server(port=port, ui_port=None, db_file=db_file,
                                  log_file=tmp_path / "server2.log")  # ... and comes back on the same file
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        result = await asyncio.wait_for(
            client.get_workflow_handle(workflow_id(rig.key), result_type=RolloutStatus).result(), 120)
        assert result.state == "promoted"
        assert worker.poll() is None, "the worker died with the server instead of reconnecting"
        rig.audit_checks()
        check_notifications(rec)
    finally:
        stop(worker)
        rig.registry.close()
        server.stop()


async def test_worker_sigkilled_during_compensation_restores_stable_once(
        tmp_path: Path, receiver: tuple[Receiver, str]) -> None:
    """The registry refuses the restore (a trigger on the real SQLite file), the worker is SIGKILLed while
    the restore is being retried, the registry accepts again, a new worker finishes the compensation."""
    from tests.test_rollout_safety import Refusal

    rec, hook = receiver
    server = start_dev_server(port=free_port(), ui_port=None, db_file=tmp_path / "temporal.db",
                              log_file=tmp_path / "server.log")
    rig = Rig(server, tmp_path, f"killcomp-{uuid.uuid4().hex[:6]}")
    held = {"stages": [{"name": "canary-5", "kind": "percent", "percent": 5, "min_duration": "1h"},
                       {"name": "full", "kind": "full"}], "gates": [], "notify": [hook]}
    refusal = Refusal(rig.registry)
    try:
        deadline = time.monotonic() + 60
        while True:  # the port opens before the frontend reports healthy
            try:
                client = await Client.connect(server.address, data_converter=pydantic_data_converter)
                break
            except RuntimeError:
                assert time.monotonic() < deadline, "the dev server never became healthy"
                await asyncio.sleep(0.2)
        handle = await client.start_workflow(
            "RolloutWorkflow", {"config_key": rig.key, "candidate_version": 2, "plan": held,
                                "requested_by": "t"},
            id=workflow_id(rig.key), task_queue="canaryflow", result_type=RolloutStatus)
        proc = rig.start_worker()
        await asyncio.to_thread(rig.wait_ready, proc, 0)
        deadline = time.monotonic() + 60
        while rig.registry.serving_state(rig.key).exposure.stage_kind != "percent" or not any(
                body["event"] == "stage_started" for _, body in rec.deliveries):  # the stage fully open
            assert time.monotonic() < deadline, "the canary was never exposed"
            await asyncio.sleep(0.1)
        refusal.on()
        await handle.signal("abort", {"by": "ops", "reason": "incident 11"})
        while True:  # the restore has failed at least once and is being retried
            desc = await handle.describe()
            attempts = [a.attempt for a in desc.raw_description.pending_activities
                        if a.activity_type.name == "restore_stable"]
            if attempts and max(attempts) >= 2:
                break
            assert time.monotonic() < deadline, "no restore retries seen"
            await asyncio.sleep(0.1)
        proc.kill()  # SIGKILL in the middle of the compensation
        proc.wait()
        refusal.off()
        final = rig.start_worker()
        try:
            with pytest.raises(WorkflowFailureError) as failed:
                await asyncio.wait_for(handle.result(), 120)
        finally:
            stop(final)
        assert "aborted by ops: incident 11" in str(failed.value.cause)
        state = rig.registry.serving_state(rig.key)
        assert (state.stable_version, state.exposure.stage_kind, state.owner) == (1, "none", None)
        actions = [e.action for e in rig.registry.audit(rig.key)]
        assert actions.count("clear_exposure") == 1 and actions.count("rollout_aborted") == 1, actions
        by_key = rec.by_key()
        assert all(all(b == bodies[0] for b in bodies) for bodies in by_key.values())
        assert sorted(bodies[0]["event"] for bodies in by_key.values()) == ["rolled_back", "stage_started"]
    finally:
        rig.registry.close()
        server.stop()
