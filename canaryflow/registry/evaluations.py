"""Online evaluators' results: one row per scored answer and evaluator (no prompt or answer text).

Written in batches by the gateway's background evaluation worker (:mod:`canaryflow.serving.evaluation`);
read by ``canaryflow feedback`` and the comparison views. Every function takes a
:class:`~canaryflow.registry.Registry` or its SQLAlchemy engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from canaryflow.registry.db import translate_errors, write_session
from canaryflow.registry.feedback import _engine
from canaryflow.registry.tables import EvaluationRow, utcnow


@dataclass(frozen=True, slots=True)
class EvaluationResult:
    """One evaluator's result on one answer, as stored."""

    request_id: str
    config_key: str
    version: int
    variation: str
    segment: str
    evaluator: str
    source: str
    score: float
    passed: bool
    label: str = ""
    reason: str = ""
    at: datetime | None = None


def add_results(target: Any, results: Sequence[EvaluationResult]) -> int:
    """Store a batch of results in one transaction; returns how many."""
    if not results:
        return 0
    engine = _engine(target)
    now = utcnow()
    values = [{"request_id": r.request_id, "config_key": r.config_key, "version": r.version,
               "variation": r.variation, "segment": r.segment or "none", "evaluator": r.evaluator,
               "source": r.source, "score": r.score, "passed": r.passed, "label": r.label[:63],
               "reason": r.reason[:160], "created_at": r.at or now} for r in results]
    with translate_errors(str(engine.url)), write_session(engine) as session:
        session.execute(sa.insert(EvaluationRow), values)  # one executemany, no ORM objects
    return len(results)


@dataclass(frozen=True)
class EvaluatorSummary:
    """One evaluator's results for one version and variation: answers scored, mean score, pass share."""

    version: int
    variation: str
    evaluator: str
    scored: int
    mean_score: float
    pass_rate: float


def _window(stmt: Any, since: datetime | None, until: datetime | None) -> Any:
    t = EvaluationRow
    if since is not None:
        stmt = stmt.where(col(t.created_at) >= since)
    if until is not None:
        stmt = stmt.where(col(t.created_at) < until)
    return stmt


def summaries(target: Any, config_key: str, *, since: datetime | None = None,
              until: datetime | None = None) -> list[EvaluatorSummary]:
    """Per version, variation and evaluator of ``config_key``: answers scored, mean score, pass share."""
    t = EvaluationRow
    passed = sa.func.sum(sa.case((col(t.passed), 1), else_=0))
    stmt = (sa.select(col(t.version), col(t.variation), col(t.evaluator), sa.func.count(),
                      sa.func.avg(col(t.score)), passed)
            .where(col(t.config_key) == config_key)
            .group_by(col(t.version), col(t.variation), col(t.evaluator))
            .order_by(col(t.version), col(t.variation), col(t.evaluator)))
    engine = _engine(target)
    with translate_errors(str(engine.url)), Session(engine) as session:
        rows = session.execute(_window(stmt, since, until)).all()
    return [EvaluatorSummary(int(v), str(var), str(e), int(n), float(m or 0.0), float(p or 0) / int(n))
            for v, var, e, n, m, p in rows if n]


def lowest(target: Any, config_key: str, version: int, *, evaluator: str | None = None, limit: int = 5,
           since: datetime | None = None, until: datetime | None = None) -> list[EvaluationResult]:
    """The version's lowest-scored answers (lowest first, then the latest), e.g. to read what went wrong
    through their request ids (the traffic log holds the sampled ones' text)."""
    t = EvaluationRow
    stmt = (sa.select(t).where(col(t.config_key) == config_key, col(t.version) == version)
            .order_by(col(t.score), col(t.created_at).desc(), col(t.id).desc()).limit(limit))
    if evaluator is not None:
        stmt = stmt.where(col(t.evaluator) == evaluator)
    engine = _engine(target)
    with translate_errors(str(engine.url)), Session(engine) as session:
        rows = session.execute(_window(stmt, since, until)).scalars().all()
    return [EvaluationResult(r.request_id, r.config_key, r.version, r.variation, r.segment, r.evaluator,
                             r.source, r.score, r.passed, r.label, r.reason, r.created_at) for r in rows]


def for_request(target: Any, request_id: str) -> list[EvaluationResult]:
    """Every evaluator's result on one request (live and shadow answers), oldest first."""
    t = EvaluationRow
    stmt = sa.select(t).where(col(t.request_id) == request_id).order_by(col(t.id))
    engine = _engine(target)
    with translate_errors(str(engine.url)), Session(engine) as session:
        rows = session.execute(stmt).scalars().all()
    return [EvaluationResult(r.request_id, r.config_key, r.version, r.variation, r.segment, r.evaluator,
                             r.source, r.score, r.passed, r.label, r.reason, r.created_at) for r in rows]


__all__ = ["EvaluationResult", "EvaluatorSummary", "add_results", "for_request", "lowest", "summaries"]
