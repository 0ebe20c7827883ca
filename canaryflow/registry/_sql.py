"""Small SQL helpers shared by the repository modules: insert-if-absent, row locks, audit rows, counters."""

from __future__ import annotations

from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel, select

from canaryflow.errors import ValidationFailed
from canaryflow.registry.tables import AuditEventRow, CounterRow, utcnow

T = TypeVar("T", bound=SQLModel)


def insert_ignore(session: Session, model: type[SQLModel], **values: Any) -> None:
    """``INSERT ... ON CONFLICT DO NOTHING`` (waits for a concurrent insert of the same key to settle)."""
    table: sa.Table = model.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise ValidationFailed(f"unsupported database {dialect!r}: use sqlite or postgresql")
    session.execute(stmt)


def locked(session: Session, model: type[T], *where: Any) -> T | None:
    """The row matching ``where``, locked ``FOR UPDATE`` until the transaction ends (PostgreSQL)."""
    return session.exec(select(model).where(*where).with_for_update()).first()


def bump_counter(session: Session, name: str) -> int:
    """Increment the named counter under a row lock and return its new value."""
    insert_ignore(session, CounterRow, name=name, value=0)
    row = locked(session, CounterRow, CounterRow.name == name)
    assert row is not None
    row.value += 1
    session.add(row)
    return row.value


def add_audit(session: Session, key: str | None, action: str, *, actor: str, source: str, reason: str,
              before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
    """Append an audit event in the caller's transaction."""
    session.add(AuditEventRow(at=utcnow(), config_key=key, action=action, actor=actor, source=source,
                              reason=reason, before=before or {}, after=after or {}))


def require_actor(by: str) -> str:
    """Every change names who made it."""
    if not by or not by.strip():
        raise ValidationFailed("by: name who makes the change (e.g. --by alice)")
    return by.strip()


__all__ = ["add_audit", "bump_counter", "insert_ignore", "locked", "require_actor"]
