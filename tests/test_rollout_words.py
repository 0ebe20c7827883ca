"""The status in plain words: each gate's numbers and meaning, what would settle an inconclusive gate, when
the cap is reached, and the command that approves (pure, table-driven)."""

from __future__ import annotations

import pytest

from canaryflow.domain.analysis import GateStatus
from canaryflow.domain.gates import Evidence, Measurement, Verdict
from canaryflow.domain.plan import FAST_PLAN, Plan
from canaryflow.domain.rollout_status import PendingApproval, RolloutStatus, VerdictRecord
from canaryflow.domain.rollout_view import details_markdown
from canaryflow.domain.rollout_words import (
    approve_commands,
    cap_words,
    gate_words,
    more_requests,
    value_text,
    waiting_words,
)

#: The fast preset's stages with gates whose margins the expected sentences name.
PLAN = Plan.model_validate({**FAST_PLAN.model_dump(mode="json", exclude={"name"}), "gates": [
    {"metric": "error_rate", "margin": 0.01, "mode": "absolute"},
    {"metric": "latency_p95", "margin": 0.2, "mode": "relative"},
    {"metric": "cost_per_request", "margin": 0.2, "mode": "relative"}]})


def _status(gates: list[GateStatus], waiting: str = "gates INCONCLUSIVE") -> RolloutStatus:
    return RolloutStatus(
        config_key="support-bot", candidate_version=2, stable_version=1, plan=PLAN, stage_index=1,
        applied_stage=1, stage_started_at=1000.0, waiting_for=waiting,
        last_verdict=VerdictRecord(stage="internal", at=1050.0, verdict=Verdict.INCONCLUSIVE, gates=gates))


def _gs(gate: str, verdict: Verdict, **evidence: object) -> GateStatus:
    m = Measurement(gate=gate, verdict=verdict, at=1050.0, evidence=Evidence.model_validate(evidence))
    return GateStatus(gate=gate, verdict=verdict, last=m)


RATE = {"stable_value": 0.005, "candidate_value": 0.004, "stable_samples": 2000.0, "candidate_samples": 100.0,
        "difference": -0.001, "interval": (-0.02, 0.019), "margin": 0.01, "mode": "absolute"}


@pytest.mark.parametrize(("gs", "words"), [
    (_gs("error_rate", Verdict.INCONCLUSIVE, **RATE),
     "error rate 0.4 % vs 0.5 % on stable: not yet enough data to tell — about 231 more candidate requests"),
    (_gs("error_rate", Verdict.PASS, **{**RATE, "interval": (-0.004, 0.003)}),
     "error rate 0.4 % vs 0.5 % on stable: fine (up to 1 points worse than stable allowed)"),
    (_gs("latency_p95", Verdict.FAIL, stable_value=0.8, candidate_value=1.25, margin=0.2, mode="relative"),
     "p95 latency 1.25 s vs 800 ms on stable: worse than allowed (up to 20 % worse than stable allowed)"),
    (_gs("cost_per_request", Verdict.INCONCLUSIVE, stable_value=0.0004, candidate_value=0.0003,
         candidate_samples=12.0, stable_samples=900.0, margin=0.2, mode="relative",
         note="waiting for 30 samples per variation"),
     "cost per request $0.0003 vs $0.0004 on stable: not yet enough data to tell — about 18 more candidate "
     "requests"),
    (_gs("error_rate", Verdict.NODATA, note="no candidate requests in the window yet"),
     "error rate: no data yet (no candidate requests in the window yet)"),
])
def test_gate_words(gs: GateStatus, words: str) -> None:
    assert gate_words(_status([gs]), gs) == words


def test_no_estimate_when_the_candidate_is_already_past_the_margin() -> None:
    gs = _gs("error_rate", Verdict.INCONCLUSIVE, **{**RATE, "candidate_value": 0.02, "difference": 0.015})
    assert gs.last is not None
    assert more_requests(gs.last, PLAN.gates[0]) is None
    assert gate_words(_status([gs]), gs).endswith("not yet enough data to tell")


def test_waiting_says_what_would_settle_it_and_when_the_cap_is_reached() -> None:
    status = _status([_gs("error_rate", Verdict.INCONCLUSIVE, **RATE),
                      _gs("latency_p95", Verdict.PASS, stable_value=0.8, candidate_value=0.7, margin=0.2,
                          mode="relative")])
    assert waiting_words(status, now=1020.0) == (
        "enough data to tell: error rate 0.4 % vs 0.5 % on stable: not yet enough data to tell — about 231 "
        "more candidate requests; 1m40s until its 2m cap; if still inconclusive then, it asks for a human "
        "approval")
    assert cap_words(status, now=1200.0).startswith("its 2m cap is reached")


def test_the_approval_prompt_carries_the_command() -> None:
    status = _status([], waiting="approval of internal")
    assert approve_commands(status) == ""
    status.approval = PendingApproval(stage="internal", since=1100.0, deadline=1700.0,
                                      why="stage passed its gates")
    assert waiting_words(status, 1200.0) == "a human approval of stage internal (stage passed its gates)"
    assert approve_commands(status) == (
        "canaryflow rollout approve support-bot --by NAME   (or: temporal workflow signal --workflow-id "
        "rollout-support-bot --name approve --input '{\"by\": \"NAME\", \"stage\": \"internal\"}')")


@pytest.mark.parametrize(("metric", "value", "rate", "text"), [
    ("error_rate", 0.0123, True, "1.2 %"), ("completion_rate", 0.97, True, "97 %"),
    ("latency_p50", 0.0421, False, "42 ms"), ("tokens_per_request", 310.4, False, "310 tokens"),
    ("cost_per_request", None, False, "n/a"),
])
def test_values_read_in_their_unit(metric: str, value: float | None, rate: bool, text: str) -> None:
    assert value_text(metric, value, rate=rate) == text


def test_the_ui_details_say_what_would_settle_the_stage_with_the_cap_as_a_time_and_dollars_in_words() -> None:
    cost = _gs("cost_per_request", Verdict.INCONCLUSIVE, stable_value=0.0004, candidate_value=0.0003,
               candidate_samples=12.0, stable_samples=900.0, margin=0.2, mode="relative",
               note="waiting for 30 samples per variation")
    details = details_markdown(_status([cost]), now=1020.0)
    rows = dict(line.strip("|").split("|", 1) for line in details.splitlines()[2:])
    waiting = rows[" waiting for "].strip()
    assert waiting.startswith(
        "enough data to tell: cost per request 0.0003 USD vs 0.0004 USD on stable"), waiting
    assert "its 2m cap is at 1970-01-01 00:18:40 UTC" in waiting, waiting  # started at 1000 s, 2 minutes
    assert "$" not in details  # the UI's markdown would read $…$ as maths


def test_a_segments_stage_without_stable_traffic_in_its_segments_says_a_human_decides() -> None:
    status = _status([_gs("error_rate", Verdict.INCONCLUSIVE, **{**RATE, "stable_samples": 1.0})])
    assert status.plan.stages[status.stage_index].kind == "segments"
    words = gate_words(status, status.last_verdict.gates[0])  # type: ignore[union-attr]
    assert words == ("error rate 0.4 % vs 0.5 % on stable: cannot be compared here — stable served 1 "
                     "requests of internal (every one of its users is on the candidate); a human decides "
                     "this stage, and the percent stages compare (a 'holdback' on the stage keeps a share "
                     "of its users on stable so its gates can decide)")


def test_a_segments_stage_with_a_holdback_says_how_much_stable_traffic_it_waits_for() -> None:
    stages = [s.model_copy(update={"holdback": 0.2}) if s.kind == "segments" else s for s in PLAN.stages]
    status = _status([_gs("error_rate", Verdict.INCONCLUSIVE, **{**RATE, "stable_samples": 3.0})])
    status = status.model_copy(update={"plan": PLAN.model_copy(update={"stages": stages})})
    words = gate_words(status, status.last_verdict.gates[0])  # type: ignore[union-attr]
    assert words == ("error rate 0.4 % vs 0.5 % on stable: not yet comparable — stable served 3 requests of "
                     "internal so far (20 % of its users are held back on stable)")
