"""What the registry returns: plain pydantic records (JSON-ready with ``model_dump(mode="json")``)
and the conversions between table rows and domain models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.segments import Segment
from canaryflow.domain.serving import Exposure, ServingState
from canaryflow.registry.tables import AuditEventRow, SegmentRow, ServingStateRow, VersionRow

SEGMENTS_REVISION_KEY = "@segments"
"""The key under which :meth:`Registry.revisions` reports the global segments revision."""


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PushResult(_Record):
    """The outcome of a push: the version the content has, and whether this push created it."""

    key: str
    version: int
    created: bool
    content_hash: str
    became_stable: bool = False  # the first version of a config becomes its stable version


class VersionRecord(_Record):
    """One immutable stored version."""

    key: str
    version: int
    spec: ConfigSpec
    content_hash: str
    author: str | None = None
    rationale: str | None = None
    labels: list[str] = Field(default_factory=list)
    created_at: datetime


class ConfigSummary(_Record):
    """One line of ``config list``."""

    key: str
    latest_version: int
    stable_version: int | None
    candidate_version: int | None
    stage_kind: str
    revision: int


class AuditEvent(_Record):
    """One entry of the append-only audit trail."""

    id: int
    at: datetime
    config_key: str | None
    action: str
    actor: str
    source: str
    reason: str
    before: dict[str, Any] = Field(default_factory=dict)
    after: dict[str, Any] = Field(default_factory=dict)


def version_record(row: VersionRow) -> VersionRecord:
    """A stored version row as a record."""
    return VersionRecord(key=row.config_key, version=row.version, spec=ConfigSpec.model_validate(row.spec),
                         content_hash=row.content_hash, author=row.author, rationale=row.rationale,
                         labels=list(row.labels), created_at=row.created_at)


def serving_state(row: ServingStateRow) -> ServingState:
    """A serving state row as the domain model."""
    exposure = Exposure(candidate_version=row.candidate_version, stage=row.stage,
                        stage_kind=row.stage_kind,  # validated by pydantic
                        segments=list(row.exposed_segments), percent=row.percent,
                        shadow_fraction=row.shadow_fraction, holdback=row.holdback, salt=row.salt)
    return ServingState(config_key=row.config_key, stable_version=row.stable_version, exposure=exposure,
                        pins={str(k): int(v) for k, v in row.pins.items()}, owner=row.owner,
                        revision=row.revision,
                        updated_by=row.updated_by, updated_reason=row.updated_reason,
                        updated_source=row.updated_source, updated_at=row.updated_at)


def state_view(state: ServingState) -> dict[str, Any]:
    """What an audit event records of a serving state: who serves whom (not the bookkeeping)."""
    return {"stable_version": state.stable_version, "exposure": state.exposure.model_dump(mode="json"),
            "pins": dict(state.pins), "owner": state.owner, "revision": state.revision}


def apply_to_row(row: ServingStateRow, stable: int | None, exposure: Exposure, pins: dict[str, int],
                 owner: str | None) -> None:
    """Write who-serves-whom into a row (the caller bumps the revision and stamps who/why)."""
    row.owner = owner
    row.stable_version = stable
    row.candidate_version = exposure.candidate_version
    row.stage = exposure.stage
    row.stage_kind = exposure.stage_kind
    row.exposed_segments = list(exposure.segments)
    row.percent = exposure.percent
    row.shadow_fraction = exposure.shadow_fraction
    row.holdback = exposure.holdback
    row.salt = exposure.salt
    row.pins = dict(pins)


def segment(row: SegmentRow) -> Segment:
    """A stored segment as the domain model."""
    return Segment.model_validate(row.spec)


def audit_event(row: AuditEventRow) -> AuditEvent:
    """A stored audit row as a record."""
    assert row.id is not None
    return AuditEvent(id=row.id, at=row.at, config_key=row.config_key, action=row.action, actor=row.actor,
                      source=row.source, reason=row.reason, before=dict(row.before), after=dict(row.after))


__all__ = [
    "SEGMENTS_REVISION_KEY",
    "AuditEvent",
    "ConfigSummary",
    "PushResult",
    "VersionRecord",
]
