"""Activity inputs and results: ids and numbers only (workflow histories are visible in the UI).

The audit ``source`` of every registry change is the calling workflow's id, read from the activity info.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from canaryflow.domain.gates import Gate, Measurement
from canaryflow.domain.plan import Plan
from canaryflow.domain.reconcile import Finding
from canaryflow.domain.serving import Exposure


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValidateRollout(_Msg):
    """Can ``candidate_version`` of ``config_key`` be rolled out under ``plan`` (a preset name is resolved
    here, once: the result freezes it into the workflow's history)?"""

    config_key: str
    candidate_version: int
    plan: str | Plan
    requested_by: str = ""


class RolloutTarget(_Msg):
    """The versions a valid rollout moves between, and the plan it follows (resolved once)."""

    config_key: str
    stable_version: int | None
    candidate_version: int
    plan: Plan | None = Field(default=None, description="the resolved plan (None from older workers)")


class MeasurementsRecord(_Msg):
    """The full evidence of one analysis, for the registry's measurements table."""

    rollout_id: str
    config_key: str
    candidate_version: int
    stage: str
    measurements: list[Measurement]


class ShadowReplayStage(_Msg):
    """Replay ``sample`` logged requests against the candidate and judge ``gates`` on the scores."""

    config_key: str
    stable_version: int
    candidate_version: int
    sample: int
    gates: list[Gate]


class ExposureChange(_Msg):
    """Apply ``exposure`` (or, with ``exposure=None``, restore stable)."""

    config_key: str
    exposure: Exposure | None = None
    by: str
    reason: str
    undo_promote: tuple[int, int] | None = Field(
        default=None, description="restore only: (candidate, stable) to undo this rollout's own promote")


class PromoteVersion(_Msg):
    """``version`` becomes stable."""

    config_key: str
    version: int
    by: str
    reason: str


class AuditRecord(_Msg):
    """An audit event that changes no state (a refused approval, a rollout's end)."""

    config_key: str
    action: str
    actor: str
    reason: str
    details: dict[str, Any] = Field(default_factory=dict)


class Notification(_Msg):
    """One webhook event; ``targets`` are URLs or ``env:NAME`` (the URL read from the worker's env)."""

    targets: list[str]
    event: str
    text: str
    fields: dict[str, str] = Field(default_factory=dict)
    idempotency_key: str


class NotifyResult(_Msg):
    """How many targets accepted the event; failures are reported, never raised."""

    delivered: int = 0
    failed: list[str] = Field(default_factory=list)


class ReconcileRequest(_Msg):
    """``fix``: restore what needs it (False: only report)."""

    fix: bool = True


class ReconcileReport(_Msg):
    """Every config with an owner or an exposure, and what was (or would be) done."""

    findings: list[Finding] = Field(default_factory=list)

    @property
    def fixes(self) -> list[Finding]:
        """The findings that needed a fix."""
        return [f for f in self.findings if f.fix != "none"]


__all__ = [
    "AuditRecord",
    "ExposureChange",
    "MeasurementsRecord",
    "Notification",
    "NotifyResult",
    "PromoteVersion",
    "ReconcileReport",
    "ReconcileRequest",
    "RolloutTarget",
    "ShadowReplayStage",
    "ValidateRollout",
]
