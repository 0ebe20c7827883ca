"""The registry: configs, immutable versions, segments, serving state and the audit trail (SQLModel,
SQLite or PostgreSQL, Alembic migrations)."""

from canaryflow.registry.records import (
    SEGMENTS_REVISION_KEY,
    AuditEvent,
    ConfigSummary,
    PushResult,
    VersionRecord,
)
from canaryflow.registry.registry import Registry

__all__ = ["SEGMENTS_REVISION_KEY", "AuditEvent", "ConfigSummary", "PushResult", "Registry", "VersionRecord"]
