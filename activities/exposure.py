"""Registry activities: validate a rollout, apply a stage's exposure, restore stable, promote, audit.

Thin wrappers over :class:`canaryflow.registry.Registry`. Every registry call is synchronous, so it runs in
a thread (``asyncio.to_thread``) and never blocks the worker's event loop. Every change is idempotent
(applying the same exposure twice adds no revision and no audit event), audited with the calling
workflow's id as its ``source``, and a compare-and-set on the config's owner (that same workflow id:
validation claims the config). Bad input becomes a non-retryable ``ApplicationError`` naming the field;
a restore is retried whatever its error (it must eventually be applied).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from canaryflow.domain.plan import resolve_plan, undeclared_evaluator
from canaryflow.errors import NotFound, NotOwner, ValidationFailed
from canaryflow.registry import Registry
from canaryflow.temporal import names
from canaryflow.temporal.messages import (
    AuditRecord,
    ExposureChange,
    PromoteVersion,
    RolloutTarget,
    ValidateRollout,
)

T = TypeVar("T")


def _source() -> str:
    return activity.info().workflow_id or "activity"


async def _call(fn: Callable[[], T]) -> T:
    """Run a registry call in a thread; bad input becomes a non-retryable error naming the field."""
    try:
        return await asyncio.to_thread(fn)
    except (ValidationFailed, NotFound, NotOwner) as exc:
        raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from exc


async def _retried(fn: Callable[[], T]) -> T:
    """Run a registry call in a thread; every error is retryable (a restore must eventually apply)."""
    try:
        return await asyncio.to_thread(fn)
    except Exception as exc:
        raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=False) from exc


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type="ValidationFailed", non_retryable=True)


class ExposureActivities:
    """The registry activities, bound to one registry (built once per worker)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def _validate(self, req: ValidateRollout) -> RolloutTarget:
        reg, key, version = self.registry, req.config_key, req.candidate_version
        try:
            plan = resolve_plan(req.plan)
        except ValueError as exc:
            raise _invalid(f"plan: {exc}") from exc
        try:
            state = reg.serving_state(key)
        except NotFound as exc:
            raise _invalid(
                f"config_key: unknown config {key!r} (push it first: canaryflow config push)"
            ) from exc
        try:
            candidate = reg.get_version(key, version)
        except NotFound as exc:
            latest = reg.get_version(key).version
            raise _invalid(f"candidate_version: {key!r} has no v{version} (latest is v{latest})") from exc
        problem = undeclared_evaluator(plan, candidate.spec)
        if problem is not None:
            raise _invalid(problem)
        try:
            reg.check_judges(candidate.spec)  # a judge changed since the push, or this is a judge
        except ValidationFailed as exc:
            raise _invalid(f"candidate_version: v{version} of {key!r}: {exc}") from exc
        if state.stable_version == version:
            raise _invalid(f"candidate_version: v{version} is already stable for {key!r}; push a new version")
        known = {s.name for s in reg.segments()}
        for i, stage in enumerate(plan.stages):
            unknown = sorted(set(stage.segments or []) - known)
            if unknown:
                listing = ", ".join(sorted(known)) or "none: push a segment file first"
                raise _invalid(
                    f"plan.stages[{i}].segments: unknown segment(s) {', '.join(unknown)} (known: {listing})"
                )
        try:
            state = reg.claim(key, _source(), by=req.requested_by or "canaryflow",
                              reason=f"rollout of v{version}")
        except NotOwner as exc:
            raise _invalid(f"config_key: {exc}") from exc
        return RolloutTarget(config_key=key, stable_version=state.stable_version, candidate_version=version,
                             plan=plan)

    @activity.defn(name=names.VALIDATE_ROLLOUT)
    async def validate_rollout(self, req: ValidateRollout) -> RolloutTarget:
        """Check the config, the version and the plan's segments, and claim the config for the calling
        rollout (refused, naming it, if another rollout owns it); returns both versions."""
        return await _call(lambda: self._validate(req))

    @activity.defn(name=names.APPLY_EXPOSURE)
    async def apply_exposure(self, req: ExposureChange) -> int:
        """Apply the stage's exposure; returns the serving state's revision (unchanged if already applied)."""
        if req.exposure is None:
            raise _invalid("exposure: apply_exposure needs an exposure (use restore_stable to clear it)")
        exposure = req.exposure
        state = await _call(
            lambda: self.registry.apply_exposure(
                req.config_key, exposure, by=req.by, reason=req.reason, source=_source(), owner=_source()
            )
        )
        return state.revision

    @activity.defn(name=names.RESTORE_STABLE)
    async def restore_stable(self, req: ExposureChange) -> int:
        """Everyone back on stable (pins stay) if the calling rollout owns the exposure (another owner's is
        left alone); idempotent, and retried whatever the error. ``undo_promote``: also undo this
        rollout's own promote (a stop that arrived before the promote completed). Returns the revision."""
        undo = req.undo_promote
        state = await _retried(
            lambda: self.registry.clear_exposure(
                req.config_key, by=req.by or "canaryflow", reason=req.reason, source=_source(),
                owner=_source(), undo_promote=undo,
            )
        )
        return state.revision

    @activity.defn(name=names.PROMOTE_CANDIDATE)
    async def promote_candidate(self, req: PromoteVersion) -> int:
        """The candidate becomes stable and the exposure ends; idempotent. Returns the revision."""
        state = await _call(
            lambda: self.registry.promote(
                req.config_key, req.version, by=req.by, reason=req.reason, source=_source(), owner=_source()
            )
        )
        return state.revision

    @activity.defn(name=names.RECORD_AUDIT)
    async def record_audit(self, req: AuditRecord) -> None:
        """Append an audit event that changes no state (a refused approval, a rollout's outcome)."""
        await _call(
            lambda: self.registry.record_audit(
                req.config_key,
                req.action,
                actor=req.actor,
                source=_source(),
                reason=req.reason,
                details=req.details,
            )
        )

    def all(self) -> list[Callable[..., object]]:
        """Every activity of this class, for the worker."""
        return [
            self.validate_rollout,
            self.apply_exposure,
            self.restore_stable,
            self.promote_candidate,
            self.record_audit,
        ]


__all__ = ["ExposureActivities"]
