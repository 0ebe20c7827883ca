"""The registry against real SQLite and real PostgreSQL: versions, serving state, audit, concurrency,
migrations."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.gates import Evidence, Measurement, Verdict
from canaryflow.domain.resolution import CompiledConfig
from canaryflow.domain.segments import SegmentFile
from canaryflow.domain.serving import Exposure
from canaryflow.errors import NotFound, RegistryUnavailable, ValidationFailed
from canaryflow.registry import SEGMENTS_REVISION_KEY, Registry, traffic
from canaryflow.registry import db as registry_db
from canaryflow.registry.tables import AuditEventRow
from tests.servers import free_port


def spec(key: str = "support-bot", model: str = "gpt-4o-mini", **extra: Any) -> ConfigSpec:
    data = {"key": key, "provider": "openai", "model": model,
            "messages": [{"role": "system", "content": "Help with {{product}}."}], **extra}
    return ConfigSpec.model_validate(data)


SEGMENTS = SegmentFile.model_validate({"segments": [
    {"name": "internal", "rules": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}]},
    {"name": "beta", "rules": [{"attribute": "beta", "op": "equals", "values": [True]}]},
]})


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def reg(url: str) -> Iterator[Registry]:
    registry = Registry(url)
    yield registry
    registry.close()


def test_versions_are_numbered_immutable_and_deduplicated(reg: Registry) -> None:
    first = reg.push_config(spec(), author="alice", rationale="first")
    assert (first.version, first.created) == (1, True)
    again = reg.push_config(spec(metadata={"rationale": "same content, other words"}), author="bob")
    assert (again.version, again.created, again.content_hash) == (1, False, first.content_hash)
    second = reg.push_config(spec(model="gpt-4o"), author="bob", rationale="bigger model")
    assert (second.version, second.created) == (2, True)
    v1 = reg.get_version("support-bot", 1)
    assert (v1.spec.model, v1.author, v1.rationale, v1.content_hash) == ("gpt-4o-mini", "alice", "first",
                                                                          first.content_hash)
    assert reg.get_version("support-bot").version == 2
    assert [v.version for v in reg.versions("support-bot")] == [1, 2]
    assert len(first.content_hash) == 64


def test_first_version_becomes_stable_with_an_audit_event(reg: Registry) -> None:
    reg.push_config(spec(), author="alice")
    state = reg.serving_state("support-bot")
    assert state.stable_version == 1
    actions = [(e.action, e.actor) for e in reg.audit("support-bot")]
    assert actions == [("push_version", "alice"), ("set_stable", "alice")]
    assert reg.audit("support-bot")[-1].after["stable_version"] == 1
    reg.push_config(spec(model="gpt-4o"))
    assert reg.serving_state("support-bot").stable_version == 1


def test_unknown_things_raise_not_found_naming_what_exists(reg: Registry) -> None:
    reg.push_config(spec())
    with pytest.raises(NotFound, match="known: support-bot"):
        reg.serving_state("nope")
    with pytest.raises(NotFound, match="no version 7"):
        reg.get_version("support-bot", 7)
    with pytest.raises(NotFound, match="no version 9"):
        reg.set_stable("support-bot", 9, by="al", reason="x")
    with pytest.raises(ValidationFailed, match="unknown segment"):
        reg.pin("support-bot", "internal", 1, by="al", reason="x")
    with pytest.raises(ValidationFailed, match="by: name who"):
        reg.set_stable("support-bot", 1, by=" ", reason="x")


def test_every_change_bumps_the_revision_and_idempotent_changes_do_not(reg: Registry) -> None:
    reg.push_config(spec())
    reg.push_config(spec(model="gpt-4o"))
    reg.push_segments(SEGMENTS, by="alice")
    rev = reg.revisions()["support-bot"]
    exposure = Exposure(candidate_version=2, stage="internal", stage_kind="segments", segments=["internal"])
    events = len(reg.audit())
    for _ in range(2):
        state = reg.apply_exposure("support-bot", exposure, by="wf", reason="stage internal",
                                   source="rollout-x")
        assert state.revision == rev + 1
    assert len(reg.audit()) == events + 1
    for _ in range(2):
        state = reg.clear_exposure("support-bot", by="wf", reason="rollback", source="rollout-x")
        assert (state.revision, state.exposure) == (rev + 2, Exposure.none())
    for _ in range(2):
        state = reg.promote("support-bot", 2, by="wf", reason="passed", source="rollout-x")
        assert (state.stable_version, state.revision) == (2, rev + 3)
    assert reg.revisions()["support-bot"] == rev + 3
    actions = [e.action for e in reg.audit("support-bot")]
    assert actions[-3:] == ["apply_exposure", "clear_exposure", "promote"]
    last = reg.audit("support-bot")[-1]
    assert (last.actor, last.source, last.before["stable_version"], last.after["stable_version"]) == (
        "wf", "rollout-x", 1, 2)


def test_segments_revision_moves_only_when_a_segment_changes(reg: Registry) -> None:
    assert reg.revisions()[SEGMENTS_REVISION_KEY] == 0
    assert reg.push_segments(SEGMENTS, by="alice") == ["internal", "beta"]
    assert reg.push_segments(SEGMENTS, by="alice") == []
    assert reg.revisions()[SEGMENTS_REVISION_KEY] == 1
    changed = SegmentFile.model_validate({"segments": [
        {"name": "beta", "rules": [{"attribute": "plan", "op": "in", "values": ["pro"]}]}]})
    assert reg.push_segments(changed, by="bob") == ["beta"]
    assert reg.revisions()[SEGMENTS_REVISION_KEY] == 2
    assert [s.name for s in reg.segments()] == ["beta", "internal"]
    assert [e.action for e in reg.audit()] == ["create_segment", "create_segment", "push_segment"]


def test_pins_and_exposure_validation(reg: Registry) -> None:
    reg.push_config(spec())
    reg.push_config(spec(model="gpt-4o"))
    reg.push_segments(SEGMENTS, by="alice")
    assert reg.pin("support-bot", "internal", 2, by="al", reason="dogfood").pins == {"internal": 2}
    assert reg.unpin("support-bot", "internal", by="al", reason="done").pins == {}
    rev = reg.serving_state("support-bot").revision
    assert reg.unpin("support-bot", "internal", by="al", reason="again").revision == rev
    with pytest.raises(ValidationFailed, match="already stable"):
        reg.apply_exposure("support-bot", Exposure(candidate_version=1, stage_kind="full"), by="wf",
                           reason="x", source="wf")
    with pytest.raises(ValidationFailed, match="unknown segment"):
        reg.apply_exposure("support-bot", Exposure(candidate_version=2, stage_kind="segments",
                                                   segments=["gold"]), by="wf", reason="x", source="wf")
    assert reg.serving_state("support-bot").revision == rev


def test_a_failing_audit_write_rolls_the_change_back(reg: Registry) -> None:
    reg.push_config(spec())
    reg.push_config(spec(model="gpt-4o"))
    before = reg.serving_state("support-bot")

    def refuse(*_: Any) -> None:
        raise RuntimeError("audit storage refused the event")

    sa.event.listen(AuditEventRow, "before_insert", refuse)
    try:
        with pytest.raises(RuntimeError, match="audit storage refused"):
            reg.set_stable("support-bot", 2, by="al", reason="try")
    finally:
        sa.event.remove(AuditEventRow, "before_insert", refuse)
    assert reg.serving_state("support-bot") == before
    reg.set_stable("support-bot", 2, by="al", reason="now it works")
    assert reg.serving_state("support-bot").stable_version == 2


def test_record_audit_and_configs_summary(reg: Registry) -> None:
    reg.push_config(spec())
    reg.record_audit("support-bot", "approval_refused", actor="mallory", source="rollout-support-bot",
                     reason="not an approver", details={"stage": "internal"})
    event = reg.audit("support-bot", limit=1)[0]
    assert (event.action, event.actor, event.after) == ("approval_refused", "mallory", {"stage": "internal"})
    summary = reg.configs()[0]
    assert (summary.key, summary.latest_version, summary.stable_version, summary.stage_kind) == (
        "support-bot", 1, 1, "none")


def _push_many(url: str, worker: int, count: int) -> list[int]:
    registry = Registry(url)
    try:
        return [registry.push_config(spec(model=f"m-{worker}-{i}")).version for i in range(count)]
    finally:
        registry.close()


def test_concurrent_pushes_get_consecutive_versions_threads(url: str) -> None:
    Registry(url).close()
    results: list[list[int]] = [[] for _ in range(6)]
    barrier = threading.Barrier(6)

    def run(worker: int) -> None:
        barrier.wait()
        results[worker] = _push_many(url, worker, 5)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = sorted(v for r in results for v in r)
    assert got == list(range(1, 31))
    reg = Registry(url)
    assert [v.version for v in reg.versions("support-bot")] == list(range(1, 31))
    assert len({v.content_hash for v in reg.versions("support-bot")}) == 30


@pytest.mark.postgres
def test_concurrent_pushes_get_consecutive_versions_processes(postgres_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        results = pool.starmap(_push_many, [(postgres_url, w, 5) for w in range(4)])
    assert sorted(v for r in results for v in r) == list(range(1, 21))
    same = [spec(model="identical")] * 8
    threads_out: list[int] = []
    reg = Registry(postgres_url)
    lock = threading.Lock()

    def push_same(s: ConfigSpec) -> None:
        v = reg.push_config(s).version
        with lock:
            threads_out.append(v)

    threads = [threading.Thread(target=push_same, args=(s,)) for s in same]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert threads_out == [21] * 8


def test_migration_upgrade_keeps_existing_data(url: str) -> None:
    engine = registry_db.create_engine(url)
    registry_db.migrate(engine, "0001")
    assert registry_db.current_revision(engine) == "0001"
    ts = "2026-01-01T00:00:00+00:00"
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO configs (key, latest_version, created_at) VALUES ('old', 1, :ts)"),
                     {"ts": ts})
        conn.execute(sa.text(
            "INSERT INTO config_versions (config_key, version, content_hash, author, rationale, labels, "
            "spec, created_at) VALUES ('old', 1, :h, 'carol', 'legacy', '[]', :spec, :ts)"),
            {"h": spec(key="old").content_hash(), "spec": spec(key="old").model_dump_json(), "ts": ts})
        conn.execute(sa.text(
            "INSERT INTO serving_state (config_key, stable_version, stage_kind, exposed_segments, percent, "
            "shadow_fraction, salt, pins, revision, updated_by, updated_reason, updated_source, updated_at) "
            "VALUES ('old', 1, 'none', '[]', 0, 0, '', '{}', 2, 'carol', 'seed', 'cli', :ts)"), {"ts": ts})
        conn.execute(sa.text(
            "INSERT INTO audit_events (at, config_key, action, actor, source, reason, before, after) "
            "VALUES (:ts, 'old', 'push_version', 'carol', 'cli', 'legacy', '{}', '{}')"), {"ts": ts})
        for sentiment in ("negative", "positive"):  # feedback given twice on one request, before 0005
            conn.execute(sa.text(
                "INSERT INTO feedback (request_id, config_key, version, variation, sentiment, created_at) "
                "VALUES ('r-1', 'old', 1, 'stable', :s, :ts)"), {"s": sentiment, "ts": ts})
    engine.dispose()
    reg = Registry(url)
    assert registry_db.current_revision(reg.engine) == registry_db.head_revision() == "0009"
    kept = [(f.request_id, f.sentiment) for f in traffic.feedback(reg, "old")]
    assert kept == [("r-1", "positive")]  # one row per request: the latest
    assert reg.get_version("old", 1).author == "carol"
    assert reg.serving_state("old").revision == 2
    assert [e.action for e in reg.audit("old")] == ["push_version"]
    assert reg.push_config(spec(key="old")).created is False
    assert reg.push_config(spec(key="old", model="new")).version == 2
    indexes = {i["name"] for i in sa.inspect(reg.engine).get_indexes("audit_events")}
    assert "ix_audit_events_key_id" in indexes


def test_tables_match_the_migrations(reg: Registry) -> None:
    with reg.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        diffs = compare_metadata(ctx, SQLModel.metadata)
    foreign = [d for d in diffs if not (isinstance(d, tuple) and d[0] == "remove_table")]
    assert foreign == []


def test_unreachable_database_is_registry_unavailable() -> None:
    with pytest.raises(RegistryUnavailable, match="unavailable"):
        Registry(f"postgresql+psycopg://postgres:secret@127.0.0.1:{free_port()}/nothing")


@pytest.mark.postgres
def test_a_value_too_long_for_its_column_is_a_validation_error(postgres_url: str) -> None:
    reg = Registry(postgres_url)
    reg.push_config(spec())
    with pytest.raises(ValidationFailed, match="rejected a value"):
        reg.record_audit("support-bot", "x" * 100, actor="al", source="cli", reason="", details={})
    assert reg.audit("support-bot")[-1].action == "set_stable"


def test_segments_keep_the_order_of_their_file(reg: Registry) -> None:
    """"The first matching segment" follows the file's order, so a user in both gets the first one's label."""
    file = SegmentFile.model_validate({"segments": [
        {"name": "zeta-vip", "rules": [{"attribute": "plan", "op": "equals", "values": ["pro"]}]},
        {"name": "alpha-all", "rules": [{"attribute": "plan", "op": "exists"}]},
    ]})
    reg.push_segments(file, by="alice")
    assert [s.name for s in reg.segments()] == ["zeta-vip", "alpha-all"]
    reg.push_config(spec())
    state, versions, segments = reg.snapshot("support-bot")
    compiled = CompiledConfig(state, versions, segments)
    res = compiled.resolve({"key": "u1", "attributes": {"plan": "pro"}}, {"product": "Acme"})
    assert res.segment == "zeta-vip"


def test_measurements_keep_the_full_evidence_once(reg: Registry) -> None:
    """The evidence the workflow no longer carries: stored whole, read back per rollout and stage, oldest
    first; a retried write adds nothing."""
    query = 'sum(increase(canaryflow_requests_total{config="support-bot"}[60s]))' * 20  # longer than carried
    batch = [Measurement(gate=g, verdict=Verdict.FAIL if g == "b" else Verdict.PASS, at=1_800_000_000.25 + n,
                         evidence=Evidence(candidate_value=0.05, queries=[query], note="n" * 1000))
             for n in range(3) for g in ("a", "b")]
    kw = {"rollout_id": "rollout-support-bot/run1", "config_key": "support-bot", "candidate_version": 2}
    assert reg.record_measurements(stage="canary-5", measurements=batch, **kw) == 6
    assert reg.record_measurements(stage="canary-5", measurements=batch, **kw) == 0  # retried: nothing twice
    assert reg.record_measurements(stage="canary-10", measurements=batch[:2], **kw) == 2
    rows = reg.measurements("support-bot", stage="canary-5")
    assert [(r.measurement.gate, r.measurement.verdict) for r in rows] == [("a", Verdict.PASS),
                                                                           ("b", Verdict.FAIL)] * 3
    assert rows[0].measurement.evidence.queries == [query] and len(rows[0].measurement.evidence.note) == 1000
    assert rows[0].measurement.at == 1_800_000_000.25 and rows[-1].rollout_id == "rollout-support-bot/run1"
    assert len(reg.measurements("support-bot", limit=5)) == 5 and reg.measurements("other-bot") == []
