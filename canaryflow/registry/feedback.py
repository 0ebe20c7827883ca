"""Feedback once per request, and what the gates read of it.

* :func:`put_feedback` stores feedback keyed by request id: a later feedback for the same request replaces
  the earlier one (sentiment and comment), so one request counts once whatever is sent; it returns the
  sentiment it replaced. The row carries the request's own config, version, variation, segment and serving
  time (from its signed request id), not the time the feedback arrived.
* :func:`feedback_counts` is what the ``negative_feedback_rate`` gate reads: how many **requests served in a
  time window** (by their serving time) received feedback, and how many of those are negative now. Late
  feedback is counted in the window its request was served in, never in the current stage; replacement never
  double counts. The denominator of the gate is ``FeedbackCounts.total`` (requests that received feedback).
* :func:`signing_key` is the key every gateway replica and SDK sharing this registry signs request ids with
  (created once, at random, on first use).

Every function takes a :class:`~canaryflow.registry.Registry` or its SQLAlchemy engine.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from canaryflow.registry.db import translate_errors, write_session
from canaryflow.registry.tables import FeedbackRow, SettingRow, utcnow

SIGNING_KEY = "request_id_signing_key"


def _engine(target: Any) -> Engine:
    engine = getattr(target, "engine", target)
    if not isinstance(engine, Engine):
        raise TypeError(f"expected a Registry or an SQLAlchemy Engine, got {type(target).__name__}")
    return engine


def signing_key(target: Any) -> bytes:
    """The registry-wide key that signs request ids (32 random bytes, created on first use).

    Raises:
        RegistryUnavailable: the database cannot be reached.
    """
    engine = _engine(target)
    with translate_errors(str(engine.url)):
        with Session(engine) as session:
            row = session.get(SettingRow, SIGNING_KEY)
            if row is not None:
                return bytes.fromhex(row.value)
        try:
            with write_session(engine) as session:
                session.add(SettingRow(name=SIGNING_KEY, value=secrets.token_hex(32)))
        except IntegrityError:  # another process created it first: use theirs
            pass
        with Session(engine) as session:
            row = session.get(SettingRow, SIGNING_KEY)
            assert row is not None
            return bytes.fromhex(row.value)


@dataclass(frozen=True)
class FeedbackCounts:
    """Requests that received feedback (``total``) and how many of them are negative / positive now."""

    positive: int
    negative: int

    @property
    def total(self) -> int:
        """Requests that received feedback: the denominator of ``negative_feedback_rate``."""
        return self.positive + self.negative


def put_feedback(target: Any, *, request_id: str, config_key: str, version: int, variation: str,
                 segment: str, served_at: datetime, sentiment: str, comment: str | None = None) -> str | None:
    """Store feedback on one request, replacing any earlier feedback on it.

    Returns:
        The sentiment it replaced, or None if it is the request's first feedback.
    """
    engine = _engine(target)
    for _ in range(3):  # a concurrent first feedback on another replica wins the insert: update it then
        try:
            with translate_errors(str(engine.url)), write_session(engine) as session:
                row = session.exec(select(FeedbackRow).where(FeedbackRow.request_id == request_id)).first()
                if row is None:
                    session.add(FeedbackRow(request_id=request_id, config_key=config_key, version=version,
                                            variation=variation, segment=segment or "none",
                                            sentiment=sentiment, comment=comment, served_at=served_at))
                    return None
                before = row.sentiment
                row.sentiment, row.comment, row.updated_at = sentiment, comment, utcnow()
                session.add(row)
                return before
        except IntegrityError:
            continue
    raise RuntimeError(f"feedback on {request_id!r} kept colliding with concurrent writes")


def feedback_counts(target: Any, config_key: str, version: int, variation: str, *,
                    segments: Sequence[str] | None = None, served_from: datetime | None = None,
                    served_to: datetime | None = None) -> FeedbackCounts:
    """Feedback on the requests of one variation served in ``[served_from, served_to)``.

    Args:
        config_key: the config.
        version: the version that served the requests.
        variation: ``stable``, ``candidate``, ``pinned`` or ``shadow``.
        segments: only requests of these segments (``none`` = no segment matched); None: all.
        served_from: requests served at or after this time (None: no lower bound).
        served_to: requests served before this time (None: no upper bound).

    Each request counts once (its latest sentiment), in the window its request was served in.
    """
    stmt = (select(FeedbackRow.sentiment, sa.func.count())
            .where(FeedbackRow.config_key == config_key, FeedbackRow.version == version,
                   FeedbackRow.variation == variation)
            .group_by(col(FeedbackRow.sentiment)))
    if segments is not None:
        stmt = stmt.where(col(FeedbackRow.segment).in_(list(segments)))
    if served_from is not None:
        stmt = stmt.where(col(FeedbackRow.served_at) >= served_from)
    if served_to is not None:
        stmt = stmt.where(col(FeedbackRow.served_at) < served_to)
    engine = _engine(target)
    with translate_errors(str(engine.url)), Session(engine) as session:
        counts = {str(s): int(n) for s, n in session.exec(stmt).all()}
    return FeedbackCounts(positive=counts.get("positive", 0), negative=counts.get("negative", 0))


__all__ = ["SIGNING_KEY", "FeedbackCounts", "feedback_counts", "put_feedback", "signing_key"]
