"""The sampled traffic log and end-user feedback, stored in the registry database.

* :class:`TrafficLog` samples requests (``rate`` in [0, 1]) on the request path — a random draw and an append
  to a bounded in-memory buffer, nothing more — and a background thread writes them in batches, applying the
  redaction hook first and then the retention cap (the newest ``retention`` rows per config are kept; older
  ones are pruned — the one deletion the registry allows).
* :func:`sample_traffic` reads logged requests back for shadow replay; :func:`record_feedback` /
  :func:`feedback` store and list feedback.

Every function takes the SQLAlchemy engine of a :class:`~canaryflow.registry.Registry` (or the registry).
"""

from __future__ import annotations

import logging
import random
import re
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from canaryflow.registry.db import translate_errors, write_session
from canaryflow.registry.tables import FeedbackRow, TrafficLogRow, utcnow

log = logging.getLogger(__name__)

Redactor = Callable[[str], str]
"""A redaction hook: takes one string of a request or response, returns what may be stored."""

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_KEYS = re.compile(
    r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}"          # OpenAI/Anthropic/Stripe style keys (sk-..., sk-ant-...)
    r"|\bAKIA[0-9A-Z]{16}\b"                       # AWS access key ids
    r"|\b(?:ghp|gho|ghs|github_pat|xox[abp])_[A-Za-z0-9_]{16,}"
    r"|\bBearer\s+[A-Za-z0-9._~+/=-]{16,}"
)


def default_redactor(text: str) -> str:
    """Replace e-mail addresses with ``[EMAIL]`` and API-key-looking strings with ``[SECRET]``."""
    return _KEYS.sub("[SECRET]", _EMAIL.sub("[EMAIL]", text))


def redact_value(value: Any, redactor: Redactor) -> Any:
    """Apply ``redactor`` to every string inside a JSON-like value."""
    if isinstance(value, str):
        return redactor(value)
    if isinstance(value, dict):
        return {k: redact_value(v, redactor) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v, redactor) for v in value]
    return value


@dataclass
class TrafficRecord:
    """One logged request and what came back."""

    request_id: str
    config_key: str
    version: int
    variation: str
    request: dict[str, Any]
    response: dict[str, Any]
    latency_ms: float | None = None
    error_type: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class FeedbackRecord:
    """One piece of end-user feedback."""

    request_id: str
    config_key: str
    version: int
    variation: str
    sentiment: str
    comment: str | None
    created_at: datetime


def _engine(target: Any) -> Engine:
    engine = getattr(target, "engine", target)
    if not isinstance(engine, Engine):
        raise TypeError(f"expected a Registry or an SQLAlchemy Engine, got {type(target).__name__}")
    return engine


def record_traffic(target: Any, records: Sequence[TrafficRecord], *, redactor: Redactor | None = None,
                   retention: int | None = None) -> int:
    """Store records (redacted first), then prune each touched config to its newest ``retention`` rows.

    Returns:
        How many rows were written.
    """
    if not records:
        return 0
    redact = redactor or default_redactor
    rows = [TrafficLogRow(
        request_id=r.request_id, config_key=r.config_key, version=r.version, variation=r.variation,
        created_at=r.created_at, request_json=redact_value(r.request, redact),
        response_json=redact_value(r.response, redact), latency_ms=r.latency_ms, error_type=r.error_type,
        input_tokens=r.input_tokens, output_tokens=r.output_tokens, cost_usd=r.cost_usd,
    ) for r in records]
    engine = _engine(target)
    with translate_errors(str(engine.url)), write_session(engine) as session:
        session.add_all(rows)
        session.flush()
        if retention is not None:
            for key in {r.config_key for r in records}:
                _prune(session, key, retention)
    return len(rows)


def _prune(session: Session, key: str, keep: int) -> None:
    cutoff = session.exec(
        select(TrafficLogRow.id).where(TrafficLogRow.config_key == key)
        .order_by(col(TrafficLogRow.id).desc()).offset(keep).limit(1)
    ).first()
    if cutoff is not None:
        session.execute(sa.delete(TrafficLogRow).where(
            col(TrafficLogRow.config_key) == key, col(TrafficLogRow.id) <= cutoff))


def _to_record(row: TrafficLogRow) -> TrafficRecord:
    return TrafficRecord(
        request_id=row.request_id, config_key=row.config_key, version=row.version, variation=row.variation,
        request=dict(row.request_json), response=dict(row.response_json), latency_ms=row.latency_ms,
        error_type=row.error_type, input_tokens=row.input_tokens, output_tokens=row.output_tokens,
        cost_usd=row.cost_usd, created_at=row.created_at,
    )


def sample_traffic(target: Any, key: str, n: int, version: int | None = None) -> list[TrafficRecord]:
    """Up to ``n`` logged successful requests of config ``key`` (of ``version`` if given), at random.

    This is what shadow replay sends to a candidate.
    """
    stmt = select(TrafficLogRow).where(TrafficLogRow.config_key == key,
                                       col(TrafficLogRow.error_type).is_(None))
    if version is not None:
        stmt = stmt.where(TrafficLogRow.version == version)
    with Session(_engine(target)) as session:
        rows = session.exec(stmt.order_by(sa.func.random()).limit(max(0, n))).all()
        return [_to_record(r) for r in rows]


def traffic(target: Any, key: str | None = None, limit: int = 100, *, version: int | None = None,
            since: datetime | None = None) -> list[TrafficRecord]:
    """The newest logged requests (of ``version``, since ``since``), newest first."""
    stmt = select(TrafficLogRow)
    if key is not None:
        stmt = stmt.where(TrafficLogRow.config_key == key)
    if version is not None:
        stmt = stmt.where(TrafficLogRow.version == version)
    if since is not None:
        stmt = stmt.where(TrafficLogRow.created_at >= since)
    with Session(_engine(target)) as session:
        rows = session.exec(stmt.order_by(col(TrafficLogRow.id).desc()).limit(limit)).all()
        return [_to_record(r) for r in rows]


def count_traffic(target: Any, key: str, *, since: datetime | None = None) -> dict[int, int]:
    """Logged requests per version (since ``since``)."""
    version = col(TrafficLogRow.version)
    stmt = sa.select(version, sa.func.count()).where(col(TrafficLogRow.config_key) == key)
    if since is not None:
        stmt = stmt.where(col(TrafficLogRow.created_at) >= since)
    with Session(_engine(target)) as session:
        return {int(v): int(n) for v, n in session.execute(stmt.group_by(version)).all()}


def find_requests(target: Any, request_ids: Sequence[str]) -> dict[str, TrafficRecord]:
    """The logged requests among ``request_ids`` (those the traffic log sampled), by id."""
    if not request_ids:
        return {}
    with Session(_engine(target)) as session:
        rows = session.exec(select(TrafficLogRow).where(col(TrafficLogRow.request_id).in_(list(request_ids))))
        return {r.request_id: _to_record(r) for r in rows.all()}


def find_request(target: Any, request_id: str) -> TrafficRecord | None:
    """The logged request with this id, if it was sampled."""
    with Session(_engine(target)) as session:
        row = session.exec(select(TrafficLogRow).where(TrafficLogRow.request_id == request_id)).first()
        return _to_record(row) if row is not None else None


def record_feedback(target: Any, *, request_id: str, config_key: str, version: int, variation: str,
                    sentiment: str, comment: str | None = None, redactor: Redactor | None = None) -> None:
    """Store one piece of feedback (the comment goes through the redaction hook)."""
    if comment is not None:
        comment = (redactor or default_redactor)(comment)
    row = FeedbackRow(request_id=request_id, config_key=config_key, version=version, variation=variation,
                      sentiment=sentiment, comment=comment)
    engine = _engine(target)
    with translate_errors(str(engine.url)), write_session(engine) as session:
        session.add(row)


def feedback(target: Any, key: str | None = None, version: int | None = None,
             limit: int = 1000, *, since: datetime | None = None,
             sentiment: str | None = None) -> list[FeedbackRecord]:
    """Stored feedback (of ``version``, since ``since``, of one ``sentiment``), newest first."""
    stmt = select(FeedbackRow)
    if key is not None:
        stmt = stmt.where(FeedbackRow.config_key == key)
    if version is not None:
        stmt = stmt.where(FeedbackRow.version == version)
    if since is not None:
        stmt = stmt.where(FeedbackRow.created_at >= since)
    if sentiment is not None:
        stmt = stmt.where(FeedbackRow.sentiment == sentiment)
    with Session(_engine(target)) as session:
        rows = session.exec(stmt.order_by(col(FeedbackRow.id).desc()).limit(limit)).all()
        return [FeedbackRecord(r.request_id, r.config_key, r.version, r.variation, r.sentiment, r.comment,
                               r.created_at) for r in rows]


def count_feedback(target: Any, key: str, *, since: datetime | None = None,
                   version: int | None = None) -> dict[tuple[int, str], int]:
    """Every stored feedback counted by (version, sentiment), since ``since`` — no sample, no cap."""
    stmt = sa.select(col(FeedbackRow.version), col(FeedbackRow.sentiment), sa.func.count()).where(
        col(FeedbackRow.config_key) == key)
    if since is not None:
        stmt = stmt.where(col(FeedbackRow.created_at) >= since)
    if version is not None:
        stmt = stmt.where(col(FeedbackRow.version) == version)
    with Session(_engine(target)) as session:
        grouped = session.execute(stmt.group_by(col(FeedbackRow.version), col(FeedbackRow.sentiment))).all()
        return {(int(v), str(sent)): int(n) for v, sent, n in grouped}


class TrafficLog:
    """Samples requests on the hot path and writes them in batches from a background thread.

    Args:
        target: the registry (or its engine) to write to.
        rate: share of requests logged, in [0, 1].
        redactor: applied to every string before storage (default :func:`default_redactor`).
        retention: rows kept per config (oldest pruned).
        flush_interval: seconds between batch writes.
        max_buffer: records waiting at most; more are dropped (counted in ``dropped``).
        rng: random source for the sampling draw.
    """

    def __init__(self, target: Any, *, rate: float = 0.1, redactor: Redactor | None = None,
                 retention: int = 100_000, flush_interval: float = 0.5, max_buffer: int = 10_000,
                 rng: random.Random | None = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"traffic log rate must be in [0, 1], got {rate}")
        self._target = target
        self.rate = rate
        self.redactor = redactor or default_redactor
        self.retention = retention
        self.flush_interval = flush_interval
        self._buffer: deque[TrafficRecord] = deque()
        self._max_buffer = max_buffer
        self._rng = rng or random.Random()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0

    def sampled(self) -> bool:
        """Draw whether the current request is logged."""
        return self.rate >= 1.0 or (self.rate > 0.0 and self._rng.random() < self.rate)

    def add(self, record: TrafficRecord) -> None:
        """Queue a sampled record for the next batch (never blocks on the database)."""
        if len(self._buffer) >= self._max_buffer:
            self.dropped += 1
            return
        self._buffer.append(record)
        if self._thread is None:
            self._ensure_thread()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="canaryflow-traffic-log", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self._flush_once()
        self._flush_once()

    def _flush_once(self) -> None:
        with self._lock:
            batch = [self._buffer.popleft() for _ in range(len(self._buffer))]
            if not batch:
                return
            try:
                self.written += record_traffic(self._target, batch, redactor=self.redactor,
                                               retention=self.retention)
            except Exception:  # the traffic log must never break serving
                self.dropped += len(batch)
                log.exception("traffic log write failed; %d records dropped", len(batch))

    def flush(self) -> None:
        """Write everything buffered now (tests, shutdown)."""
        self._flush_once()

    def close(self) -> None:
        """Flush and stop the background thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
        self._flush_once()


__all__ = [
    "FeedbackRecord",
    "Redactor",
    "TrafficLog",
    "TrafficRecord",
    "count_feedback",
    "count_traffic",
    "default_redactor",
    "feedback",
    "find_request",
    "find_requests",
    "record_feedback",
    "record_traffic",
    "redact_value",
    "sample_traffic",
    "traffic",
]
