"""A shadow stage with ``replay_sample`` replays logged requests against the candidate when it starts, so
its gates are judged before any live traffic reaches the candidate (time-skipping server, the real
``shadow_replay_stage`` activity, the provider simulator over HTTP, a SQLite registry with a traffic log)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.shadow import shadow_replay_stage
from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.plan import Plan
from canaryflow.domain.rollout_status import RolloutStatus
from canaryflow.providers import factory
from canaryflow.registry import Registry
from canaryflow.registry import traffic as tlog
from canaryflow.sim import QUESTIONS, SimServer, Simulator
from canaryflow.temporal import ensure_search_attributes, workflow_id
from tests.rollout_fixtures import ScriptedAnalysis
from tests.servers import free_port
from worker import build_worker

pytestmark = pytest.mark.temporal
TEST_SERVER = str(Path(sys.executable).parent / "temporal-test-server")
KEY = "replay-bot"
PLAN: dict[str, Any] = {
    "stages": [
        {"name": "shadow", "kind": "shadow", "shadow_fraction": 0.2, "min_duration": "5m",
         "replay_sample": 20, "gates": [{"metric": "shadow_agreement", "margin": 0.3, "min_samples": 10}]},
        {"name": "full", "kind": "full"},
    ],
    "analysis_interval": "1m",
}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    server = SimServer(Simulator(seed=5, latency_scale=0.0), port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def registry(tmp_path: Path, sim: SimServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """v1 stable (always right), v2 a good candidate, v3 one that answers wrong; 20 logged requests."""
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    monkeypatch.setenv("CANARYFLOW_DB_URL", url)  # the activity opens the worker's registry from settings
    monkeypatch.setenv("OPENAI_BASE_URL", sim.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-replay")
    factory.clear_cache()
    reg = Registry(url)
    for marker in ("[sim:quality=1]", "[sim:quality=1] Be exact.", "[sim:quality=0]"):
        reg.push_config(ConfigSpec.model_validate({
            "key": KEY, "provider": "openai", "model": "gpt-4o-mini",
            "messages": [{"role": "system", "content": f"Answer briefly. {marker}"}],
            "parameters": {"temperature": 0.0, "max_tokens": 50}}))
    tlog.record_traffic(reg, [
        tlog.TrafficRecord(request_id=uuid.uuid4().hex, config_key=KEY, version=1, variation="stable",
                           request={"messages": [{"role": "user", "content": q.prompt}], "parameters": {}},
                           response={"text": q.answer, "finish_reason": "stop"}, latency_ms=10.0,
                           input_tokens=20, output_tokens=5)
        for q in QUESTIONS])
    yield reg
    reg.close()
    factory.clear_cache()


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=TEST_SERVER, data_converter=pydantic_data_converter)
    await ensure_search_attributes(environment.client)
    yield environment
    await environment.shutdown()


async def _rollout(env: WorkflowEnvironment, registry: Registry, version: int,
                   analysis: ScriptedAnalysis) -> Any:
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with build_worker(env.client, registry, task_queue=queue,
                            activities=[analysis.analyze_stage, shadow_replay_stage]):
        handle = await env.client.start_workflow(
            "RolloutWorkflow", {"config_key": KEY, "candidate_version": version, "plan": PLAN,
                                "requested_by": "alice"},
            id=workflow_id(KEY), task_queue=queue, result_type=RolloutStatus)
        try:
            return await handle.result()
        except WorkflowFailureError as exc:
            return exc


def test_replay_sample_belongs_to_shadow_stages_only() -> None:
    with pytest.raises(ValueError, match="'replay_sample' belongs to shadow stages"):
        Plan.model_validate({"stages": [{"name": "c", "kind": "percent", "percent": 5, "replay_sample": 10},
                                        {"name": "full", "kind": "full"}]})


async def test_a_candidate_that_disagrees_is_rolled_back_before_any_live_analysis(
        env: WorkflowEnvironment, registry: Registry) -> None:
    analysis = ScriptedAnalysis()  # live analyses would PASS: the replay alone must decide
    outcome = await _rollout(env, registry, 3, analysis)
    assert isinstance(outcome, WorkflowFailureError)
    message = str(outcome.cause)
    assert "shadow" in message and "shadow_agreement FAIL" in message, message
    assert analysis.calls == []
    state = registry.serving_state(KEY)
    assert state.stable_version == 1 and state.exposure.stage_kind == "none"


async def test_a_candidate_that_agrees_passes_the_replay_and_is_promoted(
        env: WorkflowEnvironment, registry: Registry) -> None:
    analysis = ScriptedAnalysis()
    status = await _rollout(env, registry, 2, analysis)
    assert isinstance(status, RolloutStatus), status
    assert status.state == "promoted"
    first = next(v for v in status.verdicts if v.stage == "shadow")  # the replay's, before any live analysis
    assert first.verdict.value == "PASS" and first.candidate_samples == 20  # 20 replayed (live: 10,000)
    assert registry.serving_state(KEY).stable_version == 2
