"""The registry (PostgreSQL) goes down: the gateway keeps serving from its cache and says so in /healthz;
a rollout's registry activities retry and carry on when it returns; nothing is written twice. The test runs
its own PostgreSQL server so it can stop and restart it (same data directory)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from temporalio.client import WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from canaryflow.domain.rollout_status import RolloutStatus
from canaryflow.gateway.app import build_app
from canaryflow.gateway.server import build_gateway, health_of
from canaryflow.metrics.instruments import Metrics
from canaryflow.registry import Registry
from canaryflow.serving.client import Client
from canaryflow.sim.engine import Simulator
from canaryflow.sim.server import SimServer, ThreadedServer
from canaryflow.temporal import ensure_search_attributes, workflow_id
from tests.rollout_fixtures import SEGMENTS
from tests.servers import Postgres, _pg_bin, wait_port
from tests.traffic_stack import sim_env, spec
from worker import build_worker

pytestmark = pytest.mark.postgres
TEST_SERVER = str(Path(".venv/bin/temporal-test-server").resolve())
STALE_AFTER = 1.0


class StoppablePostgres(Postgres):
    """A PostgreSQL server that can be stopped and started again on the same data directory and port."""

    def pause(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def resume(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        wait_port(self.port)


@pytest.fixture(scope="module")
def pg() -> Iterator[StoppablePostgres]:
    server = StoppablePostgres()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def wait_until(check: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_gateway_serves_from_cache_and_reports_stale(pg: StoppablePostgres) -> None:
    url = pg.create_database(f"gw_{uuid.uuid4().hex[:8]}")
    registry = Registry(url)
    registry.push_segments(SEGMENTS, by="test")
    registry.push_config(spec(), author="test")
    sim = SimServer(Simulator(seed=1, latency_scale=0.0))
    sim.start()
    with sim_env(sim):
        client = Client(registry, refresh_interval=0.05)
        _, plane = build_gateway(client=client, metrics=Metrics(), traffic_rate=1.0)
        app = build_app(plane, health=lambda: health_of(client, STALE_AFTER))
        gateway = ThreadedServer(app)
        gateway.start()
        body = {"model": "support-bot", "messages": [{"role": "user", "content": "hi"}],
                "canaryflow": {"variables": {"product": "Acme"}}}
        try:
            with httpx.Client(base_url=gateway.url, timeout=30) as http:
                def chat(user: str) -> httpx.Response:
                    return http.post("/v1/chat/completions", json={**body, "user": user})

                for i in range(20):
                    assert chat(f"a{i}").status_code == 200
                assert http.get("/healthz").status_code == 200
                pg.pause()
                try:
                    for i in range(50):  # served from the cache while the registry is down
                        r = chat(f"b{i}")
                        assert r.status_code == 200 and r.headers["x-canaryflow-version"] == "1", r.text
                    wait_until(lambda: http.get("/healthz").json().get("cache_stale") is True,
                               "a stale /healthz")
                    health = http.get("/healthz")
                    assert health.status_code == 503
                    assert health.json()["registry"].startswith("unreachable")
                    assert http.post("/v1/chat/completions", json=body).status_code == 200
                finally:
                    pg.resume()
                wait_until(lambda: http.get("/healthz").status_code == 200, "a healthy /healthz again: "
                           + http.get("/healthz").text)
                for i in range(10):
                    assert chat(f"c{i}").status_code == 200
        finally:
            gateway.stop()
            sim.stop()
    assert plane.metrics is not None
    assert plane.metrics.value("canaryflow_requests_total", {"config": "support-bot"}) == 81
    assert plane.traffic_log is not None
    plane.traffic_log.flush()
    engine = create_engine(url)
    with engine.connect() as conn:
        tables = [r[0] for r in conn.execute(text(
            "select table_name from information_schema.tables where table_name like '%traffic%'"))]
        assert tables
        for table in tables:
            cols = [r[0] for r in conn.execute(text(
                f"select column_name from information_schema.columns where table_name = '{table}'"))]
            if "request_id" in cols:
                dupes = conn.execute(text(f"select request_id, count(*) from {table} "
                                          "group by request_id having count(*) > 1")).all()
                assert dupes == [], f"{table} has rows written twice: {dupes[:3]}"
    engine.dispose()
    registry.close()


async def test_rollout_activities_retry_until_the_registry_returns(pg: StoppablePostgres) -> None:
    url = pg.create_database(f"ro_{uuid.uuid4().hex[:8]}")
    key = f"pg-{uuid.uuid4().hex[:6]}"
    registry = Registry(url)
    registry.push_segments(SEGMENTS, by="test")
    registry.push_config(spec(key), author="test")
    registry.push_config(spec(key, system="v2 for {{product}}"), author="test")
    plan = {"stages": [{"name": "canary-5", "kind": "percent", "percent": 5, "min_duration": "1s"},
                       {"name": "full", "kind": "full"}], "gates": []}
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=TEST_SERVER,
                                                        data_converter=pydantic_data_converter)
    try:
        await ensure_search_attributes(env.client)
        queue = f"tq-{uuid.uuid4().hex[:8]}"
        async with build_worker(env.client, registry, task_queue=queue, activities=[]):
            with env.auto_time_skipping_disabled():  # real retries against a real outage
                await asyncio.to_thread(pg.pause)
                try:
                    handle = await env.client.start_workflow(
                        "RolloutWorkflow", {"config_key": key, "candidate_version": 2, "plan": plan,
                                            "requested_by": "t"},
                        id=workflow_id(key), task_queue=queue, result_type=RolloutStatus)
                    deadline = time.monotonic() + 30
                    while True:  # wait until an activity has failed at least twice
                        desc = await handle.describe()
                        attempts = [a.attempt for a in desc.raw_description.pending_activities]
                        if attempts and max(attempts) >= 3:
                            break
                        assert desc.status == WorkflowExecutionStatus.RUNNING
                        assert time.monotonic() < deadline, "no retries seen"
                        await asyncio.sleep(0.2)
                finally:
                    await asyncio.to_thread(pg.resume)
                status = await asyncio.wait_for(handle.result(), 60)
    finally:
        await env.shutdown()
    assert status.state == "promoted"
    state = registry.serving_state(key)
    assert state.stable_version == 2 and state.exposure.stage_kind == "none"
    events = [(e.action, e.after.get("revision")) for e in registry.audit(key)
              if e.source == workflow_id(key)]
    actions = Counter(a for a, _ in events)
    # the claim at validation, one exposure per stage, then promote
    assert actions == Counter({"rollout_claim": 1, "apply_exposure": 2, "promote": 1}), events
    revisions = [e.after.get("revision") for e in registry.audit(key) if e.after.get("revision") is not None]
    assert len(revisions) == len(set(revisions)), "a revision was written twice"
    registry.close()
