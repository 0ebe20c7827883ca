"""Replay the recorded histories of the rollout scenarios against today's workflow code, so a change that
breaks determinism fails CI. Regenerate them (after an intended, versioned change) with
``CANARYFLOW_SAVE_HISTORIES=1 .venv/bin/pytest tests/test_rollout_timeskipping.py``."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

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


@pytest.mark.parametrize("path", HISTORIES, ids=[p.name.removesuffix(".json.gz") for p in HISTORIES])
async def test_history_replays_deterministically(path: Path) -> None:
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
