"""End to end: a candidate whose error rate and latency are fine but whose answers fail a deterministic
evaluator is rolled back by ``eval_pass_rate`` in a shadow stage — before any user sees it — and a good one
passes and is promoted. Gateway and simulator over HTTP, a real Prometheus, the Temporal dev server."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter

from canaryflow.domain.plan import RolloutInput
from canaryflow.domain.rollout_status import RolloutStatus
from canaryflow.registry import Registry
from canaryflow.temporal import DevServer, start_dev_server, workflow_id
from tests.servers import Prometheus, free_port
from tests.traffic_stack import Stack, asking, running_stack, spec
from worker import build_worker

pytestmark = [pytest.mark.temporal, pytest.mark.prometheus]

SCHEMA = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"],
          "additionalProperties": False}
FORMAT = {"type": "json_schema", "name": "order_status", "schema": SCHEMA}
EVALUATORS = [{"name": "schema", "kind": "match_schema"}]
PLAN = {
    "stages": [{"name": "shadow", "kind": "shadow", "shadow_fraction": 1.0, "min_duration": "4s",
                "max_duration": "60s"},
               {"name": "full", "kind": "full"}],
    "gates": [{"metric": "eval_pass_rate", "evaluator": "schema", "margin": 0.2, "floor": 0.05},
              {"metric": "error_rate", "margin": 0.5, "dry_run": True}],  # shown, not deciding
    "analysis_interval": "2s", "on_inconclusive": "rollback",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    d = tmp_path_factory.mktemp("devserver")
    srv = start_dev_server(port=free_port(), ui_port=None, db_file=d / "temporal.db",
                           log_file=d / "server.log")
    yield srv
    srv.stop()


_traffic = asking(lambda n: f"Where is order A-{n}?")


async def _rollouts(server: DevServer, prometheus: Prometheus, stack: Stack, keys: list[str]) -> list[Any]:
    """Roll v2 of each of ``keys`` out at once, each under its own traffic; returns each workflow's
    result or its failure."""
    address = stack.url.removeprefix("http://")
    prometheus.add_target(address)
    prometheus.wait_scraped(address)
    stop = threading.Event()
    senders = [threading.Thread(target=_traffic, args=(stack, key, stop), daemon=True) for key in keys]
    for sender in senders:
        sender.start()
    client = await Client.connect(server.address, data_converter=pydantic_data_converter)
    queue = f"ev-{uuid.uuid4().hex[:8]}"
    registry = Registry(stack.registry.url)

    async def one(key: str) -> Any:
        inp = RolloutInput.model_validate(
            {"config_key": key, "candidate_version": 2, "plan": PLAN, "requested_by": "alice"})
        handle = await client.start_workflow("RolloutWorkflow", inp, id=workflow_id(key), task_queue=queue,
                                             result_type=RolloutStatus)
        try:
            return await asyncio.wait_for(handle.result(), 120)
        except WorkflowFailureError as exc:
            return exc

    try:
        async with build_worker(client, registry, task_queue=queue):
            return list(await asyncio.gather(*(one(key) for key in keys)))
    finally:
        stop.set()
        for sender in senders:
            sender.join(15)
        registry.close()


def _configs(key: str, candidate_marker: str) -> list[Any]:
    stable = spec(key, system="Answer with the order status.", response_format=FORMAT)
    candidate = spec(key, system=f"Answer with the status. {candidate_marker}", response_format=FORMAT,
                     evaluators=EVALUATORS)
    return [stable, candidate]


async def test_a_shadow_stage_rolls_back_answers_off_their_schema_and_promotes_good_ones(
    server: DevServer, prometheus: Prometheus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad, good = f"evq-{uuid.uuid4().hex[:8]}", f"evg-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CANARYFLOW_PROMETHEUS_URL", prometheus.url)
    configs = [*_configs(bad, "[sim:schema_error_rate=0.6]"), *_configs(good, "")]
    with running_stack(tmp_path, configs=configs) as stack:
        failed, promoted = await _rollouts(server, prometheus, stack, [bad, good])
        # the bad candidate: rolled back in shadow by its evaluator's pass rate, with the evidence
        assert isinstance(failed, WorkflowFailureError), failed
        message = str(failed.cause)
        assert "shadow" in message and "schema_pass_rate FAIL" in message, message
        assert "vs stable 1 (" in message and "interval [" in message, message  # scores and samples
        assert 'evaluator="schema"' in message
        assert "error_rate FAIL" not in message  # its errors and latency are fine: quality decided
        # no user saw it: every live request was stable's
        assert stack.count("canaryflow_requests_total", config=bad, variation="candidate") == 0
        state = stack.registry.serving_state(bad)
        assert state.stable_version == 1 and state.exposure.candidate_version is None
        # the good candidate: its evaluator passes in shadow, then it is promoted
        assert isinstance(promoted, RolloutStatus), str(getattr(promoted, "cause", promoted))
        assert promoted.state == "promoted", promoted
        shadow = [v for v in promoted.verdicts if v.stage == "shadow"]
        assert shadow and shadow[-1].verdict.value == "PASS", shadow
        assert stack.registry.serving_state(good).stable_version == 2
