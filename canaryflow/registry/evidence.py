"""The measurements table: the full evidence of every gate measured during a rollout, written by the
``record_measurements`` activity after each analysis and read by ``canaryflow rollout status``.

The workflow itself carries only each gate's running counters and last measurements (bounded state);
this table keeps everything, append-only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from canaryflow.domain.gates import Evidence, Measurement, Verdict
from canaryflow.registry.db import read_session, translate_errors, write_session
from canaryflow.registry.tables import MeasurementRow


class MeasurementRecord(BaseModel):
    """One stored measurement with the rollout and stage it belongs to."""

    model_config = ConfigDict(frozen=True)

    id: int
    rollout_id: str
    config_key: str
    candidate_version: int
    stage: str
    measurement: Measurement


def record_measurements(engine: Engine, url: str, *, rollout_id: str, config_key: str, candidate_version: int,
                        stage: str, measurements: Sequence[Measurement]) -> int:
    """Append ``measurements``; returns how many rows were written. Idempotent: a measurement of this rollout,
    stage and gate at the same time is written once (a retried activity adds nothing)."""
    with translate_errors(url), write_session(engine) as session:
        times = [datetime.fromtimestamp(m.at, UTC) for m in measurements]
        seen = set(session.exec(
            select(MeasurementRow.gate, MeasurementRow.measured_at).where(
                MeasurementRow.rollout_id == rollout_id, MeasurementRow.stage == stage,
                col(MeasurementRow.measured_at).in_(times))).all())
        rows = [MeasurementRow(rollout_id=rollout_id, config_key=config_key,
                               candidate_version=candidate_version, stage=stage, gate=m.gate,
                               verdict=m.verdict.value, dry_run=m.dry_run, measured_at=at,
                               evidence=m.evidence.model_dump(mode="json"))
                for m, at in zip(measurements, times, strict=True) if (m.gate, at) not in seen]
        session.add_all(rows)
    return len(rows)


def measurements(engine: Engine, url: str, *, config_key: str, rollout_id: str | None = None,
                 stage: str | None = None, limit: int = 200) -> list[MeasurementRecord]:
    """The last ``limit`` measurements of ``config_key`` (of one rollout, of one stage), oldest first."""
    with translate_errors(url), read_session(engine) as session:
        query = select(MeasurementRow).where(MeasurementRow.config_key == config_key)
        if rollout_id is not None:
            query = query.where(MeasurementRow.rollout_id == rollout_id)
        if stage is not None:
            query = query.where(MeasurementRow.stage == stage)
        rows = session.exec(query.order_by(col(MeasurementRow.id).desc()).limit(limit)).all()
        return [
            MeasurementRecord(
                id=r.id or 0, rollout_id=r.rollout_id, config_key=r.config_key,
                candidate_version=r.candidate_version, stage=r.stage,
                measurement=Measurement(gate=r.gate, verdict=Verdict(r.verdict), dry_run=r.dry_run,
                                        at=r.measured_at.timestamp(),
                                        evidence=Evidence.model_validate(r.evidence)))
            for r in reversed(rows)
        ]


__all__ = ["MeasurementRecord", "measurements", "record_measurements"]
