"""The stage machine under the limits (logic 2, what new rollouts run), table-driven: a stage held
INCONCLUSIVE always asks for a decision and never advances by itself, whatever the rollout's length; a
stage without max_duration, or with ``on_inconclusive: extend``, asks instead of waiting unseen; dry-run
gates are measured before a stage passes; ``count`` and ``initial_delay`` decide when a gate is measured."""

from __future__ import annotations

from typing import Any

import pytest

from canaryflow.domain.gates import Measurement, Verdict
from canaryflow.domain.rollout_status import MAX_REPORTS, PendingApproval, RolloutStatus, apply_signal
from canaryflow.domain.stages import (
    Advance,
    AwaitApproval,
    Measure,
    Rollback,
    Wait,
    assess,
    decide,
    gates_to_measure,
)
from tests.test_stages import GATE, Case, build, plan, report

P, F, INC, E, N = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.ERROR, Verdict.NODATA
V2: dict[str, Any] = {"logic": 2}
HELD = {**GATE, "inconclusive_limit": 2}
LIMIT_CASES = [
    Case("past its inconclusive limit: asks for approval, with a deadline", AwaitApproval, now=700,
         verdicts=[INC] * 3 + [P] * 8, plan={"gate": HELD}, status=V2, contains="held INCONCLUSIVE"),
    Case("past its inconclusive limit, plan extend: asks without a deadline",
         AwaitApproval(stage="shadow", deadline=None, until=720.0,
                       why="held INCONCLUSIVE (error_rate: 3 inconclusive measurement(s) > "
                           "inconclusive_limit 2): it cannot pass by itself — approve to go on, reject to "
                           "roll back (plan: extend, no deadline)"),
         now=700, verdicts=[INC] * 3 + [P] * 8, plan={"gate": HELD, "on_inconclusive": "extend"}, status=V2),
    Case("past its inconclusive limit, plan rollback: rolls back", Rollback, now=700,
         verdicts=[INC] * 3 + [P] * 8, plan={"gate": HELD, "on_inconclusive": "rollback"}, status=V2,
         contains="held INCONCLUSIVE"),
    Case("within its inconclusive limit: passes on its last measurement", Advance(1), now=700,
         verdicts=[INC] * 2 + [P] * 9, plan={"gate": HELD}, status=V2),
    Case("NODATA counts as inconclusive", AwaitApproval, now=700, verdicts=[N] * 3 + [P] * 8,
         plan={"gate": HELD}, status=V2, contains="held INCONCLUSIVE"),
    Case("max duration, plan extend: asks, and keeps measuring", AwaitApproval, now=3610,
         verdicts=[INC] * 60, plan={"on_inconclusive": "extend"}, status=V2, contains="extended"),
    Case("max duration, plan extend, older logic: waits unseen (kept for rollouts in flight)", Wait,
         now=3610, verdicts=[INC] * 60, plan={"on_inconclusive": "extend"}),
    Case("no max duration: asks once long past its min duration", AwaitApproval, stage=2, now=1210,
         verdicts=[INC] * 20, plan={"stage": {"canary-5": {"max_duration": None}}}, status=V2,
         contains="no max_duration"),
    Case("no max duration: before that, waits for the gates", Wait, stage=2, now=1150,
         verdicts=[INC] * 19, plan={"stage": {"canary-5": {"max_duration": None}}}, status=V2),
    Case("consecutive_success_limit: a pass is not enough", Wait, now=700, verdicts=[P, F, P, P] + [P] * 7,
         plan={"gate": {**GATE, "failure_limit": 3, "consecutive_success_limit": 10}}, status=V2,
         contains="gates INCONCLUSIVE"),
    Case("consecutive_success_limit reached: passes", Advance(1), now=700, verdicts=[F] + [P] * 10,
         plan={"gate": {**GATE, "failure_limit": 3, "consecutive_success_limit": 10}}, status=V2),
    Case("failure_limit -1: failures never fail the gate", Wait, now=700, verdicts=[F] * 11,
         plan={"gate": {**GATE, "failure_limit": -1, "consecutive_success_limit": 3}}, status=V2,
         contains="gates INCONCLUSIVE"),
    Case("count reached: the gate is final, nothing more to measure", Advance(3), stage=2, now=700,
         verdicts=[P] * 5, plan={"gate": {**GATE, "count": 5}}, status=V2),
    Case("count reached with a tolerated failure last: held, asks", AwaitApproval, stage=2, now=330,
         verdicts=[P] * 4 + [F], plan={"gate": {**GATE, "count": 5, "failure_limit": 1}}, status=V2,
         contains="count 5 reached, last measurement FAIL"),
    Case("initial_delay: the first measurement waits for it", Wait(until=600.0, what=(
        "min duration (8m20s left), samples 0/10, gates NODATA")), now=100,
         plan={"gate": {**GATE, "initial_delay": "10m"}}, status=V2),
]


@pytest.mark.parametrize("case", LIMIT_CASES, ids=[c.id for c in LIMIT_CASES])
def test_decide_under_the_limits(case: Case) -> None:
    p, status = build(case)
    action = decide(p, status, assess(p, status), case.now)
    if isinstance(case.expect, type):
        assert isinstance(action, case.expect), action
    else:
        assert action == case.expect
    if case.contains:
        assert case.contains in str(action), action


def test_a_held_stage_never_advances_by_itself_however_long_it_runs() -> None:
    """Three early inconclusives past the limit, then 500 passes — five times the old 100-report cap that
    used to forget them: the stage still waits for a decision, and an approval lets it go on."""
    p, status = build(Case("held", Wait, plan={"gate": HELD}, status=V2))
    for n in range(1, 504):
        status.add_report(report(INC if n <= 3 else P, 50, at=60.0 * n))
    assert len(status.reports) == MAX_REPORTS and status.counters["error_rate"].inconclusive == 3
    now = 60.0 * 503 + 1
    action = decide(p, status, assess(p, status), now)
    assert isinstance(action, AwaitApproval) and action.deadline is not None, action
    status.approval = PendingApproval(stage="shadow", since=now, deadline=action.deadline, why=action.why)
    assert apply_signal(status, "approve", {"by": "alice"}, now)
    assert decide(p, status, assess(p, status), now) == Advance(1, "alice")


def test_a_stage_whose_gates_are_all_dry_run_still_measures_them() -> None:
    p, status = build(Case("dry", Wait, stage=2, now=700, plan={"gate": {**GATE, "dry_run": True}},
                           status=V2))
    assert isinstance(decide(p, status, assess(p, status), 700), Measure)
    status.add_report(report(F, 50, at=700))
    assessment = assess(p, status)
    assert assessment.verdict is P and assessment.dry_run.failed == 1  # measured, reported, not deciding
    assert assessment.record("canary-5", 700).dry_run == [
        "error_rate (dry run) would roll back: FAIL (1 failed measurement(s) > failure_limit 0)"]
    assert decide(p, status, assessment, 701) == Advance(3)


def test_older_rollouts_keep_advancing_a_dry_run_only_stage_as_they_did() -> None:
    """Logic 1 (rollouts started before this release): replaying them must decide what they decided."""
    p, status = build(Case("dry", Wait, stage=2, now=700, plan={"gate": {**GATE, "dry_run": True}},
                           status={"last_analysis_at": 690.0}))
    assert decide(p, status, assess(p, status), 700) == Advance(3)


def test_final_and_delayed_gates_are_not_measured() -> None:
    gates = [{**GATE, "count": 2}, {"metric": "latency_p95", "margin": 0.2, "mode": "relative",
                                    "initial_delay": "5m"}]
    p, status = build(Case("x", Wait, plan={"gates": gates}, status=V2))
    assert [g.label for g in gates_to_measure(p, status, 60)] == ["error_rate"]
    status.add_report(report(P, 50, 60))
    status.add_report(report(P, 50, 120))
    assert [g.label for g in gates_to_measure(p, status, 300)] == ["latency_p95"]


def test_the_carried_state_is_bounded_whatever_the_length() -> None:
    """20 gates with long evidence, 400 analyses (every cap is reached after 100), long signal details: the
    state stops growing, far under 256 KiB."""
    gates = [{"metric": "custom", "name": f"g{n}", "query": "sum(x{$selector}[$window])" + " " * 300,
              "success": "result >= 0"} for n in range(20)]
    p = plan(gates=gates)
    status = RolloutStatus(config_key="bot", candidate_version=2, plan=p, applied_stage=0, stage_started_at=0,
                           logic=2)
    sizes = []
    for n in range(400):
        status.add_report(report(P, 50, 60.0 * n).model_copy(update={"measurements": [
            Measurement.model_validate({"gate": f"g{i}", "verdict": "PASS", "at": 60.0 * n, "evidence": {
                "queries": ["q" * 2000] * 8, "note": "n" * 5000, "candidate_value": 1.0}})
            for i in range(20)]}))
        status.add_verdict(assess(p, status).record("shadow", 60.0 * n))
        apply_signal(status, "pause" if n % 2 else "resume", {"by": "x" * 200, "reason": "r" * 2000}, 0)
        if n in (150, 399):
            sizes.append(len(status.model_dump_json()))
    assert sizes[0] == pytest.approx(sizes[1], rel=0.02) and sizes[1] < 200 * 1024, sizes  # of 256 KiB
    assert status.counters["g7"].count == 400  # nothing forgotten


def test_a_state_carried_by_the_previous_release_is_counted_on_arrival() -> None:
    """The previous release carried up to 100 reports and no counters: continue-as-new hands that state
    to today's code, which counts the reports once and keeps only the last few."""
    p = plan()
    old = RolloutStatus(config_key="bot", candidate_version=2, plan=p, applied_stage=0, stage_started_at=0)
    data = old.model_dump(mode="json", exclude={"counters", "measured"})
    data["reports"] = [report(F if n == 0 else P, 50, 60.0 * n).model_dump(mode="json") for n in range(100)]
    upgraded = RolloutStatus.model_validate(data)
    assert upgraded.logic == 1 and upgraded.measured == 100 and len(upgraded.reports) == MAX_REPORTS
    c = upgraded.counters["error_rate"]
    assert (c.count, c.failed, c.successful, c.consecutive_successes) == (100, 1, 99, 99)
