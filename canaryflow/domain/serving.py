"""The serving state of a config: which version is stable, which candidate is exposed to whom."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

StageKind = Literal["none", "shadow", "segments", "percent", "full"]
Variation = Literal["stable", "candidate", "pinned", "shadow", "fallback"]


class Exposure(BaseModel):
    """How far a candidate is exposed; what a rollout stage asks the registry to apply."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    candidate_version: int | None = None
    stage: str | None = None
    stage_kind: StageKind = "none"
    segments: list[str] = Field(default_factory=list)
    percent: float = Field(default=0.0, ge=0.0, le=100.0)
    shadow_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    holdback: float = Field(default=0.0, ge=0.0, lt=1.0,
                            description="segments stages: share of the segments' users kept on stable")
    salt: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Exposure:
        if self.stage_kind != "none" and self.candidate_version is None:
            raise ValueError(f"stage kind {self.stage_kind!r} needs a candidate_version")
        if self.holdback and self.stage_kind != "segments":
            raise ValueError(f"holdback belongs to segments stages, not to stage kind {self.stage_kind!r}")
        return self

    @classmethod
    def none(cls) -> Exposure:
        """No candidate: everyone gets stable (or their pin)."""
        return cls()


class ServingState(BaseModel):
    """Everything resolution needs about one config, with a revision that grows on every change."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    config_key: str
    stable_version: int | None = None
    exposure: Exposure = Field(default_factory=Exposure)
    pins: dict[str, int] = Field(default_factory=dict)
    owner: str | None = Field(default=None, description="workflow id of the rollout owning the exposure")
    revision: int = 0
    updated_by: str = ""
    updated_reason: str = ""
    updated_source: str = ""
    updated_at: datetime | None = None


__all__ = ["Exposure", "ServingState", "StageKind", "Variation"]
