"""The registry's tables (SQLModel). The schema itself is created and upgraded by the Alembic
migrations in ``canaryflow/registry/migrations``; these classes must match their head revision
(``tests/test_registry.py`` checks it).

Versions, audit events, traffic and feedback rows are append-only: nothing updates or deletes them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, SQLModel


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def _ts(*, index: bool = False) -> Any:
    return Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=index))


def _json(default: Any) -> Any:
    return Field(default_factory=default, sa_column=Column(JSON, nullable=False))


class ConfigRow(SQLModel, table=True):
    """One config key; ``latest_version`` numbers the next push (locked while pushing)."""

    __tablename__ = "configs"

    key: str = Field(primary_key=True, max_length=63)
    latest_version: int = 0
    created_at: datetime = _ts()


class VersionRow(SQLModel, table=True):
    """An immutable version of a config."""

    __tablename__ = "config_versions"
    __table_args__ = (
        sa.UniqueConstraint("config_key", "version", name="uq_config_versions_key_version"),
        sa.UniqueConstraint("config_key", "content_hash", name="uq_config_versions_key_hash"),
    )

    id: int | None = Field(default=None, primary_key=True)
    config_key: str = Field(foreign_key="configs.key", max_length=63)
    version: int
    content_hash: str = Field(max_length=64)
    author: str | None = None
    rationale: str | None = None
    labels: list[str] = _json(list)
    spec: dict[str, Any] = _json(dict)
    created_at: datetime = _ts()


class SegmentRow(SQLModel, table=True):
    """The current definition of a named segment (its history is in the audit log)."""

    __tablename__ = "segments"

    name: str = Field(primary_key=True, max_length=63)
    spec: dict[str, Any] = _json(dict)
    position: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    updated_by: str = ""
    updated_at: datetime = _ts()


class CounterRow(SQLModel, table=True):
    """Named counters; ``segments`` is the global segments revision."""

    __tablename__ = "counters"

    name: str = Field(primary_key=True, max_length=63)
    value: int = 0


class ServingStateRow(SQLModel, table=True):
    """Which version serves whom for one config; ``revision`` grows on every change."""

    __tablename__ = "serving_state"

    config_key: str = Field(primary_key=True, foreign_key="configs.key", max_length=63)
    stable_version: int | None = None
    candidate_version: int | None = None
    stage: str | None = None
    stage_kind: str = "none"
    exposed_segments: list[str] = _json(list)
    percent: float = 0.0
    shadow_fraction: float = 0.0
    holdback: float = 0.0
    salt: str = ""
    pins: dict[str, int] = _json(dict)
    owner: str | None = Field(default=None, max_length=255)
    revision: int = 0
    updated_by: str = ""
    updated_reason: str = ""
    updated_source: str = ""
    updated_at: datetime = _ts()


class AuditEventRow(SQLModel, table=True):
    """One append-only audit event: who changed what, from where, why, before and after."""

    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_key_id", "config_key", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _ts()
    config_key: str | None = Field(default=None, max_length=63)
    action: str = Field(max_length=64)
    actor: str = ""
    source: str = ""
    reason: str = ""
    before: dict[str, Any] = _json(dict)
    after: dict[str, Any] = _json(dict)


class TrafficLogRow(SQLModel, table=True):
    """A sampled request/response (repository functions: ``canaryflow.registry.traffic``)."""

    __tablename__ = "traffic_log"
    __table_args__ = (sa.Index("ix_traffic_log_key_version_created", "config_key", "version", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(index=True, max_length=128)
    config_key: str = Field(max_length=63)
    version: int
    variation: str = Field(max_length=16)
    created_at: datetime = _ts()
    request_json: dict[str, Any] = _json(dict)
    response_json: dict[str, Any] = _json(dict)
    latency_ms: float | None = None
    error_type: str | None = Field(default=None, max_length=32)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None


class FeedbackRow(SQLModel, table=True):
    """End-user feedback on one request (repository functions: ``canaryflow.registry.traffic``)."""

    __tablename__ = "feedback"
    __table_args__ = (sa.Index("ix_feedback_key_version", "config_key", "version"),
                      sa.Index("ix_feedback_key_version_served", "config_key", "version", "served_at"))

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(index=True, unique=True, max_length=128)  # one row per request: replaced
    config_key: str = Field(max_length=63)
    version: int
    variation: str = Field(max_length=16)
    segment: str = Field(default="none", max_length=63,
                         sa_column_kwargs={"server_default": "none"})
    sentiment: str = Field(max_length=16)
    comment: str | None = None
    created_at: datetime = _ts()
    served_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    updated_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class ImplicitFeedbackRow(SQLModel, table=True):
    """One implicit event (``edited``, ``copied``, …) on one request: a later one of the same kind replaces
    it (repository functions: ``canaryflow.registry.feedback``)."""

    __tablename__ = "implicit_feedback"
    __table_args__ = (sa.UniqueConstraint("request_id", "event", name="uq_implicit_request_event"),
                      sa.Index("ix_implicit_key_version_served", "config_key", "version", "served_at"))

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(max_length=128)
    event: str = Field(max_length=32)
    value: float | None = None
    config_key: str = Field(max_length=63)
    version: int
    variation: str = Field(max_length=16)
    segment: str = Field(default="none", max_length=63)
    served_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    created_at: datetime = _ts()
    updated_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class EvaluationRow(SQLModel, table=True):
    """One online evaluator's result on one answer (live, shadow or replayed): a score in [0, 1], whether it
    passed, a label and a short reason — never the prompt or the answer (``canaryflow.registry.evaluations``).
    """

    __tablename__ = "evaluations"
    __table_args__ = (sa.Index("ix_evaluations_key_version", "config_key", "version", "evaluator"),
                      sa.Index("ix_evaluations_request", "request_id"))

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(max_length=128)
    config_key: str = Field(max_length=63)
    version: int
    variation: str = Field(max_length=16)
    segment: str = Field(default="none", max_length=63)
    evaluator: str = Field(max_length=63)
    source: str = Field(max_length=16)
    score: float
    passed: bool
    label: str = Field(default="", max_length=63)
    reason: str = Field(default="", max_length=160)
    created_at: datetime = _ts()


class SettingRow(SQLModel, table=True):
    """Registry-wide settings shared by every process, e.g. the key that signs request ids."""

    __tablename__ = "settings"

    name: str = Field(primary_key=True, max_length=63)
    value: str = Field(max_length=256)


class MeasurementRow(SQLModel, table=True):
    """The full evidence of one gate measured once during a rollout (append-only; repository functions:
    ``canaryflow.registry.evidence``). The workflow carries only counters and the last measurements."""

    __tablename__ = "measurements"
    __table_args__ = (
        sa.Index("ix_measurements_rollout_stage_id", "rollout_id", "stage", "id"),
        sa.Index("ix_measurements_key_id", "config_key", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    rollout_id: str = Field(max_length=200)
    config_key: str = Field(max_length=63)
    candidate_version: int
    stage: str = Field(max_length=63)
    gate: str = Field(max_length=128)
    verdict: str = Field(max_length=16)
    dry_run: bool = False
    measured_at: datetime = _ts()
    evidence: dict[str, Any] = _json(dict)
    recorded_at: datetime = _ts()


__all__ = [
    "AuditEventRow",
    "ConfigRow",
    "CounterRow",
    "EvaluationRow",
    "FeedbackRow",
    "ImplicitFeedbackRow",
    "MeasurementRow",
    "SegmentRow",
    "ServingStateRow",
    "SettingRow",
    "TrafficLogRow",
    "UTCDateTime",
    "VersionRow",
    "utcnow",
]
