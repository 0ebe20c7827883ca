"""Implicit feedback rows: one per request and event, attributed to the request's version, variation, segment
and serving time (from its signed request id, as explicit feedback in :mod:`canaryflow.registry.feedback`).

Every function takes a :class:`~canaryflow.registry.Registry` or its SQLAlchemy engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from canaryflow.registry.db import translate_errors, write_session
from canaryflow.registry.feedback import _engine
from canaryflow.registry.tables import ImplicitFeedbackRow, utcnow

_MISSING: Any = object()


def put_event(target: Any, *, request_id: str, event: str, value: float | None, config_key: str,
              version: int, variation: str, segment: str, served_at: datetime) -> tuple[bool, float | None]:
    """Store one implicit event on one request, replacing an earlier one of the same kind.

    Returns:
        ``(replaced, old_value)``: whether the request already had this event, and its previous value.
    """
    engine = _engine(target)
    for _ in range(3):  # a concurrent first event on another replica wins the insert: update it then
        try:
            with translate_errors(str(engine.url)), write_session(engine) as session:
                row = session.exec(select(ImplicitFeedbackRow).where(
                    ImplicitFeedbackRow.request_id == request_id, ImplicitFeedbackRow.event == event)).first()
                if row is None:
                    session.add(ImplicitFeedbackRow(
                        request_id=request_id, event=event, value=value, config_key=config_key,
                        version=version, variation=variation, segment=segment or "none", served_at=served_at))
                    return False, None
                before = row.value
                row.value, row.updated_at = value, utcnow()
                session.add(row)
                return True, before
        except IntegrityError:
            continue
    raise RuntimeError(f"implicit event {event!r} on {request_id!r} kept colliding with concurrent writes")


@dataclass(frozen=True)
class EventSummary:
    """One event of one version and variation in a window: the requests that had it, and its mean value."""

    version: int
    variation: str
    event: str
    requests: int
    mean_value: float | None


def event_summaries(target: Any, config_key: str, *, served_from: datetime | None = None,
                    served_to: datetime | None = None) -> list[EventSummary]:
    """Every implicit event of ``config_key`` on requests served in ``[served_from, served_to)``, per
    version, variation and event (each request once per event, its latest value)."""
    t = ImplicitFeedbackRow
    stmt = (sa.select(col(t.version), col(t.variation), col(t.event), sa.func.count(),
                      sa.func.avg(col(t.value)))
            .where(col(t.config_key) == config_key)
            .group_by(col(t.version), col(t.variation), col(t.event))
            .order_by(col(t.version), col(t.variation), col(t.event)))
    if served_from is not None:
        stmt = stmt.where(col(t.served_at) >= served_from)
    if served_to is not None:
        stmt = stmt.where(col(t.served_at) < served_to)
    engine = _engine(target)
    with translate_errors(str(engine.url)), Session(engine) as session:
        rows = session.execute(stmt).all()
    return [EventSummary(int(v), str(var), str(e), int(n), None if m is None else float(m))
            for v, var, e, n, m in rows]


@dataclass(frozen=True)
class TopEvent:
    """One request's event with its value (e.g. an ``edited`` answer and its edit distance)."""

    request_id: str
    version: int
    variation: str
    value: float
    served_at: datetime


def top_events(target: Any, config_key: str, version: int, *, event: str = "edited", limit: int = 5,
               served_from: datetime | None = None) -> list[TopEvent]:
    """The version's requests with the highest ``value`` of ``event`` (the most edited answers first)."""
    t = ImplicitFeedbackRow
    stmt = (select(t).where(t.config_key == config_key, t.version == version, t.event == event,
                            col(t.value).is_not(None))
            .order_by(col(t.value).desc(), col(t.served_at).desc()).limit(limit))
    if served_from is not None:
        stmt = stmt.where(col(t.served_at) >= served_from)
    engine = _engine(target)
    with translate_errors(str(engine.url)), Session(engine) as session:
        rows = session.exec(stmt).all()
    return [TopEvent(r.request_id, r.version, r.variation, float(r.value or 0.0), r.served_at) for r in rows]


__all__ = ["EventSummary", "TopEvent", "event_summaries", "put_event", "top_events"]
