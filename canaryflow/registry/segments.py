"""Repository functions for segments: upsert with audit, and the global segments revision."""

from __future__ import annotations

from sqlmodel import Session, col, select

from canaryflow.domain.segments import Segment, SegmentFile
from canaryflow.registry import records
from canaryflow.registry._sql import add_audit, bump_counter, insert_ignore, locked, require_actor
from canaryflow.registry.tables import CounterRow, SegmentRow, utcnow

COUNTER = "segments"


def push(session: Session, file: SegmentFile, *, by: str, source: str) -> list[str]:
    """Create or update every segment of ``file``; return the names that changed (audited)."""
    by = require_actor(by)
    changed: list[str] = []
    for position, seg in enumerate(file.segments):
        spec = seg.model_dump(mode="json")
        insert_ignore(session, SegmentRow, name=seg.name, spec={}, updated_by=by, updated_at=utcnow())
        row = locked(session, SegmentRow, SegmentRow.name == seg.name)
        assert row is not None
        if row.spec == spec and row.position == position:
            continue
        before = dict(row.spec)
        row.spec, row.position, row.updated_by, row.updated_at = spec, position, by, utcnow()
        session.add(row)
        add_audit(session, None, "push_segment" if before else "create_segment", actor=by, source=source,
                  reason=f"segment {seg.name!r}", before=before, after=spec)
        changed.append(seg.name)
    if changed:
        bump_counter(session, COUNTER)
    return changed


def all_segments(session: Session) -> list[Segment]:
    """Every segment, in the order of the file that last defined it (then by name)."""
    rows = session.exec(select(SegmentRow).order_by(col(SegmentRow.position), col(SegmentRow.name))).all()
    return [records.segment(r) for r in rows if r.spec]


def revision(session: Session) -> int:
    """The global segments revision (grows whenever any segment changes)."""
    row = session.get(CounterRow, COUNTER)
    return row.value if row is not None else 0


__all__ = ["all_segments", "push", "revision"]
