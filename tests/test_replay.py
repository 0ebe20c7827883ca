"""Replay the histories recorded by earlier releases against today's workflow code, so a change that breaks
determinism fails CI.

``tests/histories/`` is append-only: a history is never rewritten or deleted — a change that fails to replay
one is a change that would wedge the rollouts in flight, so it goes behind ``workflow.patched`` instead (see
``docs/operations.md``). ``previous_release_inflight_*`` are rollouts caught mid-flight (awaiting approval,
after a continue-as-new) by the release before the bounded-state change: today's code must pick them up
where they were. New histories are added beside the old ones (``CANARYFLOW_RECORD_HISTORIES=<release>``,
see ``tests/rollout_fixtures.py``)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from canaryflow.temporal import names
from worker import PASSTHROUGH
from workflows.rollout import RolloutWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json.gz"))


def test_the_scenarios_have_recorded_histories() -> None:
    names = {p.name.split("-")[0] for p in HISTORIES}
    for scenario in (
        "test_default_plan_end_to_end",
        "test_approval_timeout_rolls_back",
        "test_abort",
        "test_reject_during_the_approval_wait",
        "test_promote_skips_a_stage_and_promote_full_finishes",
        "test_cancellation_during_the_approval_wait_restores_stable",
    ):
        assert scenario in names, f"no recorded history for {scenario}"
    assert any("-run1" in p.name for p in HISTORIES), "no continue-as-new run recorded"


async def _replay(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, gzip.decompress(path.read_bytes()).decode())
    replayer = Replayer(
        workflows=[RolloutWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
        ),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.name.removesuffix(".json.gz") for p in HISTORIES])
async def test_history_replays_deterministically(path: Path) -> None:
    await _replay(path)


async def test_in_flight_rollouts_of_the_previous_release_replay_across_the_code_change() -> None:
    """Rollouts the previous release left waiting (for an approval; in canary-10 after a continue-as-new)
    replay on today's code: the new logic (bounded state, frozen plan, evidence in the registry) sits behind
    ``workflow.patched``, so a worker deployed with it resumes them where they were."""
    inflight = [p for p in HISTORIES if p.name.startswith("previous_release_inflight_")]
    assert len(inflight) >= 3, "the previous release's in-flight histories are missing"
    for path in inflight:
        history = json.loads(gzip.decompress(path.read_bytes()))
        last = history["events"][-1]["eventType"]
        assert last in ("EVENT_TYPE_TIMER_STARTED", "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW"), last
        assert names.PATCH_LOGIC_2 not in json.dumps(history)  # recorded before the patch existed
        await _replay(path)
