"""Repository functions that change a config's serving state. Each runs inside the caller's write
transaction: it locks the state row, computes the new state, and — only if something changes — bumps the
revision and appends an audit event with the state before and after. Same request twice: no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlmodel import Session, col, select

from canaryflow.domain.serving import Exposure, ServingState
from canaryflow.errors import ValidationFailed
from canaryflow.registry import records
from canaryflow.registry._sql import add_audit, locked, require_actor
from canaryflow.registry.tables import SegmentRow, ServingStateRow, utcnow
from canaryflow.registry.versions import require_version, unknown_config

Target = tuple[int | None, Exposure, dict[str, int]]
Change = Callable[[Session, ServingState], Target]


def read(session: Session, key: str) -> ServingState:
    """The serving state of ``key`` (:class:`NotFound` if unknown)."""
    row = session.get(ServingStateRow, key)
    if row is None:
        raise unknown_config(session, key)
    return records.serving_state(row)


def change(session: Session, key: str, action: str, change: Change, *, by: str, reason: str,
           source: str) -> ServingState:
    """Apply ``change`` to the locked state of ``key``; audit and bump the revision if it differs."""
    by = require_actor(by)
    row = locked(session, ServingStateRow, ServingStateRow.config_key == key)
    if row is None:
        raise unknown_config(session, key)
    current = records.serving_state(row)
    stable, exposure, pins = change(session, current)
    if (stable, exposure, pins) == (current.stable_version, current.exposure, current.pins):
        return current
    records.apply_to_row(row, stable, exposure, pins)
    row.revision += 1
    row.updated_by, row.updated_reason, row.updated_source, row.updated_at = by, reason, source, utcnow()
    session.add(row)
    new = records.serving_state(row)
    add_audit(session, key, action, actor=by, source=source, reason=reason,
              before=records.state_view(current), after=records.state_view(new))
    return new


def record(session: Session, key: str | None, action: str, *, actor: str, source: str, reason: str,
           details: dict[str, Any]) -> None:
    """An audit event that changes nothing (e.g. ``approval_refused``)."""
    if key is not None:
        read(session, key)
    add_audit(session, key, action, actor=require_actor(actor), source=source, reason=reason, after=details)


def require_segments(session: Session, names: list[str]) -> None:
    """Raise :class:`ValidationFailed` for segment names the registry does not know."""
    known = set(session.exec(select(SegmentRow.name)).all())
    unknown = sorted(set(names) - known)
    if unknown:
        listing = ", ".join(sorted(known)) or "none yet: push a segment file first"
        raise ValidationFailed(f"segments: unknown segment(s) {unknown} (known: {listing})")


def set_stable(version: int) -> Change:
    """Make ``version`` stable; if it was the exposed candidate, the exposure ends."""
    def apply(session: Session, cur: ServingState) -> Target:
        require_version(session, cur.config_key, version)
        exposure = Exposure.none() if cur.exposure.candidate_version == version else cur.exposure
        return version, exposure, dict(cur.pins)
    return apply


def apply_exposure(exposure: Exposure) -> Change:
    """Expose a candidate as ``exposure`` says."""
    def apply(session: Session, cur: ServingState) -> Target:
        cand = exposure.candidate_version
        if cand is not None:
            require_version(session, cur.config_key, cand)
            if cand == cur.stable_version and exposure.stage_kind != "none":
                raise ValidationFailed(
                    f"candidate_version: v{cand} is already stable for {cur.config_key!r}; push a new version"
                )
        if exposure.stage_kind == "segments":
            if not exposure.segments:
                raise ValidationFailed("segments: a 'segments' stage needs at least one segment name")
            require_segments(session, exposure.segments)
        return cur.stable_version, exposure, dict(cur.pins)
    return apply


def clear_exposure(session: Session, cur: ServingState) -> Target:
    """Everyone back on stable (pins stay)."""
    return cur.stable_version, Exposure.none(), dict(cur.pins)


def promote(version: int) -> Change:
    """``version`` becomes stable and the exposure ends."""
    def apply(session: Session, cur: ServingState) -> Target:
        require_version(session, cur.config_key, version)
        return version, Exposure.none(), dict(cur.pins)
    return apply


def pin(segment: str, version: int) -> Change:
    """Serve ``version`` to ``segment`` whatever the rollout does."""
    def apply(session: Session, cur: ServingState) -> Target:
        require_segments(session, [segment])
        require_version(session, cur.config_key, version)
        return cur.stable_version, cur.exposure, {**cur.pins, segment: version}
    return apply


def unpin(segment: str) -> Change:
    """Remove the pin of ``segment`` (no-op if it has none)."""
    def apply(session: Session, cur: ServingState) -> Target:
        return cur.stable_version, cur.exposure, {k: v for k, v in cur.pins.items() if k != segment}
    return apply


def revisions(session: Session) -> dict[str, int]:
    """Every key's revision (cheap: one indexed scan of the state table)."""
    rows = session.exec(select(ServingStateRow.config_key, ServingStateRow.revision)
                        .order_by(col(ServingStateRow.config_key))).all()
    return {k: r for k, r in rows}


__all__ = ["apply_exposure", "change", "clear_exposure", "pin", "promote", "read", "record", "revisions",
           "set_stable", "unpin"]
