"""Per-model behaviour of the simulator, and the prompt markers that override it for one request.

A :class:`ModelProfile` gives the latency distribution (lognormal from a median and a p95), the error mix
(429 with ``retry-after``, 500, hangs), the answer quality and the answer length. Profiles are looked up
by exact model name, then without a date suffix (``gpt-4o-2024-08-06`` → ``gpt-4o``), then ``default``.

Markers (see :mod:`canaryflow.sim` for the list) are ``[sim:name=value]`` anywhere in any message.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")
MARKER = re.compile(r"\[sim(?:@([^:\]\s]+))?:([a-z_]+)(?:=([^\]\s]*))?\]")


class ModelProfile(BaseModel):
    """How one simulated model behaves."""

    model_config = ConfigDict(extra="forbid")

    latency_median_ms: float = Field(default=300.0, ge=0)
    latency_p95_ms: float = Field(default=800.0, ge=0)
    ttft_fraction: float = Field(default=0.3, ge=0, le=1, description="share of the latency before 1st chunk")
    rate_limit_rate: float = Field(default=0.0, ge=0, le=1, description="probability of a 429")
    error_rate: float = Field(default=0.0, ge=0, le=1, description="probability of a 500")
    timeout_rate: float = Field(default=0.0, ge=0, le=1, description="probability of a hang")
    hang_s: float = Field(default=30.0, ge=0, description="how long a hang lasts before a 504")
    retry_after_s: float = Field(default=1.0, ge=0, description="retry-after sent with a 429")
    quality: float = Field(default=0.9, ge=0, le=1, description="P(right answer) on a known question")
    output_tokens: int = Field(default=60, ge=1, description="mean answer length for other prompts")
    cached_fraction: float = Field(default=0.0, ge=0, le=1, description="share of input tokens cached")
    json_answers: bool = Field(default=False, description="answer as a JSON object")
    status: int | None = Field(default=None, ge=400, le=599, description="always fail with this status")
    finish: Literal["length", "content_filter"] | None = Field(default=None, description="forced finish")
    stream_error_after: int | None = Field(default=None, ge=0,
                                           description="streams fail mid-way after this many text chunks")
    tool_use_rate: float = Field(default=1.0, ge=0, le=1,
                                 description="P(call a tool) under tool_choice auto before any tool result")
    tool_error_rate: float = Field(default=0.0, ge=0, le=1, description="P(a tool call is wrong)")
    tool_error: Literal["invalid_json", "unknown_tool", "bad_arguments"] | None = Field(
        default=None, description="the kind of wrong tool call (default: drawn among those the API allows)")
    schema_error_rate: float = Field(default=0.0, ge=0, le=1,
                                     description="P(a structured answer does not match the requested schema)")
    judge_noise: float = Field(default=0.1, ge=0, le=2,
                               description="judge requests: sd of the Gaussian noise on a grade / preference")
    judge_bias: float = Field(default=0.0, ge=-1, le=1,
                              description="judge requests: position bias, added to answer A's preference")
    judge_tie_band: float = Field(default=0.5, ge=0, le=2,
                                  description="judge requests: |preference| below this is a tie")


def _p(median: float, p95: float, quality: float, tokens: int = 60) -> ModelProfile:
    return ModelProfile(latency_median_ms=median, latency_p95_ms=p95, quality=quality, output_tokens=tokens)


DEFAULT_PROFILES: dict[str, ModelProfile] = {
    "default": ModelProfile(),
    "gpt-4o": _p(600, 1600, 0.93),
    "gpt-4o-mini": _p(400, 1100, 0.88),
    "gpt-4.1": _p(650, 1700, 0.94),
    "gpt-4.1-mini": _p(420, 1100, 0.9),
    "gpt-4.1-nano": _p(250, 700, 0.8, 40),
    "o3": _p(3000, 9000, 0.98, 120),
    "o4-mini": _p(1800, 5000, 0.95, 90),
    "gpt-5": _p(2500, 8000, 0.98, 120),
    "gpt-5-mini": _p(1200, 3500, 0.95, 80),
    "gpt-5-nano": _p(700, 2000, 0.88, 60),
    "claude-opus-4-1": _p(2000, 6000, 0.98, 120),
    "claude-sonnet-4-5": _p(900, 2500, 0.96, 90),
    "claude-haiku-4-5": _p(400, 1000, 0.9, 60),
    "claude-3-5-haiku": _p(450, 1200, 0.85, 60),
    "sim-judge": _p(150, 400, 0.9, 40),
}


def default_profiles() -> dict[str, ModelProfile]:
    """A fresh copy of the built-in profiles."""
    return {name: p.model_copy() for name, p in DEFAULT_PROFILES.items()}


def lookup(profiles: dict[str, ModelProfile], model: str) -> ModelProfile:
    """The profile for ``model``: exact name, then without a date suffix, then ``default``."""
    found = profiles.get(model)
    if found is None:
        found = profiles.get(_DATE_SUFFIX.sub("", model))
    if found is None:
        found = profiles.get("default") or ModelProfile()
    return found


def _float(value: str | None, name: str) -> float:
    try:
        return float(value or "")
    except ValueError as exc:
        raise ValueError(f"marker [sim:{name}=...] needs a number, got {value!r}") from exc


def apply_markers(profile: ModelProfile, texts: list[str], model: str | None = None) -> ModelProfile:
    """``profile`` with every ``[sim:...]`` marker found in ``texts`` applied (unknown markers ignored).

    A scoped marker ``[sim@MODEL:name=value]`` applies only when ``model`` is ``MODEL``.

    Raises:
        ValueError: a marker whose value is not a number where one is needed.
    """
    updates: dict[str, Any] = {}
    for text in texts:
        if "[sim" not in text:
            continue
        for scope, name, value in MARKER.findall(text):
            if scope and scope != model:
                continue
            if name == "latency_ms":
                median = _float(value, name)
                base = profile.latency_median_ms
                ratio = profile.latency_p95_ms / base if base else 1.0
                updates["latency_median_ms"] = median
                updates["latency_p95_ms"] = median * ratio
            elif name in ("error_rate", "rate_limit_rate", "timeout_rate", "quality", "cached_fraction",
                          "tool_use_rate", "tool_error_rate", "schema_error_rate", "judge_noise",
                          "judge_bias", "judge_tie_band"):
                updates[name] = _float(value, name)
            elif name == "rate_limit":
                updates["rate_limit_rate"] = _float(value, name)
            elif name == "hang_ms":
                updates["hang_s"] = _float(value, name) / 1000.0
            elif name == "retry_after":
                updates["retry_after_s"] = _float(value, name)
            elif name == "tokens":
                updates["output_tokens"] = max(1, int(_float(value, name)))
            elif name == "json":
                updates["json_answers"] = value.lower() not in ("0", "false", "no")
            elif name == "status":
                updates["status"] = int(_float(value, name))
            elif name == "finish":
                updates["finish"] = value
            elif name == "tool_error":
                updates["tool_error"] = value
                updates.setdefault("tool_error_rate", 1.0)
            elif name == "stream_error_after":
                updates["stream_error_after"] = int(_float(value, name))
    if not updates:
        return profile
    try:
        return ModelProfile.model_validate({**profile.model_dump(), **updates})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"sim marker for {first['loc'][0]}: {first['msg']}") from None


def strip_markers(text: str) -> str:
    """``text`` without its ``[sim:...]`` markers."""
    return MARKER.sub("", text) if "[sim" in text else text


__all__ = ["DEFAULT_PROFILES", "MARKER", "ModelProfile", "apply_markers", "default_profiles", "lookup",
           "strip_markers"]
