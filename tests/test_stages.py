"""The stage machine, table-driven: every transition of :func:`decide` (argo-rollouts style)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from canaryflow.domain.analysis import AnalysisReport
from canaryflow.domain.gates import Measurement, Verdict
from canaryflow.domain.plan import Plan
from canaryflow.domain.rollout_status import (
    PendingApproval,
    PromoteRequest,
    RolloutStatus,
    StopRequest,
    apply_signal,
)
from canaryflow.domain.stages import (
    Action,
    Advance,
    ApplyStage,
    AwaitApproval,
    Hold,
    Measure,
    PromoteCandidate,
    Rollback,
    Wait,
    assess,
    decide,
)

P, F, INC, E, N = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.ERROR, Verdict.NODATA
GATE = {"metric": "error_rate", "margin": 0.01, "mode": "absolute"}
STAGES = [
    {"name": "shadow", "kind": "shadow", "min_duration": "10m", "max_duration": "1h", "min_samples": 10},
    {
        "name": "internal",
        "kind": "segments",
        "segments": ["internal"],
        "min_duration": "10m",
        "approval": "required",
    },
    {"name": "canary-5", "kind": "percent", "percent": 5, "min_duration": "10m", "max_duration": "1h"},
    {"name": "timed", "kind": "percent", "percent": 50, "min_duration": "5m", "gates": []},
    {"name": "full", "kind": "full"},
]
LAST = len(STAGES) - 1


def plan(**over: Any) -> Plan:
    stages = [dict(s) for s in STAGES]
    for name, changes in over.pop("stage", {}).items():
        next(s for s in stages if s["name"] == name).update(changes)
    return Plan.model_validate(
        {
            "stages": stages,
            "gates": [over.pop("gate", GATE)],
            "analysis_interval": "1m",
            "approval_timeout": "1h",
            **over,
        }
    )


def report(verdict: Verdict, samples: float, at: float) -> AnalysisReport:
    return AnalysisReport(
        at=at,
        candidate_samples=samples,
        stable_samples=samples * 19,
        measurements=[Measurement(gate="error_rate", verdict=verdict, at=at)],
    )


@dataclass
class Case:
    """A rollout ``at`` stage ``stage``, started at t=0, with ``verdicts`` measured once a minute."""

    id: str
    expect: Action | type
    now: float = 700.0
    stage: int = 0
    verdicts: list[Verdict] = field(default_factory=list)
    samples: float = 50.0
    applied: bool = True
    plan: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    contains: str = ""


def build(case: Case) -> tuple[Plan, RolloutStatus]:
    p = plan(**case.plan)
    status = RolloutStatus(
        config_key="bot",
        candidate_version=2,
        stable_version=1,
        plan=p,
        stage_index=case.stage,
        applied_stage=case.stage if case.applied else case.stage - 1,
        stage_started_at=0.0 if case.applied else None,
        **case.status,
    )
    for n, v in enumerate(case.verdicts, start=1):
        status.add_report(report(v, case.samples, at=min(60.0 * n, case.now)))
    return p, status


PENDING = {"approval": PendingApproval(stage="internal", since=600, deadline=600 + 3600)}
CASES = [
    Case("first stage not applied yet", ApplyStage(0), now=0, applied=False),
    Case("next stage not applied yet", ApplyStage(2), stage=2, applied=False),
    Case(
        "waits for the first analysis",
        Wait(60.0, "min duration (9m30s left), samples 0/10, gates NODATA"),
        now=30,
    ),
    Case("measures when the interval has passed", Measure(0), now=60),
    Case("measures again each interval", Measure(0), now=120, verdicts=[INC]),
    Case(
        "a failing gate rolls back", Rollback, now=100, verdicts=[P, F], contains="stage shadow: gate failed"
    ),
    Case(
        "a failing gate rolls back while paused", Rollback, now=100, verdicts=[F], status={"paused_by": "bob"}
    ),
    Case(
        "errors past the consecutive limit roll back",
        Rollback,
        now=330,
        verdicts=[E] * 5,
        contains="analysis kept erroring",
    ),
    Case(
        "errors below the limit keep measuring",
        Wait,
        now=250,
        verdicts=[E] * 4,
        contains="gates INCONCLUSIVE",
    ),
    Case(
        "a tolerated failure keeps measuring",
        Wait,
        now=70,
        verdicts=[F],
        plan={"gate": {**GATE, "failure_limit": 1}},
    ),
    Case(
        "passing, enough samples, past min duration → advance",
        Advance(1, "gates"),
        now=620,
        verdicts=[P] * 10,
    ),
    Case("passing but too few samples", Wait, now=620, verdicts=[P] * 10, samples=3, contains="samples 3/10"),
    Case(
        "passing before min duration waits for it",
        Wait(120.0, "min duration (8m20s left)"),
        now=100,
        verdicts=[P],
    ),
    Case(
        "paused and ready waits",
        Wait(660.0, "paused by bob"),
        now=620,
        verdicts=[P] * 10,
        status={"paused_by": "bob"},
    ),
    Case("paused still measures", Measure(0), now=700, verdicts=[P] * 10, status={"paused_by": "bob"}),
    Case(
        "approval required once ready",
        AwaitApproval("internal", 620 + 3600, 660.0, "stage passed its gates"),
        stage=1,
        now=620,
        verdicts=[P] * 10,
    ),
    Case(
        "approval pending keeps waiting",
        AwaitApproval("internal", 4200, 660.0, "stage passed its gates"),
        stage=1,
        now=620,
        verdicts=[P] * 10,
        status=PENDING,
    ),
    Case("approval pending still measures", Measure(1), stage=1, now=700, verdicts=[P] * 10, status=PENDING),
    Case(
        "a failing gate rolls back during the approval wait",
        Rollback,
        stage=1,
        now=640,
        verdicts=[P] * 9 + [F],
        status=PENDING,
    ),
    Case(
        "approved → advance",
        Advance(2, "approval"),
        stage=1,
        now=620,
        verdicts=[P] * 10,
        status={**PENDING, "approved": ["internal"]},
    ),
    Case(
        "approval timeout rolls back",
        Rollback,
        stage=1,
        now=4210,
        verdicts=[P] * 70,
        status=PENDING,
        contains="no approval within 1h",
    ),
    Case(
        "approval timeout holds",
        Hold("internal", 4260.0),
        stage=1,
        now=4210,
        verdicts=[P] * 70,
        status=PENDING,
        plan={"on_approval_timeout": "hold"},
    ),
    Case(
        "a held approval keeps holding",
        Hold("internal", 4260.0),
        stage=1,
        now=4210,
        verdicts=[P] * 70,
        status={"approval": PendingApproval(stage="internal", since=600, deadline=4200, held=True)},
    ),
    Case(
        "promote during a wait skips the stage",
        Advance(1, "carol"),
        now=30,
        status={"promote": PromoteRequest(by="carol", stage="shadow")},
    ),
    Case(
        "promote during an approval wait advances",
        Advance(2, "carol"),
        stage=1,
        now=620,
        verdicts=[P] * 10,
        status={**PENDING, "promote": PromoteRequest(by="carol", stage="internal")},
    ),
    Case(
        "a promote of an earlier stage does nothing more",
        Wait,
        stage=2,
        now=30,
        status={"promote": PromoteRequest(by="carol", stage="internal")},
    ),
    Case(
        "promote full",
        PromoteCandidate("carol"),
        now=30,
        status={"promote": PromoteRequest(by="carol", stage="shadow", full=True)},
    ),
    Case(
        "promote does not beat a failing gate",
        Rollback,
        now=70,
        verdicts=[F],
        status={"promote": PromoteRequest(by="carol", stage="shadow", full=True)},
    ),
    Case(
        "inconclusive at max → wait for approval",
        AwaitApproval,
        now=3600,
        verdicts=[INC] * 60,
        contains="still INCONCLUSIVE after 50 candidate samples at its max duration 1h",
    ),
    Case(
        "inconclusive at max → rollback",
        Rollback,
        now=3600,
        verdicts=[INC] * 60,
        plan={"on_inconclusive": "rollback"},
        contains="at its max duration 1h",
    ),
    Case(
        "inconclusive at max → extend",
        Wait(3660.0, "gates INCONCLUSIVE"),
        now=3600,
        verdicts=[INC] * 60,
        plan={"on_inconclusive": "extend"},
    ),
    Case(
        "no data at max → rollback",
        Rollback,
        now=3600,
        verdicts=[N] * 60,
        plan={"on_inconclusive": "rollback"},
        contains="still NODATA",
    ),
    Case(
        "too few samples at max → rollback",
        Rollback,
        now=3600,
        verdicts=[P] * 60,
        samples=2,
        plan={"on_inconclusive": "rollback"},
        contains="2/10 candidate samples",
    ),
    Case("a time-only stage does not measure", Wait(300.0, "min duration (4m10s left)"), stage=3, now=50),
    Case("a time-only stage advances on time", Advance(4, "gates"), stage=3, now=300),
    Case("the full stage promotes", PromoteCandidate("gates"), stage=LAST, now=0),
    Case(
        "the full stage may ask for approval",
        AwaitApproval,
        stage=LAST,
        now=0,
        plan={"stage": {"full": {"approval": "required"}}},
    ),
    Case(
        "the full stage with its own gates measures",
        Measure(LAST),
        stage=LAST,
        now=60,
        plan={"stage": {"full": {"gates": [GATE]}}},
    ),
    Case(
        "reject rolls back",
        Rollback,
        now=30,
        status={"stop": StopRequest(kind="reject", by="bob", reason="x")},
        contains="stage shadow: rejected by bob: x",
    ),
    Case(
        "abort ends aborted",
        Rollback("aborted", "stage shadow: aborted by ops: incident", []),
        now=70,
        verdicts=[P],
        status={"stop": StopRequest(kind="abort", by="ops", reason="incident")},
    ),
    Case(
        "cancel ends aborted",
        Rollback("aborted", "stage internal: cancelled by temporal: cancelled", []),
        stage=1,
        now=70,
        verdicts=[P],
        status={"stop": StopRequest(kind="cancel", by="temporal", reason="cancelled")},
    ),
    Case(
        "a stop beats applying the next stage",
        Rollback,
        stage=2,
        applied=False,
        status={"stop": StopRequest(kind="abort", by="ops", reason="x")},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decide(case: Case) -> None:
    p, status = build(case)
    action = decide(p, status, assess(p, status), case.now)
    if isinstance(case.expect, type):
        assert isinstance(action, case.expect), action
    else:
        assert action == case.expect
    if case.contains:
        assert case.contains in str(action), action
    if isinstance(action, Rollback) and case.verdicts and case.verdicts[-1] in (F, E):
        assert action.evidence and action.evidence[0].startswith("error_rate"), action.evidence


def test_the_rollback_evidence_carries_the_numbers() -> None:
    p, status = build(Case("x", Rollback, now=70))
    from canaryflow.domain.gates import Evidence

    status.add_report(
        AnalysisReport(
            at=60,
            candidate_samples=412,
            stable_samples=7800,
            measurements=[
                Measurement(
                    gate="error_rate",
                    verdict=F,
                    at=60,
                    evidence=Evidence(
                        candidate_value=0.051,
                        stable_value=0.010,
                        candidate_samples=412,
                        stable_samples=7800,
                        margin=0.01,
                        mode="absolute",
                    ),
                )
            ],
        )
    )
    action = decide(p, status, assess(p, status), 70)
    assert isinstance(action, Rollback)
    assert "candidate 0.051 vs stable 0.01 (n=412/7800)" in action.evidence[0]


def test_a_whole_rollout_walks_every_stage_by_decide_alone() -> None:
    """Drive decide() like the workflow does, with passing analyses and one approval."""
    p = plan()
    status = RolloutStatus(config_key="bot", candidate_version=2, plan=p)
    now, seen = 0.0, []
    for _ in range(500):
        action = decide(p, status, assess(p, status), now)
        seen.append(type(action).__name__)
        if isinstance(action, ApplyStage):
            status.applied_stage, status.stage_started_at, status.reports = action.index, now, []
            status.last_analysis_at = None
        elif isinstance(action, Measure):
            status.add_report(report(P, 100, now))
        elif isinstance(action, Wait):
            assert action.until is not None and action.until > now
            now = action.until
        elif isinstance(action, AwaitApproval):
            status.approval = PendingApproval(stage=action.stage, since=now, deadline=action.deadline)
            assert apply_signal(status, "approve", {"by": "alice", "stage": action.stage}, now)
        elif isinstance(action, Advance):
            status.stage_index, status.approval = action.to, None
        else:
            assert isinstance(action, PromoteCandidate)
            break
    assert status.stage_index == LAST and seen.count("ApplyStage") == len(STAGES)
    assert seen.count("AwaitApproval") == 1 and 600 * 3 + 300 <= now < 4000
