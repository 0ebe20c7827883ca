"""Plans: durations, presets, strict validation, the rollout input, and signal payload handling."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pydantic
import pytest

from canaryflow.domain.plan import (
    DEFAULT_PLAN,
    FAST_PLAN,
    PRESETS,
    Plan,
    RolloutInput,
    format_duration,
    parse_duration,
)
from canaryflow.domain.rollout_status import RolloutStatus, apply_signal
from canaryflow.domain.validation import describe


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("PT10M", 600),
    ("P1DT2H", 93600), ("pt1.5s", 1.5), (45, 45), (0.5, 0.5), ("0.5s", 0.5),
])
def test_durations_parse(text: Any, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "10", "ten minutes", "10x", "P", "-5m", True])
def test_bad_durations_are_refused(text: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [(90, "1m30s"), (600, "10m"), (93600, "1d2h"), (0.5, "0.5s")])
def test_durations_format_round_trip(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("preset", list(PRESETS.values()))
def test_presets_have_the_design_shape_and_round_trip_as_json(preset: Plan) -> None:
    assert [s.kind for s in preset.stages] == ["shadow", "segments", "segments", "percent", "percent", "full"]
    assert [s.percent for s in preset.stages if s.kind == "percent"] == [5, 10]
    assert Plan.model_validate_json(preset.model_dump_json()) == preset


def test_fast_is_the_default_shape_in_seconds() -> None:
    assert [s.name for s in FAST_PLAN.stages] == [s.name for s in DEFAULT_PLAN.stages]
    assert all(s.min_duration <= timedelta(seconds=10) for s in FAST_PLAN.stages)
    assert sum((s.min_duration for s in DEFAULT_PLAN.stages), timedelta()) >= timedelta(hours=8)


def test_inline_plan_takes_default_policies_and_stage_defaults() -> None:
    plan = Plan.model_validate({"stages": [{"name": "c", "kind": "percent", "percent": 5}, {"name": "full",
                                                                                          "kind": "full"}]})
    assert plan.gates == DEFAULT_PLAN.gates
    assert plan.analysis_interval == DEFAULT_PLAN.analysis_interval
    assert plan.on_inconclusive == DEFAULT_PLAN.on_inconclusive
    assert plan.approval_timeout == DEFAULT_PLAN.approval_timeout
    stage = plan.stages[0]
    assert (stage.min_duration, stage.max_duration, stage.min_samples, stage.approval) == (
        timedelta(0), None, 0, "none")
    assert plan.gates_for(0) == list(DEFAULT_PLAN.gates) and plan.gates_for(1) == []


def test_design_example_plan_validates() -> None:
    plan = Plan.model_validate({"stages": [
        {"name": "shadow", "kind": "shadow", "shadow_fraction": 0.2, "min_duration": "10m",
         "max_duration": "2h", "min_samples": 200},
        {"name": "internal", "kind": "segments", "segments": ["internal"], "min_duration": "30m",
         "approval": "required"},
        {"name": "canary-5", "kind": "percent", "percent": 5, "min_duration": "1h"},
        {"name": "full", "kind": "full"}],
        "gates": [{"metric": "error_rate", "margin": 0.01, "mode": "absolute"},
                  {"metric": "latency_p95", "margin": 0.20, "mode": "relative"},
                  {"metric": "custom", "name": "json_valid", "query": "up", "success": "result >= 0.99"}],
        "analysis_interval": "1m", "on_inconclusive": "wait_for_approval",
        "approval_timeout": "24h", "on_approval_timeout": "rollback", "approvers": [], "notify": []})
    assert plan.stages[2].min_duration == timedelta(hours=1)
    assert plan.stages[3].gates is None and plan.gates_for(3) == []


FULL = {"name": "full", "kind": "full"}


def pct(name: str, percent: float) -> dict[str, Any]:
    return {"name": name, "kind": "percent", "percent": percent}


@pytest.mark.parametrize(("plan", "field", "message"), [
    ({"stages": [pct("a", 10), pct("b", 5), FULL]}, "", "strictly increase"),
    ({"stages": [pct("a", 5), pct("b", 5), FULL]}, "", "strictly increase"),
    ({"stages": [pct("a", 0), FULL]}, "stages[0].percent", "greater than 0"),
    ({"stages": [{"name": "a", "kind": "percent", "percent": 101}, FULL]}, "stages[0].percent", "100"),
    ({"stages": [{"name": "a", "kind": "percent", "percent": 5}, {"name": "a", "kind": "percent",
                                                                   "percent": 6}, FULL]}, "", "unique"),
    ({"stages": [FULL, {"name": "a", "kind": "percent", "percent": 5}]}, "", "must be of kind 'full'"),
    ({"stages": [{"name": "a", "kind": "percent", "percent": 5}]}, "", "must be of kind 'full'"),
    ({"stages": []}, "stages", "at least 1"),
    ({"stages": [{"name": "a", "kind": "percent", "percent": 5, "min_duration": "0s", "max_duration": "0s"},
                 FULL]}, "stages[0]", "max_duration must be positive"),
    ({"stages": [{"name": "a", "kind": "percent", "percent": 5, "min_duration": "2h", "max_duration": "1h"},
                 FULL]}, "stages[0]", "shorter than"),
    ({"stages": [{"name": "a", "kind": "percent", "percent": 5, "min_duration": "soon"}, FULL]},
     "stages[0].min_duration", "invalid duration"),
    ({"stages": [{"name": "a", "kind": "segments"}, FULL]}, "stages[0]", "needs 'segments'"),
    ({"stages": [{"name": "a", "kind": "percent"}, FULL]}, "stages[0]", "needs 'percent'"),
    ({"stages": [{"name": "a", "kind": "percent", "percent": 5, "holdback": 0.1}, FULL]}, "stages[0]",
     "'holdback' belongs to segments stages"),
    ({"stages": [{"name": "a", "kind": "segments", "segments": ["beta"], "holdback": 0.8}, FULL]},
     "stages[0].holdback", "less than or equal to 0.5"),
    ({"stages": [{"name": "a", "kind": "shadow", "percent": 5}, FULL]}, "stages[0]", "belongs to percent"),
    ({"stages": [{"name": "a", "kind": "canary"}, FULL]}, "stages[0].kind", "shadow"),
    ({"stages": [{"name": "A b", "kind": "full"}]}, "stages[0].name", "pattern"),
    ({"stages": [FULL], "gates": [{"metric": "error_rate"}]}, "gates[0]", "needs a 'margin'"),
    ({"stages": [FULL], "gates": [{"metric": "custom", "query": "up"}]}, "gates[0]", "success"),
    ({"stages": [FULL], "gates": [{"metric": "nope", "margin": 1}]}, "gates[0].metric", "error_rate"),
    ({"stages": [FULL], "analysis_interval": "0s"}, "", "analysis_interval must be positive"),
    ({"stages": [FULL], "on_inconclusive": "panic"}, "on_inconclusive", "extend"),
    ({"stages": [FULL], "notify": ["slack"]}, "notify", "http"),
    ({"stages": [FULL], "stagess": []}, "stagess", "unknown field"),
])
def test_invalid_plans_name_the_field(plan: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        Plan.model_validate(plan)
    lines = describe(info.value)
    assert any(line.startswith(field or "(top level)") and message in line for line in lines), lines


@pytest.mark.parametrize(("data", "field"), [
    ({"config_key": "Bad Key", "candidate_version": 2}, "config_key"),
    ({"config_key": "bot", "candidate_version": 0}, "candidate_version"),
    ({"config_key": "bot", "candidate_version": 2, "plan": "slow"}, "plan"),
    ({"config_key": "bot", "candidate_version": 2, "plann": "fast"}, "plann"),
    ({"candidate_version": 2}, "config_key"),
])
def test_rollout_input_names_the_bad_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        RolloutInput.model_validate(data)
    assert any(line.startswith(field) for line in describe(info.value))


def test_rollout_input_accepts_the_design_example() -> None:
    data = {"config_key": "support-bot", "candidate_version": 3, "plan": "default", "requested_by": "alice",
            "reason": "shorter answers"}
    assert RolloutInput.model_validate(data).resolved_plan() is DEFAULT_PLAN
    inline = RolloutInput.model_validate({**data, "plan": {"stages": [FULL]}})
    assert inline.resolved_plan().stages[0].kind == "full"


def _status(**plan: Any) -> RolloutStatus:
    p = Plan.model_validate({"stages": [{"name": "a", "kind": "percent", "percent": 5}, FULL], **plan})
    return RolloutStatus(config_key="bot", candidate_version=2, plan=p)


@pytest.mark.parametrize(("payload", "detail"), [
    ({}, "by: required field is missing"),
    ({"by": 3}, "by: Input should be a valid string"),
    ("alice", "payload must be a JSON object"),
    (None, "payload must be a JSON object"),
    ({"by": ""}, "by: String should have at least 1 character"),
])
def test_bad_signal_payloads_are_recorded_and_change_nothing(payload: Any, detail: str) -> None:
    status = _status()
    before = status.model_copy(deep=True)
    assert apply_signal(status, "pause", payload, 10.0) is False
    assert status.paused_by is None and status.events[-1].accepted is False
    assert detail in status.events[-1].detail
    counted = {"events", "signals_seen", "recorded"}  # what recording the refusal counts
    assert status.model_dump(exclude=counted) == before.model_dump(exclude=counted)


def test_unknown_signal_fields_are_ignored_and_recorded() -> None:
    status = _status()
    assert apply_signal(status, "pause", {"by": "bob", "why": "lunch"}, 1.0)
    assert status.paused_by == "bob" and "ignored unknown field(s): why" in status.events[-1].detail


def test_approvals_from_non_approvers_are_refused_and_queued_for_audit() -> None:
    status = _status(approvers=["alice"])
    assert not apply_signal(status, "approve", {"by": "mallory"}, 1.0)
    assert not apply_signal(status, "promote", {"by": "mallory", "full": True}, 1.0)
    assert not apply_signal(status, "reject", {"by": "mallory", "reason": "sabotage"}, 1.0)
    assert status.promote is None and status.approved == [] and status.stop is None
    assert [e.by for e in status.audit_pending] == ["mallory", "mallory", "mallory"]
    assert "not an approver" in status.events[-1].detail


def test_anyone_may_pause_or_abort_an_emergency_stop_is_always_safe() -> None:
    status = _status(approvers=["alice"])
    assert apply_signal(status, "pause", {"by": "oncall"}, 1.0)
    assert apply_signal(status, "abort", {"by": "oncall", "reason": "incident"}, 2.0)
    assert status.stop is not None and status.stop.kind == "abort" and status.stop.by == "oncall"


def test_signals_after_a_stop_are_refused() -> None:
    status = _status()
    assert apply_signal(status, "abort", {"by": "ops", "reason": "incident"}, 1.0)
    assert not apply_signal(status, "resume", {"by": "ops"}, 2.0)
    assert status.stop is not None and status.stop.kind == "abort"


@pytest.mark.parametrize("by", [" ", "", "\t\n"])
def test_a_blank_actor_is_refused_and_recorded_never_passed_on(by: str) -> None:
    status = _status()
    assert not apply_signal(status, "abort", {"by": by, "reason": "x"}, 1.0)
    assert status.stop is None and "invalid payload: by" in status.events[-1].detail
    assert apply_signal(status, "pause", {"by": "  oncall "}, 2.0)
    assert status.paused_by == "oncall"


def test_accepted_signals_are_queued_for_audit_with_their_stage() -> None:
    status = _status()
    assert apply_signal(status, "pause", {"by": "bob"}, 1.0)
    assert apply_signal(status, "resume", {"by": "bob"}, 2.0)
    assert [(e.action, e.by, e.stage, e.at) for e in status.audit_pending] == [
        ("pause", "bob", status.stage, 1.0), ("resume", "bob", status.stage, 2.0)]


def test_the_audit_queue_is_bounded_and_counts_what_it_drops() -> None:
    status = _status()
    for n in range(30):
        assert apply_signal(status, "pause" if n % 2 == 0 else "resume", {"by": "bob"}, float(n))
    assert len(status.audit_pending) == 20 and status.audit_dropped == 10
    assert status.audit_pending[-1].at == 29.0  # the newest are kept
