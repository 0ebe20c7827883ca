"""A stage held INCONCLUSIVE, on the time-skipping test server: it says so, asks for a decision (state,
``waiting for``, event, notification), never advances by itself however long it waits — even with no
max_duration and ``on_inconclusive: extend`` — and goes on when someone approves."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console
from temporalio.api.sdk.v1 import WorkflowMetadata

from canaryflow.cli.rollout_cmds import recorded, render
from canaryflow.domain.gates import Verdict
from canaryflow.domain.rollout_status import RolloutStatus
from tests.rollout_fixtures import Webhook, advance, drive
from tests.test_rollout_timeskipping import Rig, _true, env  # noqa: F401 (the env fixture)
from tests.test_rollout_timeskipping import rig as rig

pytestmark = pytest.mark.temporal
INC, PASS = Verdict.INCONCLUSIVE, Verdict.PASS


async def test_a_stage_held_inconclusive_asks_and_never_advances_by_itself(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = Webhook()
    monkeypatch.setenv("CF_TEST_HOOK", hook.url)
    plan: dict[str, Any] = {
        "stages": [{"name": "canary-5", "kind": "percent", "percent": 5, "min_duration": "5m"},
                   {"name": "full", "kind": "full"}],
        "gates": [{"metric": "error_rate", "margin": 0.2, "mode": "relative", "inconclusive_limit": 2}],
        "analysis_interval": "1m", "on_inconclusive": "extend", "notify": ["env:CF_TEST_HOOK"],
    }
    rig.analysis.script = {"canary-5": [INC, INC, INC, PASS]}  # then PASS forever: too late, it is held
    try:
        handle = await rig.start(plan=plan)
        status = await drive(rig.env, handle, lambda s: _true(s.state == "awaiting_approval"), step=60)
        assert status.approval is not None and status.approval.deadline is None
        assert "held INCONCLUSIVE" in status.approval.why and "inconclusive_limit 2" in status.approval.why
        assert status.waiting_for.startswith("a decision on canary-5: held INCONCLUSIVE")
        await advance(rig.env, 2 * 3600)  # two hours of passing measurements later (past the old 100 cap) ...
        status = await handle.query("status", result_type=RolloutStatus)
        assert status.stage == "canary-5" and status.state == "awaiting_approval"  # ... still asking
        assert status.counters["error_rate"].inconclusive == 3 and status.measured > 100
        meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        details = meta.current_details  # the Temporal UI's view says so too, and where the evidence is
        assert "held INCONCLUSIVE" in details and f"canaryflow rollout status {rig.key} --evidence" in details
        await handle.signal("approve", {"by": "alice"})
        result: RolloutStatus = await handle.result()
    finally:
        hook.close()
    assert result.state == "promoted" and [e.action for e in result.events].count("decision_asked") == 1
    assert hook.events() == ["stage_started", "awaiting_approval", "stage_started", "promoted"]
    assert "held INCONCLUSIVE" in hook.received[1][1]["text"]
    assert rig.registry.serving_state(rig.key).stable_version == 2
    # `canaryflow rollout status KEY --evidence 3` reads the full evidence back from the registry:
    monkeypatch.setenv("CANARYFLOW_DB_URL", rig.registry.url)
    status.stage_index = 0  # the held stage, as `status` showed it while it waited
    rows = recorded(rig.key, status, 3)
    assert len(rows) == 3 and all(r.measurement.verdict is PASS and r.stage == "canary-5" for r in rows)
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(render(status, evidence=rows))
    text = console.export_text()
    assert "recorded" in text and "error_rate PASS; candidate 0.01 vs stable 0.01" in text, text
    assert "error_rate: " in text and " 3 inconclusive" in text, text
