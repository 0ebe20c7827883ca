"""Prometheus stopped during a rollout: the real ``analyze_stage`` activity records ERROR measurements
(never a pass), the stage does not advance, and past the gates' consecutive-error limit the plan's policy
rolls back to stable. Time-skipping Temporal server, a real Prometheus the test stops, a real registry."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.analysis import analyze_stage
from canaryflow.domain.gates import Verdict
from canaryflow.domain.rollout_status import RolloutStatus
from canaryflow.temporal import ensure_search_attributes, workflow_id
from tests.rollout_fixtures import drive, make_registry, unique_key
from tests.servers import Prometheus
from worker import build_worker

pytestmark = [pytest.mark.temporal, pytest.mark.prometheus]
TEST_SERVER = str(Path(".venv/bin/temporal-test-server").resolve())
LIMIT = 3
BLIP_ERRORS, BLIP_LIMIT = 3, 30  # errors seen before Prometheus restarts; a limit its restart stays under
PLAN = {
    "stages": [{"name": "canary-5", "kind": "percent", "percent": 5, "min_duration": "2m"},
               {"name": "full", "kind": "full"}],
    "gates": [{"metric": "error_rate", "margin": 0.01, "consecutive_error_limit": LIMIT},
              {"metric": "latency_p95", "margin": 0.2, "mode": "relative", "consecutive_error_limit": LIMIT}],
    "analysis_interval": "1m",
}


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=TEST_SERVER,
                                                                data_converter=pydantic_data_converter)
    await ensure_search_attributes(environment.client)
    yield environment
    await environment.shutdown()


async def test_prometheus_down_means_errors_then_rollback_never_promotion(
        env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prom = Prometheus()
    prom.start()
    monkeypatch.setenv("CANARYFLOW_PROMETHEUS_URL", prom.url)
    prom.stop()  # stopped before the first analysis interval and never back
    key = unique_key("prom")
    registry = make_registry(tmp_path / "registry.db", key)
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with build_worker(env.client, registry, task_queue=queue, activities=[analyze_stage]):
        handle = await env.client.start_workflow(
            "RolloutWorkflow", {"config_key": key, "candidate_version": 2, "plan": PLAN, "requested_by": "t"},
            id=workflow_id(key), task_queue=queue, result_type=RolloutStatus)
        seen_exposed = False

        async def watch(status: RolloutStatus) -> bool:
            nonlocal seen_exposed
            if status.applied_stage == 0 and status.state == "running":
                state = registry.serving_state(key)
                seen_exposed = seen_exposed or state.exposure.stage_kind == "percent"
            assert status.stage == "canary-5", "advanced on missing evidence"
            return False

        await drive(env, handle, watch, step=30)
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        status = await handle.query("status", result_type=RolloutStatus)
    assert seen_exposed
    assert status.state == "rolled_back" and status.stage == "canary-5"
    assert "analysis kept erroring" in str(failed.value.cause)
    measurements = [m for r in status.reports for m in r.measurements]
    assert measurements and all(m.verdict is Verdict.ERROR for m in measurements)
    assert all("Prometheus" in (m.evidence.note or "") for m in measurements)
    assert status.measured == LIMIT + 1  # rolled back right after the limit, not before, not later
    state = registry.serving_state(key)
    assert state.stable_version == 1 and state.exposure.stage_kind == "none"
    actions = [e.action for e in registry.audit(key) if e.source == workflow_id(key)]
    assert "promote" not in actions and actions.count("apply_exposure") == 1  # canary-5 only
    registry.close()


async def test_a_short_prometheus_outage_below_the_limit_does_not_roll_back(
        env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Prometheus down for fewer intervals than the limit, then back on the same port: ERRORs recorded, then
    the gate passes again and the rollout promotes. A custom gate on ``vector(1)`` passes whenever
    Prometheus answers, so the outage is the only thing measured. Real time (no skipping)."""
    prom = Prometheus()
    prom.start()
    monkeypatch.setenv("CANARYFLOW_PROMETHEUS_URL", prom.url)
    key = unique_key("blip")
    registry = make_registry(tmp_path / "registry.db", key)
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    plan = {"stages": [{"name": "canary-5", "kind": "percent", "percent": 5, "min_duration": "1s"},
                       {"name": "full", "kind": "full"}],
            "gates": [{"metric": "custom", "name": "prometheus_answers", "query": "vector(1)",
                       "success": "result >= 1", "consecutive_error_limit": BLIP_LIMIT}],
            "analysis_interval": "1s"}
    try:
        assert prom.proc is not None
        prom.proc.terminate()  # down before the first measurement ...
        prom.proc.wait(10)
        async with build_worker(env.client, registry, task_queue=queue, activities=[analyze_stage]):
            with env.auto_time_skipping_disabled():
                handle = await env.client.start_workflow(
                    "RolloutWorkflow", {"config_key": key, "candidate_version": 2, "plan": plan,
                                        "requested_by": "t"},
                    id=workflow_id(key), task_queue=queue, result_type=RolloutStatus)
                for _ in range(600):
                    status = await handle.query("status", result_type=RolloutStatus)
                    if status.measured >= BLIP_ERRORS:
                        break
                    await asyncio.sleep(0.05)
                assert status.state == "running" and status.stage == "canary-5", status.outcome
                await asyncio.to_thread(prom.start)  # ... and back (same port) before the limit
                result = await asyncio.wait_for(handle.result(), 120)
    finally:
        prom.stop()
    verdicts = [r.measurement.verdict for r in registry.measurements(key, stage="canary-5")]  # each one
    assert result.state == "promoted"
    assert verdicts[:BLIP_ERRORS] == [Verdict.ERROR] * BLIP_ERRORS
    assert Verdict.PASS in verdicts and verdicts.count(Verdict.ERROR) <= BLIP_LIMIT
    assert registry.serving_state(key).stable_version == 2
    registry.close()
