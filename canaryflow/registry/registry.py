"""The :class:`Registry`: the one entry point to stored configs, versions, segments, serving state and
audit trail. Synchronous; async callers use ``asyncio.to_thread``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.gates import Measurement
from canaryflow.domain.segments import Segment, SegmentFile
from canaryflow.domain.serving import Exposure, ServingState
from canaryflow.errors import Conflict
from canaryflow.registry import db, evidence, judges, records
from canaryflow.registry import segments as segment_repo
from canaryflow.registry import state as state_repo
from canaryflow.registry import versions as version_repo
from canaryflow.registry.records import (
    SEGMENTS_REVISION_KEY,
    AuditEvent,
    ConfigSummary,
    PushResult,
    VersionRecord,
)
from canaryflow.registry.tables import AuditEventRow
from canaryflow.settings import get_settings

R = TypeVar("R")
WRITE_ATTEMPTS = 5


class Registry:
    """Stored configs and who they serve, on SQLite or PostgreSQL.

    Args:
        url: SQLAlchemy URL; ``None`` reads ``CANARYFLOW_DB_URL`` (default ``sqlite:///canaryflow.db``).
        migrate: upgrade the schema to the newest migration first (idempotent, safe to run concurrently).
    """

    def __init__(self, url: str | None = None, *, migrate: bool = True):
        self.url = url or get_settings().db_url
        self.engine = db.create_engine(self.url)
        if migrate:
            with db.translate_errors(self.url):
                db.migrate(self.engine)

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    # --- plumbing -------------------------------------------------------------------------------
    @contextmanager
    def _read(self) -> Iterator[Session]:
        with db.translate_errors(self.url), db.read_session(self.engine) as session:
            yield session

    def _write(self, fn: Callable[[Session], R]) -> R:
        """Run ``fn`` in one write transaction, retrying a race lost on a unique constraint."""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                with db.translate_errors(self.url), db.write_session(self.engine) as session:
                    return fn(session)
            except IntegrityError as exc:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise Conflict(f"concurrent change kept colliding: {exc.orig}") from exc
        raise AssertionError("unreachable")

    # --- configs and versions -------------------------------------------------------------------
    def push_config(self, spec: ConfigSpec, *, author: str | None = None, rationale: str | None = None,
                    source: str = "cli") -> PushResult:
        """Store ``spec`` as a new immutable version, or return the version that has this content."""
        return self._write(lambda s: version_repo.push(s, spec, author=author, rationale=rationale,
                                                       source=source))

    def check_judges(self, spec: ConfigSpec) -> None:
        """``spec``'s judge evaluators name configs that can judge, and ``spec`` still judges for the configs
        that use its key as their judge (:mod:`canaryflow.registry.judges`); ValidationFailed otherwise."""
        with self._read() as s:
            judges.check_named_judges(s, spec)
            judges.check_used_as_judge(s, spec)

    def get_version(self, key: str, version: int | None = None) -> VersionRecord:
        """One version of ``key`` (``None``: the latest)."""
        with self._read() as s:
            return version_repo.get(s, key, version)

    def versions(self, key: str) -> list[VersionRecord]:
        """Every version of ``key``, oldest first."""
        with self._read() as s:
            return version_repo.all_versions(s, key)

    def configs(self) -> list[ConfigSummary]:
        """A summary of every config."""
        with self._read() as s:
            return version_repo.summaries(s)

    # --- segments -------------------------------------------------------------------------------
    def push_segments(self, file: SegmentFile, *, by: str, source: str = "cli") -> list[str]:
        """Create or update the file's segments; returns the names that changed."""
        return self._write(lambda s: segment_repo.push(s, file, by=by, source=source))

    def segments(self) -> list[Segment]:
        """Every segment, in the order of the file that last defined it."""
        with self._read() as s:
            return segment_repo.all_segments(s)

    # --- serving state --------------------------------------------------------------------------
    def serving_state(self, key: str) -> ServingState:
        """The serving state of ``key``."""
        with self._read() as s:
            return state_repo.read(s, key)

    def snapshot(self, key: str) -> tuple[ServingState, dict[int, ConfigSpec], list[Segment]]:
        """Everything :class:`~canaryflow.domain.resolution.CompiledConfig` needs, read consistently."""
        with self._read() as s:
            state = state_repo.read(s, key)
            named = (state.stable_version, state.exposure.candidate_version, *state.pins.values())
            wanted = {v for v in named if v is not None}
            return state, version_repo.specs(s, key, wanted), segment_repo.all_segments(s)

    def revisions(self) -> dict[str, int]:
        """Cheap change detection: key → revision, plus ``"@segments"`` → the segments revision."""
        with self._read() as s:
            revs = state_repo.revisions(s)
            revs[SEGMENTS_REVISION_KEY] = segment_repo.revision(s)
            return revs

    def _change(self, key: str, action: str, change: state_repo.Change, by: str, reason: str,
                source: str) -> ServingState:
        return self._write(lambda s: state_repo.change(s, key, action, change, by=by, reason=reason,
                                                       source=source))

    def set_stable(self, key: str, version: int, *, by: str, reason: str, source: str = "cli",
                   force: bool = False) -> ServingState:
        """Serve ``version`` as stable. While a rollout owns ``key``: :class:`Conflict` unless ``force``
        (audited as ``set_stable_forced``)."""
        action = "set_stable_forced" if force and self._owner(key) else "set_stable"
        return self._change(key, action, state_repo.set_stable(version, force), by, reason, source)

    def claim(self, key: str, owner: str, *, by: str, reason: str) -> ServingState:
        """Rollout ``owner`` (its workflow id) takes ``key``: :class:`Conflict` naming the rollout that owns
        it already; idempotent for the same owner."""
        return self._change(key, "rollout_claim", state_repo.claim(owner), by, reason, owner)

    def apply_exposure(self, key: str, exposure: Exposure, *, by: str, reason: str,
                       source: str, owner: str | None = None) -> ServingState:
        """Expose a candidate (idempotent: the same exposure twice changes nothing). With ``owner``: a
        compare-and-set (:class:`Conflict` if another rollout owns ``key``)."""
        return self._change(key, "apply_exposure", state_repo.apply_exposure(exposure, owner), by, reason,
                            source)

    def clear_exposure(self, key: str, *, by: str, reason: str, source: str, owner: str | None = None,
                       undo_promote: tuple[int, int] | None = None) -> ServingState:
        """Everyone back on stable and the owner released (idempotent). With ``owner``: only if ``owner``
        owns ``key`` (another rollout's exposure is left alone). ``undo_promote=(candidate, stable)``: if
        ``owner``'s promote made ``candidate`` stable and nothing changed since, ``stable`` is back."""
        action = "clear_exposure"
        if undo_promote is not None:
            cur = self.serving_state(key)
            if cur.owner is None and cur.updated_source == owner and cur.stable_version == undo_promote[0]:
                action = "undo_promote"
        return self._change(key, action, state_repo.clear_exposure(owner, undo_promote), by, reason, source)

    def promote(self, key: str, version: int, *, by: str, reason: str, source: str,
                owner: str | None = None) -> ServingState:
        """``version`` becomes stable and the exposure ends (idempotent). With ``owner``: a compare-and-set
        (:class:`Conflict` if ``owner`` no longer owns ``key``)."""
        return self._change(key, "promote", state_repo.promote(version, owner), by, reason, source)

    def pin(self, key: str, segment: str, version: int, *, by: str, reason: str,
            source: str = "cli", force: bool = False) -> ServingState:
        """Serve ``version`` to ``segment`` regardless of the rollout. While a rollout owns ``key``:
        :class:`Conflict` unless ``force`` (audited as ``pin_forced``)."""
        action = "pin_forced" if force and self._owner(key) else "pin"
        return self._change(key, action, state_repo.pin(segment, version, force), by, reason, source)

    def unpin(self, key: str, segment: str, *, by: str, reason: str, source: str = "cli") -> ServingState:
        """Remove the pin of ``segment`` (no-op if it has none)."""
        return self._change(key, "unpin", state_repo.unpin(segment), by, reason, source)

    def release(self, key: str, expected_owner: str | None, *, by: str, reason: str,
                source: str = "reconciler") -> ServingState:
        """Restore stable and release the claim if ``expected_owner`` still owns ``key`` (else no change)."""
        return self._change(key, "reconcile_restore", state_repo.release(expected_owner), by, reason, source)

    def owned_states(self) -> list[ServingState]:
        """Every serving state with an owning rollout or an exposure (what the reconciler checks)."""
        with self._read() as s:
            return state_repo.owned(s)

    def _owner(self, key: str) -> str | None:
        with self._read() as s:
            return state_repo.read(s, key).owner

    # --- audit ----------------------------------------------------------------------------------
    def audit(self, key: str | None = None, limit: int = 100) -> list[AuditEvent]:
        """The last ``limit`` audit events (of ``key``, or all), oldest first."""
        with self._read() as s:
            query = select(AuditEventRow)
            if key is not None:
                query = query.where(AuditEventRow.config_key == key)
            rows = s.exec(query.order_by(col(AuditEventRow.id).desc()).limit(limit)).all()
            return [records.audit_event(r) for r in reversed(rows)]

    def record_audit(self, key: str | None, action: str, *, actor: str, source: str, reason: str,
                     details: dict[str, Any]) -> None:
        """Append an event that changes no state (e.g. ``approval_refused``)."""
        self._write(lambda s: state_repo.record(s, key, action, actor=actor, source=source, reason=reason,
                                                details=details))


    # --- measurement evidence -------------------------------------------------------------------
    def record_measurements(self, *, rollout_id: str, config_key: str, candidate_version: int, stage: str,
                            measurements: list[Measurement]) -> int:
        """Append the full evidence of one analysis (see :mod:`canaryflow.registry.evidence`)."""
        return evidence.record_measurements(self.engine, self.url, rollout_id=rollout_id,
                                            config_key=config_key, candidate_version=candidate_version,
                                            stage=stage, measurements=measurements)

    def measurements(self, config_key: str, *, rollout_id: str | None = None, stage: str | None = None,
                     limit: int = 200) -> list[evidence.MeasurementRecord]:
        """The last ``limit`` recorded measurements of ``config_key`` (one rollout, one stage), oldest
        first."""
        return evidence.measurements(self.engine, self.url, config_key=config_key, rollout_id=rollout_id,
                                     stage=stage, limit=limit)


__all__ = ["Registry"]
