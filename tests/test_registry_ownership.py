"""Exposure ownership on real SQLite and PostgreSQL: a rollout claims its config, every exposure change is a
compare-and-set on that owner, and manual changes during a rollout need ``force`` (audited)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from canaryflow.domain.serving import Exposure
from canaryflow.errors import Conflict, NotOwner
from canaryflow.registry import Registry
from canaryflow.registry import db as registry_db
from tests.test_registry import SEGMENTS, spec

KEY = "support-bot"
EXPOSED = Exposure(candidate_version=2, stage="canary-5", stage_kind="percent", percent=5, salt="s")


@pytest.fixture(params=["sqlite", "postgres"])
def reg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    url = (f"sqlite:///{tmp_path / 'registry.db'}" if request.param == "sqlite"
           else str(request.getfixturevalue("postgres_url")))
    registry = Registry(url)
    registry.push_config(spec())
    registry.push_config(spec(model="gpt-4o"))
    registry.push_segments(SEGMENTS, by="t")
    yield registry
    registry.close()


def test_exposure_changes_are_compare_and_set_on_the_owner(reg: Registry) -> None:
    reg.claim(KEY, "rollout-a", by="alice", reason="rollout of v2")
    with pytest.raises(NotOwner, match="owned by rollout rollout-a, not other-b"):
        reg.claim(KEY, "other-b", by="bob", reason="rollout of v2")
    with pytest.raises(NotOwner, match="owned by rollout rollout-a"):
        reg.apply_exposure(KEY, EXPOSED, by="bob", reason="x", source="other-b", owner="other-b")
    reg.apply_exposure(KEY, EXPOSED, by="alice", reason="stage", source="rollout-a", owner="rollout-a")
    # b's restore leaves a's exposure alone; b cannot promote
    kept = reg.clear_exposure(KEY, by="bob", reason="x", source="other-b", owner="other-b")
    assert kept.exposure == EXPOSED
    with pytest.raises(NotOwner, match="other-b no longer owns"):
        reg.promote(KEY, 2, by="bob", reason="x", source="other-b", owner="other-b")
    state = reg.clear_exposure(KEY, by="alice", reason="abort", source="rollout-a", owner="rollout-a")
    assert (state.owner, state.exposure, state.stable_version) == (None, Exposure.none(), 1)
    with pytest.raises(NotOwner, match="stable was restored"):  # a late promote after the restore
        reg.promote(KEY, 2, by="alice", reason="x", source="rollout-a", owner="rollout-a")
    actions = [(e.action, e.source) for e in reg.audit(KEY)][-3:]
    assert actions == [("rollout_claim", "rollout-a"), ("apply_exposure", "rollout-a"),
                       ("clear_exposure", "rollout-a")]


def test_a_promote_is_idempotent_and_can_be_undone_by_its_own_rollout_only(reg: Registry) -> None:
    reg.claim(KEY, "rollout-a", by="alice", reason="r")
    reg.apply_exposure(KEY, EXPOSED, by="alice", reason="stage", source="rollout-a", owner="rollout-a")
    for _ in range(2):  # a retried promote changes nothing more
        state = reg.promote(KEY, 2, by="alice", reason="passed", source="rollout-a", owner="rollout-a")
        assert (state.stable_version, state.owner) == (2, None)
    assert reg.clear_exposure(KEY, by="b", reason="x", source="rollout-b", owner="rollout-b",
                              undo_promote=(2, 1)).stable_version == 2  # not b's promote
    for _ in range(2):
        state = reg.clear_exposure(KEY, by="ops", reason="abort arrived first", source="rollout-a",
                                   owner="rollout-a", undo_promote=(2, 1))
        assert (state.stable_version, state.exposure.stage_kind) == (1, "none")
    assert [e.action for e in reg.audit(KEY)][-2:] == ["promote", "undo_promote"]


def test_manual_changes_during_a_rollout_need_force_and_are_audited(reg: Registry) -> None:
    reg.claim(KEY, "rollout-support-bot", by="alice", reason="r")
    with pytest.raises(Conflict, match=r"rolled out by workflow rollout-support-bot.*--force"):
        reg.set_stable(KEY, 2, by="ops", reason="hotfix")
    with pytest.raises(Conflict, match=r"pinning segment beta to v2.*--force"):
        reg.pin(KEY, "beta", 2, by="ops", reason="vip")
    reg.set_stable(KEY, 1, by="ops", reason="same as now")  # no change: allowed
    reg.set_stable(KEY, 2, by="ops", reason="hotfix", force=True)
    reg.pin(KEY, "beta", 1, by="ops", reason="vip", force=True)
    events = reg.audit(KEY)[-2:]
    assert [(e.action, e.actor) for e in events] == [("set_stable_forced", "ops"), ("pin_forced", "ops")]
    assert reg.serving_state(KEY).owner == "rollout-support-bot"  # the rollout still owns it


def test_the_migration_gives_existing_exposures_to_the_rollout_that_applied_them(tmp_path: Path) -> None:
    engine = registry_db.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    registry_db.migrate(engine, "0004")
    ts = "2026-01-01T00:00:00+00:00"
    with engine.begin() as conn:
        for key, kind, source in (("a", "percent", "rollout-a"), ("b", "none", "rollout-b"),
                                  ("c", "shadow", "cli")):
            conn.execute(sa.text("INSERT INTO configs (key, latest_version, created_at) VALUES (:k, 1, :ts)"),
                         {"k": key, "ts": ts})
            conn.execute(sa.text(
                "INSERT INTO serving_state (config_key, stable_version, candidate_version, stage_kind, "
                "exposed_segments, percent, shadow_fraction, salt, pins, revision, updated_by, "
                "updated_reason, updated_source, updated_at) "
                "VALUES (:k, 1, :cand, :kind, '[]', 0, 0, '', '{}', 2, 'x', 'y', :src, :ts)"),
                {"k": key, "cand": None if kind == "none" else 1, "kind": kind, "src": source, "ts": ts})
    engine.dispose()
    reg = Registry(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        assert [reg.serving_state(k).owner for k in "abc"] == ["rollout-a", None, None]
    finally:
        reg.close()


def test_a_segments_holdback_is_stored_and_served(reg: Registry) -> None:
    held = Exposure(candidate_version=2, stage="internal", stage_kind="segments", segments=["internal"],
                    holdback=0.25, salt="s")
    reg.claim(KEY, "rollout-a", by="alice", reason="rollout of v2")
    reg.apply_exposure(KEY, held, by="alice", reason="stage", source="rollout-a", owner="rollout-a")
    assert reg.serving_state(KEY).exposure == held
    assert reg.audit(KEY)[-1].after["exposure"]["holdback"] == 0.25
