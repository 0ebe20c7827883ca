"""The promoted rollout's outcome says what really happened, stage by stage (pure, table-driven)."""

from __future__ import annotations

import pytest

from canaryflow.domain.gates import Verdict
from canaryflow.domain.plan import FAST_PLAN
from canaryflow.domain.rollout_outcome import end_stage, promotion_outcome
from canaryflow.domain.rollout_status import (
    PendingApproval,
    PromoteRequest,
    RolloutStatus,
    StageEnd,
    VerdictRecord,
)

P, INC, N = Verdict.PASS, Verdict.INCONCLUSIVE, Verdict.NODATA


def _status(ends: list[StageEnd]) -> RolloutStatus:
    return RolloutStatus(config_key="support-bot", candidate_version=2, stable_version=1, plan=FAST_PLAN,
                         stage_index=5, stage_ends=ends)


def _end(stage: str, how: str = "gates", by: str = "gates", verdict: Verdict | None = P) -> StageEnd:
    return StageEnd.model_validate({"stage": stage, "how": how, "by": by, "verdict": verdict})


@pytest.mark.parametrize(("ends", "outcome"), [
    ([_end("shadow"), *(_end(s, "approved", "alice", INC) for s in ("internal", "beta", "canary-5",
                                                                    "canary-10"))],
     "v2 is stable: shadow passed its gates; internal, beta, canary-5, canary-10 approved by alice while "
     "inconclusive"),
    ([_end(s) for s in ("shadow", "internal", "beta", "canary-5", "canary-10")],
     "v2 is stable: shadow, internal, beta, canary-5, canary-10 passed their gates"),
    ([_end("shadow"), _end("internal", "approved", "bob", P), _end("beta", "approved", "carol", N),
      _end("canary-5", "promoted", "dave", INC), _end("canary-10")],
     "v2 is stable: shadow passed its gates; internal passed its gates and was approved by bob; beta "
     "approved by carol while no data; canary-5 skipped by dave (promote); canary-10 passed its gates"),
    ([], "v2 is stable"),
])
def test_promotion_outcome(ends: list[StageEnd], outcome: str) -> None:
    assert promotion_outcome(_status(ends), "gates") == outcome


def test_a_full_promote_says_who_and_when() -> None:
    status = _status([_end("shadow")])
    status.stage_index = 1
    status.promote = PromoteRequest(by="erin", stage="internal", full=True)
    assert promotion_outcome(status, "erin") == ("v2 is stable: shadow passed its gates; erin promoted it to "
                                                 "stable during stage internal")


def test_end_stage_reads_the_approval_and_the_verdict() -> None:
    status = _status([])
    status.stage_index = 1
    status.last_verdict = VerdictRecord(stage="internal", at=1.0, verdict=INC)
    assert end_stage(status, "gates") == StageEnd(stage="internal", how="gates", by="gates", verdict=INC)
    status.approval = PendingApproval(stage="internal", since=0, deadline=9, why="still INCONCLUSIVE at cap")
    status.approved = ["internal"]
    assert end_stage(status, "alice") == StageEnd(stage="internal", how="approved", by="alice", verdict=INC,
                                                  why="still INCONCLUSIVE at cap")
    status.promote = PromoteRequest(by="bob", stage="internal")
    assert end_stage(status, "bob").how == "promoted"
