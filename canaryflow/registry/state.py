"""Repository functions that change a config's serving state. Each runs inside the caller's write
transaction: it locks the state row, computes the new state, and — only if something changes — bumps the
revision and appends an audit event with the state before and after. Same request twice: no-op.

Ownership: a rollout claims the config (``owner`` = its workflow id) when it is validated; every exposure
change it makes is a compare-and-set on that owner, so two rollouts can never overwrite each other's
exposure, and a restore never removes an exposure it does not own. Manual ``set_stable``/``pin`` while a
rollout owns the config are refused unless forced (audited as ``*_forced``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlmodel import Session, col, select

from canaryflow.domain.serving import Exposure, ServingState
from canaryflow.errors import Conflict, NotOwner, ValidationFailed
from canaryflow.registry import records
from canaryflow.registry._sql import add_audit, locked, require_actor
from canaryflow.registry.tables import SegmentRow, ServingStateRow, utcnow
from canaryflow.registry.versions import require_version, unknown_config

Target = tuple[int | None, Exposure, dict[str, int], str | None]
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
    target = change(session, current)
    if target == (current.stable_version, current.exposure, current.pins, current.owner):
        return current
    records.apply_to_row(row, *target)
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


def refuse_during_rollout(cur: ServingState, what: str) -> None:
    """A manual change while a rollout owns the config: refused, naming the rollout and the way out."""
    if cur.owner is not None:
        raise Conflict(
            f"{cur.config_key!r} is being rolled out by workflow {cur.owner}: {what} would change what it "
            f"measures; abort it first (canaryflow rollout abort {cur.config_key} --by NAME --reason TEXT) "
            "or pass --force"
        )


def owned_by_other(cur: ServingState, owner: str) -> NotOwner | None:
    """The error for a rollout that does not own the config's exposure (None: it may change it)."""
    if cur.owner is None or cur.owner == owner:
        return None
    return NotOwner(f"{cur.config_key!r} is owned by rollout {cur.owner}, not {owner}: a second rollout "
                    f"for one config is refused (wait for {cur.owner} to end, or abort it)")


def claim(owner: str) -> Change:
    """``owner`` (a rollout's workflow id) takes the config; a leftover exposure of the same id (a run that
    was terminated) is cleared. Another owner: :class:`Conflict` naming it."""
    def apply(session: Session, cur: ServingState) -> Target:
        other = owned_by_other(cur, owner)
        if other is not None:
            raise other
        exposure = Exposure.none() if cur.owner == owner else cur.exposure
        return cur.stable_version, exposure, dict(cur.pins), owner
    return apply


def set_stable(version: int, force: bool = False) -> Change:
    """Make ``version`` stable; if it was the exposed candidate, the exposure ends."""
    def apply(session: Session, cur: ServingState) -> Target:
        require_version(session, cur.config_key, version)
        if not force and version != cur.stable_version:
            refuse_during_rollout(cur, f"making v{version} stable")
        exposure = Exposure.none() if cur.exposure.candidate_version == version else cur.exposure
        return version, exposure, dict(cur.pins), cur.owner
    return apply


def apply_exposure(exposure: Exposure, owner: str | None = None) -> Change:
    """Expose a candidate as ``exposure`` says (compare-and-set on ``owner`` when given)."""
    def apply(session: Session, cur: ServingState) -> Target:
        if owner is not None and (other := owned_by_other(cur, owner)) is not None:
            raise other
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
        return cur.stable_version, exposure, dict(cur.pins), owner if owner is not None else cur.owner
    return apply


def clear_exposure(owner: str | None = None, undo_promote: tuple[int, int] | None = None) -> Change:
    """Everyone back on stable (pins stay) and the owner released. With ``owner``: only if it owns the
    config (another owner's exposure is left alone: no change). ``undo_promote=(candidate, stable)``: if
    ``owner``'s own promote made ``candidate`` stable (and nothing changed since), ``stable`` is back."""
    def apply(session: Session, cur: ServingState) -> Target:
        if owner is not None and owned_by_other(cur, owner) is not None:
            return cur.stable_version, cur.exposure, dict(cur.pins), cur.owner
        stable = cur.stable_version
        if (undo_promote is not None and cur.owner is None and cur.updated_source == owner
                and cur.stable_version == undo_promote[0]):
            stable = undo_promote[1]
        return stable, Exposure.none(), dict(cur.pins), None
    return apply


def release(expected_owner: str | None) -> Change:
    """The reconciler: restore stable and release the claim, only if the owner is still ``expected_owner``
    (a compare-and-set: a rollout that claimed the config meanwhile is left alone)."""
    def apply(session: Session, cur: ServingState) -> Target:
        if cur.owner != expected_owner:
            return cur.stable_version, cur.exposure, dict(cur.pins), cur.owner
        return cur.stable_version, Exposure.none(), dict(cur.pins), None
    return apply


def promote(version: int, owner: str | None = None) -> Change:
    """``version`` becomes stable, the exposure ends and the owner is released (compare-and-set on
    ``owner`` when given: a rollout that no longer owns the config cannot promote)."""
    def apply(session: Session, cur: ServingState) -> Target:
        require_version(session, cur.config_key, version)
        if owner is not None and cur.owner != owner:
            if cur.owner is None and cur.stable_version == version and cur.exposure.stage_kind == "none":
                return cur.stable_version, cur.exposure, dict(cur.pins), None  # already promoted: a retry
            raise NotOwner(f"{cur.config_key!r}: rollout {owner} no longer owns the exposure (owner: "
                           f"{cur.owner or 'none: stable was restored'}); it cannot promote v{version}")
        return version, Exposure.none(), dict(cur.pins), None
    return apply


def pin(segment: str, version: int, force: bool = False) -> Change:
    """Serve ``version`` to ``segment`` whatever the rollout does."""
    def apply(session: Session, cur: ServingState) -> Target:
        require_segments(session, [segment])
        require_version(session, cur.config_key, version)
        if not force and cur.pins.get(segment) != version:
            refuse_during_rollout(cur, f"pinning segment {segment} to v{version}")
        return cur.stable_version, cur.exposure, {**cur.pins, segment: version}, cur.owner
    return apply


def unpin(segment: str) -> Change:
    """Remove the pin of ``segment`` (no-op if it has none)."""
    def apply(session: Session, cur: ServingState) -> Target:
        pins = {k: v for k, v in cur.pins.items() if k != segment}
        return cur.stable_version, cur.exposure, pins, cur.owner
    return apply


def owned(session: Session) -> list[ServingState]:
    """Every serving state with an owner or an exposure (what the reconciler looks at)."""
    rows = session.exec(select(ServingStateRow).where(
        (col(ServingStateRow.owner).is_not(None)) | (col(ServingStateRow.stage_kind) != "none"))
        .order_by(col(ServingStateRow.config_key))).all()
    return [records.serving_state(r) for r in rows]


def revisions(session: Session) -> dict[str, int]:
    """Every key's revision (cheap: one indexed scan of the state table)."""
    rows = session.exec(select(ServingStateRow.config_key, ServingStateRow.revision)
                        .order_by(col(ServingStateRow.config_key))).all()
    return {k: r for k, r in rows}


__all__ = ["apply_exposure", "change", "claim", "clear_exposure", "owned", "pin", "promote", "read", "record",
           "release", "revisions", "set_stable", "unpin"]
