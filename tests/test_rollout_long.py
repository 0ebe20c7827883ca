"""A 14-day rollout with 10 gates and a 1-minute analysis interval, on the time-skipping test server: the
carried state stays bounded (under Temporal's 256 KiB payload budget) through several continue-as-new runs,
the running counters never forget a measurement (one gate's early failures still count thousands of
measurements later), every measurement's evidence reaches the registry, and an abort at the end of the 14
days still restores stable.

Each stage measures its 10 gates every minute for its first 7.5 hours (Argo's ``count: 450``), then holds
their final verdicts until its minimum duration ends: measuring all 20,160 minutes would cost ~15 minutes of
this machine's CPU (~30 ms of SDK and sandbox work per interval), and the state's bound does not depend on
it — it is reached after a few intervals (the last reports, verdicts and events are capped; the counters
are fixed-size). The analysis activity answers instantly (scripted numbers; the real one is tested against
Prometheus). The largest payload of every run is printed (``pytest -s tests/test_rollout_long.py``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.common.v1 import Payloads
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from canaryflow.domain.analysis import AnalysisReport, AnalysisRequest
from canaryflow.domain.gates import Evidence, Measurement, Verdict
from canaryflow.domain.rollout_status import RolloutStatus
from canaryflow.temporal import workflow_id
from tests.rollout_fixtures import advance, make_registry, unique_key
from tests.test_rollout_timeskipping import start_env
from worker import build_worker

pytestmark = pytest.mark.temporal
LIMIT = 256 * 1024
DAYS = 14
COUNT = 450
GATES = [{"metric": "custom", "name": f"gate_{n:02d}", "success": "result >= 0", "count": COUNT,
          "query": f'sum(increase(canaryflow_requests_total{{$selector,gate="{n:02d}"}}[$window]))',
          **({"failure_limit": 5} if n == 3 else {})} for n in range(10)]
PLAN: dict[str, Any] = {
    "stages": [
        {"name": "canary-5", "kind": "percent", "percent": 5, "min_duration": f"{DAYS // 2}d"},
        {"name": "canary-10", "kind": "percent", "percent": 10, "min_duration": f"{DAYS}d"},
        {"name": "full", "kind": "full"},
    ],
    "gates": GATES,
    "analysis_interval": "1m",
    "notify": [],
}


class InstantAnalysis:
    """``analyze_stage`` that answers at once, with evidence as long as real ones: every gate PASSes, but
    ``gate_03`` FAILs its first 3 measurements of each stage (its ``failure_limit`` of 5 tolerates them)."""

    def __init__(self) -> None:
        self.calls = 0
        self.per_stage: dict[str, int] = {}

    @activity.defn(name="analyze_stage")
    async def analyze_stage(self, req: AnalysisRequest) -> AnalysisReport:
        self.calls += 1
        n = self.per_stage[req.stage] = self.per_stage.get(req.stage, 0) + 1
        now = time.time()

        def verdict(gate: str) -> Verdict:
            return Verdict.FAIL if gate == "gate_03" and n <= 3 else Verdict.PASS

        return AnalysisReport(at=now, candidate_samples=500, stable_samples=9500, measurements=[
            Measurement(gate=g.label, verdict=verdict(g.label), at=now, evidence=Evidence(
                candidate_value=0.01, stable_value=0.01, candidate_samples=500, stable_samples=9500,
                queries=[(g.query or "").replace("$window", "60s")] * 2, note="scripted"))
            for g in req.gates])


def _payload_sizes(event: HistoryEvent) -> Iterator[int]:
    """The size of every payload an event carries (inputs, results, continue-as-new input)."""
    for desc, value in event.ListFields():
        if not desc.name.endswith("_attributes"):
            continue
        for _, inner in value.ListFields():
            if isinstance(inner, Payloads):
                yield sum(len(p.SerializeToString()) for p in inner.payloads)


@pytest.fixture
async def env() -> Any:
    environment = await start_env()
    yield environment
    await environment.shutdown()


async def test_a_14_day_rollout_with_10_gates_stays_bounded_and_obeys_an_abort_at_the_end(
        env: WorkflowEnvironment, tmp_path: Path) -> None:
    key = unique_key("long")
    registry = make_registry(tmp_path / "registry.db", key)
    analysis = InstantAnalysis()
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with build_worker(env.client, registry, task_queue=queue, activities=[analysis.analyze_stage]):
        handle = await env.client.start_workflow(
            "RolloutWorkflow", {"config_key": key, "candidate_version": 2, "plan": PLAN,
                                "requested_by": "carol"},
            id=workflow_id(key), task_queue=queue, result_type=RolloutStatus)
        start = (await env.get_current_time()).timestamp()
        sizes = []
        while (await env.get_current_time()).timestamp() < start + DAYS * 86400 - 3600:
            await advance(env, 3 * 3600)  # the clock skips while the worker measures every minute
            sizes.append(len((await handle.query("status", result_type=RolloutStatus)).model_dump_json()))
        status = await handle.query("status", result_type=RolloutStatus)
        assert status.stage == "canary-10" and status.state == "running", status.waiting_for
        assert status.counters["gate_03"].failed == 3 and status.counters["gate_03"].count == COUNT
        await handle.signal("abort", {"by": "dave", "reason": "end of the test"})
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        final = await handle.query("status", result_type=RolloutStatus)

    runs, largest, run_id = 0, 0, handle.first_execution_run_id
    while run_id:
        history = await env.client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        runs += 1
        largest = max([largest, *(s for e in history.events for s in _payload_sizes(e))])
        last = history.events[-1]
        run_id = (last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                  if last.HasField("workflow_execution_continued_as_new_event_attributes") else "")
    carried = len(final.model_dump_json().encode())
    print(f"\n{DAYS}-day rollout, {len(GATES)} gates, 1-min interval: {analysis.calls} analyses, {runs} runs "
          f"(continue-as-new {runs - 1}x), largest payload {largest} bytes, carried state {min(sizes)}-"
          f"{max(sizes)} bytes (final {carried})")
    assert runs >= 3 and final.continued == runs - 1
    assert largest < LIMIT and max(sizes) < LIMIT and carried < LIMIT
    assert final.state == "aborted" and final.stage == "canary-10"
    state = registry.serving_state(key)
    assert state.stable_version == 1 and state.exposure.stage_kind == "none"
    assert analysis.per_stage == {"canary-5": COUNT, "canary-10": COUNT}  # then the gates were final
    assert [e.stage for e in final.stage_ends] == ["canary-5"]
    first_stage = registry.measurements(key, stage="canary-5", limit=100_000)
    assert len(first_stage) == 10 * COUNT  # all its evidence, in the registry
    assert first_stage[0].measurement.evidence.queries  # with the queries the workflow no longer carries
    assert [m.measurement.verdict for m in first_stage if m.measurement.gate == "gate_03"][:4] == [
        Verdict.FAIL] * 3 + [Verdict.PASS]
    registry.close()
