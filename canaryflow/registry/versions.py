"""Repository functions for configs and their immutable versions (called inside a transaction)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from canaryflow.domain.config import ConfigSpec
from canaryflow.errors import NotFound, ValidationFailed
from canaryflow.registry import records
from canaryflow.registry._sql import add_audit, insert_ignore, locked
from canaryflow.registry.judges import check_named_judges, check_used_as_judge
from canaryflow.registry.records import ConfigSummary, PushResult, VersionRecord
from canaryflow.registry.tables import ConfigRow, ServingStateRow, VersionRow, utcnow


def _check_judges(session: Session, spec: ConfigSpec) -> None:
    """Refuse a ``judge`` / ``pairwise`` evaluator naming a judge config (or version) not pushed yet."""
    for i, ev in enumerate(spec.evaluators or ()):
        if not ev.is_judge or ev.judge is None:
            continue
        row = session.get(ConfigRow, ev.judge)
        field = f"evaluators[{i}].judge"
        if row is None or row.latest_version < 1:
            raise ValidationFailed(f"{ev.name!r} names judge config {ev.judge!r}, which does not exist: push "
                                   "the judge config first (canaryflow config push JUDGE.yaml)", source=field)
        if ev.version is not None and ev.version > row.latest_version:
            raise ValidationFailed(f"{ev.name!r} names {ev.judge} v{ev.version}, but its latest version is "
                                   f"v{row.latest_version}", source=f"evaluators[{i}].version")


def push(session: Session, spec: ConfigSpec, *, author: str | None, rationale: str | None,
         source: str) -> PushResult:
    """Store ``spec`` as the key's next version unless identical content is already stored.

    The config row is locked first, so concurrent pushes of one key number their versions one after the
    other. The first version of a key becomes its stable version (audited as ``set_stable``).
    """
    key = spec.key
    _check_judges(session, spec)
    check_named_judges(session, spec)
    check_used_as_judge(session, spec)
    digest = spec.content_hash()
    now = utcnow()
    insert_ignore(session, ConfigRow, key=key, latest_version=0, created_at=now)
    config = locked(session, ConfigRow, ConfigRow.key == key)
    assert config is not None
    existing = session.exec(
        select(VersionRow).where(VersionRow.config_key == key, VersionRow.content_hash == digest)
    ).first()
    if existing is not None:
        return PushResult(key=key, version=existing.version, created=False, content_hash=digest)

    author = author or spec.metadata.author
    rationale = rationale or spec.metadata.rationale
    version = config.latest_version + 1
    config.latest_version = version
    session.add(config)
    session.add(VersionRow(config_key=key, version=version, content_hash=digest, author=author,
                           rationale=rationale, labels=list(spec.metadata.labels),
                           spec=spec.model_dump(mode="json", exclude_none=True, by_alias=True),
                           created_at=now))

    insert_ignore(session, ServingStateRow, config_key=key, stage_kind="none", exposed_segments=[],
                  percent=0.0, shadow_fraction=0.0, holdback=0.0, salt="", pins={}, revision=0, updated_by="",
                  updated_reason="", updated_source="", updated_at=now)
    state = locked(session, ServingStateRow, ServingStateRow.config_key == key)
    assert state is not None
    actor = author or "unknown"
    before = records.state_view(records.serving_state(state))
    state.revision += 1
    add_audit(session, key, "push_version", actor=actor, source=source, reason=rationale or "",
              after={"version": version, "content_hash": digest, "labels": list(spec.metadata.labels)})
    became_stable = state.stable_version is None
    if became_stable:
        state.stable_version = version
        state.revision += 1
        add_audit(session, key, "set_stable", actor=actor, source=source,
                  reason="the first version of a config becomes stable automatically",
                  before=before, after=records.state_view(records.serving_state(state)))
    state.updated_by, state.updated_reason, state.updated_source = actor, f"pushed v{version}", source
    state.updated_at = now
    session.add(state)
    return PushResult(key=key, version=version, created=True, content_hash=digest,
                      became_stable=became_stable)


def known_keys(session: Session) -> list[str]:
    """Every config key, sorted."""
    return list(session.exec(select(ConfigRow.key).order_by(col(ConfigRow.key))).all())


def unknown_config(session: Session, key: str) -> NotFound:
    """The error for an unknown key, listing the known ones."""
    keys = known_keys(session)
    hint = f"known: {', '.join(keys[:20])}" if keys else "the registry is empty"
    return NotFound(f"unknown config {key!r} ({hint}); push it with 'canaryflow config push FILE'")


def get(session: Session, key: str, version: int | None) -> VersionRecord:
    """One version (``None``: the latest); :class:`NotFound` names what exists."""
    query = select(VersionRow).where(VersionRow.config_key == key)
    if version is None:
        row = session.exec(query.order_by(col(VersionRow.version).desc())).first()
    else:
        row = session.exec(query.where(VersionRow.version == version)).first()
    if row is None:
        config = session.get(ConfigRow, key)
        if config is None:
            raise unknown_config(session, key)
        raise NotFound(f"config {key!r} has no version {version} (versions 1..{config.latest_version})")
    return records.version_record(row)


def all_versions(session: Session, key: str) -> list[VersionRecord]:
    """Every version of ``key``, oldest first."""
    rows = session.exec(
        select(VersionRow).where(VersionRow.config_key == key).order_by(col(VersionRow.version))
    ).all()
    if not rows:
        raise unknown_config(session, key)
    return [records.version_record(r) for r in rows]


def specs(session: Session, key: str, wanted: set[int]) -> dict[int, ConfigSpec]:
    """The specs of the given versions of ``key``."""
    if not wanted:
        return {}
    rows = session.exec(
        select(VersionRow).where(VersionRow.config_key == key, col(VersionRow.version).in_(sorted(wanted)))
    ).all()
    return {r.version: ConfigSpec.model_validate(r.spec) for r in rows}


def require_version(session: Session, key: str, version: int) -> None:
    """Raise :class:`NotFound` unless ``key`` has ``version``."""
    found = session.exec(
        select(VersionRow.id).where(VersionRow.config_key == key, VersionRow.version == version)
    ).first()
    if found is None:
        config = session.get(ConfigRow, key)
        if config is None:
            raise unknown_config(session, key)
        raise NotFound(f"config {key!r} has no version {version} (versions 1..{config.latest_version})")


def summaries(session: Session) -> list[ConfigSummary]:
    """One summary per config, sorted by key."""
    rows = session.exec(
        select(ConfigRow, ServingStateRow)
        .join(ServingStateRow, col(ServingStateRow.config_key) == col(ConfigRow.key), isouter=True)
        .order_by(col(ConfigRow.key))
    ).all()
    return [
        ConfigSummary(key=c.key, latest_version=c.latest_version,
                      stable_version=s.stable_version if s else None,
                      candidate_version=s.candidate_version if s else None,
                      stage_kind=s.stage_kind if s else "none", revision=s.revision if s else 0)
        for c, s in rows
    ]


__all__ = ["all_versions", "get", "push", "require_version", "specs", "summaries", "unknown_config"]
