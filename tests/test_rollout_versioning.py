"""The plan is frozen into the rollout's history: a preset edited, or removed, while a rollout naming it is
in flight changes nothing for that rollout — even on a worker that replays every history from scratch (no
workflow cache), as a freshly deployed worker does."""

from __future__ import annotations

import pytest

from canaryflow.domain import plan as plans
from canaryflow.domain.plan import Plan
from canaryflow.domain.rollout_status import RolloutStatus
from tests.rollout_fixtures import drive, make_registry, unique_key
from tests.test_rollout_timeskipping import PLAN, ScriptedAnalysis, _true, env  # noqa: F401 (env fixture)
from worker import build_worker

pytestmark = pytest.mark.temporal


async def test_a_preset_edited_or_removed_mid_flight_changes_nothing_for_the_rollout(
        env, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    key = unique_key("frozen")
    registry = make_registry(tmp_path / "registry.db", key)
    preset = Plan.model_validate({**PLAN, "name": "team-plan"})
    monkeypatch.setitem(plans.PRESETS, "team-plan", preset)
    queue = f"tq-{key}"
    analysis = ScriptedAnalysis()
    async with build_worker(env.client, registry, task_queue=queue, activities=[analysis.analyze_stage],
                            max_cached_workflows=0):  # every task replays the whole history
        handle = await env.client.start_workflow(
            "RolloutWorkflow", {"config_key": key, "candidate_version": 2, "plan": "team-plan",
                                "requested_by": "carol"},  # a preset name, as `temporal workflow start`
            id=f"rollout-{key}", task_queue=queue, result_type=RolloutStatus)
        status = await drive(env, handle, lambda s: _true(s.state == "awaiting_approval"), step=120)
        assert status.stage == "internal" and status.logic == 2
        edited = {**PLAN, "stages": [s for s in PLAN["stages"] if s["name"] != "internal"]}
        monkeypatch.setitem(plans.PRESETS, "team-plan", Plan.model_validate(edited))  # a stage removed
        await handle.signal("approve", {"by": "alice", "stage": "internal"})
        status = await drive(env, handle, lambda s: _true(s.stage == "canary-5"), step=60)
        monkeypatch.delitem(plans.PRESETS, "team-plan")  # and then the preset itself
        result: RolloutStatus = await handle.result()
    assert result.state == "promoted", result.outcome
    assert [s.name for s in result.plan.stages] == ["shadow", "internal", "canary-5", "full"]
    assert [e.stage for e in result.stage_ends] == ["shadow", "internal", "canary-5"]
    assert registry.serving_state(key).stable_version == 2
    registry.close()
