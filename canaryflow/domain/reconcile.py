"""What the reconciler does about one config's serving state (pure): the safety net for what a rollout's
own compensation cannot cover — a terminated workflow, a lost worker fleet, a manual registry edit.

An exposure (or a claim) whose owning rollout is no longer running is restored to stable; an exposure
with no owner at all is restored too (only a rollout may expose a candidate). A running owner is left
alone: its own compensation is in charge.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from canaryflow.domain.serving import ServingState

Fix = Literal["none", "restore", "release"]


class Finding(BaseModel):
    """One config the reconciler looked at, and what it does (or, dry, would do)."""

    model_config = ConfigDict(frozen=True)

    config_key: str
    owner: str | None
    owner_status: str
    exposure: str
    fix: Fix
    why: str
    applied: bool = False


def describe(state: ServingState) -> str:
    """The exposure in a few words."""
    e = state.exposure
    if e.stage_kind == "none":
        return "none"
    what = {"percent": f"{e.percent:g} %", "segments": ", ".join(e.segments), "shadow": "shadow",
            "full": "everyone"}.get(e.stage_kind, e.stage_kind)
    return f"v{e.candidate_version} at {e.stage or e.stage_kind} ({what})"


def assess(state: ServingState, owner_status: str | None) -> Finding:
    """``owner_status``: the owning workflow's status (``RUNNING``, ``TERMINATED``, ``NOT_FOUND``…), None
    when the state has no owner."""
    exposure = describe(state)
    status = owner_status or "-"
    if state.owner is not None and owner_status == "RUNNING":
        return Finding(config_key=state.config_key, owner=state.owner, owner_status=status, exposure=exposure,
                       fix="none", why="its rollout is running (its own compensation is in charge)")
    if state.owner is None:
        if state.exposure.stage_kind == "none":
            return Finding(config_key=state.config_key, owner=None, owner_status=status, exposure=exposure,
                           fix="none", why="nothing exposed")
        return Finding(config_key=state.config_key, owner=None, owner_status=status, exposure=exposure,
                       fix="restore", why="a candidate is exposed with no owning rollout (a manual edit?)")
    ended = f"its rollout {state.owner} is {owner_status.lower() if owner_status else 'unknown'}"
    if state.exposure.stage_kind == "none":
        return Finding(config_key=state.config_key, owner=state.owner, owner_status=status, exposure=exposure,
                       fix="release", why=f"{ended}: release its claim")
    return Finding(config_key=state.config_key, owner=state.owner, owner_status=status, exposure=exposure,
                   fix="restore", why=f"{ended}: restore stable v{state.stable_version}")


__all__ = ["Finding", "Fix", "assess", "describe"]
