"""Judge configs at push: a config named by a ``judge`` / ``pairwise`` evaluator must be able to judge.

Both directions are checked inside the push's transaction: a config whose evaluators name a judge (the
judge's pinned ``version``, else its stable one, must declare its output schema), and a new version of a
config that other configs' latest versions use as their judge (it must keep a schema they can read).
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.judging import JudgeKind, check_judge
from canaryflow.errors import ValidationFailed
from canaryflow.registry.tables import ConfigRow, ServingStateRow, VersionRow


def _spec(session: Session, key: str, version: int) -> ConfigSpec | None:
    row = session.exec(select(VersionRow).where(VersionRow.config_key == key,
                                                VersionRow.version == version)).first()
    return None if row is None else ConfigSpec.model_validate(row.spec)


def check_named_judges(session: Session, spec: ConfigSpec) -> None:
    """Every judge ``spec``'s evaluators name can judge (see :func:`canaryflow.domain.judging.check_judge`).

    Raises:
        ValidationFailed: naming the evaluator and the judge config's missing field.
    """
    for i, ev in enumerate(spec.evaluators or ()):
        if not ev.is_judge or ev.judge is None:
            continue
        if ev.judge == spec.key:  # its answers would be judged by itself, each verdict judged again
            raise ValidationFailed(f"{ev.name!r} names {spec.key!r} itself as its judge: a judge is another "
                                   "config (push a judge config and name its key)",
                                   source=f"evaluators[{i}].judge")
        version = ev.version
        if version is None:
            state = session.get(ServingStateRow, ev.judge)
            version = state.stable_version if state is not None else None
        judge = _spec(session, ev.judge, version) if version is not None else None
        if judge is not None:
            label = f"evaluators[{i}].judge" + (f" (v{version})" if ev.version is not None else
                                                f" (stable v{version})")
            check_judge(judge, "pairwise" if ev.kind == "pairwise" else "judge", field=label)


def check_used_as_judge(session: Session, spec: ConfigSpec) -> None:
    """A new version of ``spec.key`` still judges for the configs whose latest version uses it unpinned.

    Raises:
        ValidationFailed: naming the config that uses it and the missing field.
    """
    latest = session.exec(
        select(VersionRow).join(ConfigRow, col(ConfigRow.key) == col(VersionRow.config_key))
        .where(col(VersionRow.version) == col(ConfigRow.latest_version), VersionRow.config_key != spec.key)
        .order_by(col(VersionRow.config_key))).all()
    for row in latest:
        key = row.config_key
        for i, ev in enumerate(row.spec.get("evaluators") or ()):
            if not isinstance(ev, dict) or ev.get("judge") != spec.key or ev.get("version") is not None:
                continue
            kind: JudgeKind = "pairwise" if ev.get("kind") == "pairwise" else "judge"
            try:
                check_judge(spec, kind, field=f"{key} v{row.version} evaluators[{i}].judge")
            except ValidationFailed as exc:
                raise ValidationFailed(f"{exc} — {key} uses this config as its {kind} judge",
                                       source=None) from None


__all__ = ["check_named_judges", "check_used_as_judge"]
