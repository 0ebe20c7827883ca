"""The reconciler's decision (pure, table-driven) and its compare-and-set release on a real registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from canaryflow.domain.reconcile import assess
from canaryflow.domain.serving import Exposure, ServingState
from tests.rollout_fixtures import make_registry

EXPOSED = Exposure(candidate_version=2, stage="canary-5", stage_kind="percent", percent=5, salt="s")


@pytest.mark.parametrize(
    ("owner", "exposure", "status", "fix", "why"),
    [
        ("rollout-a", EXPOSED, "RUNNING", "none", "its rollout is running"),
        ("rollout-a", EXPOSED, "TERMINATED", "restore", "rollout-a is terminated: restore stable v1"),
        ("rollout-a", EXPOSED, "NOT_FOUND", "restore", "rollout-a is not_found"),
        ("rollout-a", EXPOSED, "COMPLETED", "restore", "is completed"),
        ("rollout-a", Exposure.none(), "FAILED", "release", "release its claim"),
        ("rollout-a", Exposure.none(), "RUNNING", "none", "running"),
        (None, EXPOSED, None, "restore", "no owning rollout (a manual edit?)"),
        (None, Exposure.none(), None, "none", "nothing exposed"),
    ],
)
def test_what_the_reconciler_does(owner: str | None, exposure: Exposure, status: str | None, fix: str,
                                  why: str) -> None:
    state = ServingState(config_key="bot", stable_version=1, exposure=exposure, owner=owner)
    finding = assess(state, status)
    assert (finding.fix, finding.applied) == (fix, False) and why in finding.why, finding


def test_the_release_is_a_compare_and_set_on_the_owner(tmp_path: Path) -> None:
    reg = make_registry(tmp_path / "r.db", "bot")
    try:
        reg.claim("bot", "rollout-new", by="carol", reason="a new rollout claimed it meanwhile")
        reg.apply_exposure("bot", EXPOSED, by="carol", reason="stage", source="rollout-new",
                           owner="rollout-new")
        kept = reg.release("bot", "rollout-old", by="reconciler", reason="rollout-old is terminated")
        assert (kept.owner, kept.exposure) == ("rollout-new", EXPOSED)  # not the owner it saw: untouched
        done = reg.release("bot", "rollout-new", by="reconciler", reason="rollout-new is terminated")
        assert (done.owner, done.exposure, done.stable_version) == (None, Exposure.none(), 1)
        assert reg.audit("bot")[-1].action == "reconcile_restore"
    finally:
        reg.close()
