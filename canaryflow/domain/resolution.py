"""Which version serves a request, and why. Pure and fast: compile once per revision, resolve often.

Order: a segment *pin* → the rollout's *candidate exposure* → *stable*. Bucketing follows DESIGN.md:
``sha1(f"{config_key}.{salt}.{user_key}")``, first 15 hex digits / 0xFFFFFFFFFFFFFFF, candidate if
bucket < percent / 100 — so raising 5 % to 10 % only adds users.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from hashlib import sha1
from typing import Any

from canaryflow.domain.config import ConfigSpec, render_text
from canaryflow.domain.errors import NotFound
from canaryflow.domain.segments import Segment
from canaryflow.domain.serving import ServingState

_SCALE = float(0xFFFFFFFFFFFFFFF)
_EMPTY: Mapping[str, Any] = {}


def bucket(config_key: str, salt: str, user_key: str) -> float:
    """The user's position in [0, 1) for this config and salt."""
    return int(sha1(f"{config_key}.{salt}.{user_key}".encode()).hexdigest()[:15], 16) / _SCALE


@dataclass(frozen=True, slots=True)
class Resolution:
    """The answer to "which configuration serves this request"."""

    config_key: str
    version: int
    variation: str
    reason: str
    provider: str
    model: str
    messages: tuple[dict[str, str], ...]
    parameters: dict[str, Any]
    fallback: tuple[dict[str, Any], ...]
    segment: str
    revision: int
    shadow_version: int | None = None
    shadow_fraction: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "config_key": self.config_key,
            "version": self.version,
            "variation": self.variation,
            "reason": self.reason,
            "provider": self.provider,
            "model": self.model,
            "messages": [dict(m) for m in self.messages],
            "parameters": dict(self.parameters),
            "fallback": [dict(f) for f in self.fallback],
            "segment": self.segment,
            "revision": self.revision,
            "shadow_version": self.shadow_version,
            "shadow_fraction": self.shadow_fraction,
        }


class _Prepared:
    """A version with everything that does not depend on the request computed once."""

    __slots__ = ("fallback", "messages", "needs_render", "parameters", "spec")

    def __init__(self, spec: ConfigSpec):
        self.spec = spec
        self.messages = tuple({"role": m.role, "content": m.content} for m in spec.messages)
        self.needs_render = bool(spec.placeholders())
        self.parameters = spec.parameters.as_kwargs()
        self.fallback = tuple(f.model_dump(mode="json", exclude_none=True) for f in spec.fallback)

    def base(self, key: str, version: int, variation: str, reason: str, segment: str,
             revision: int) -> Resolution:
        return Resolution(key, version, variation, reason, self.spec.provider, self.spec.model,
                          self.messages, self.parameters, self.fallback, segment, revision)


class CompiledConfig:
    """A config's serving state, versions and segments, prepared for fast repeated resolution."""

    def __init__(self, state: ServingState, versions: Mapping[int, ConfigSpec],
                 segments: list[Segment] | tuple[Segment, ...]):
        self.key = state.config_key
        self.state = state
        self.revision = state.revision
        exp = state.exposure
        self._segments = tuple(segments)
        self._prepared = {v: _Prepared(spec) for v, spec in versions.items()}
        needed = [v for v in (state.stable_version, exp.candidate_version, *state.pins.values())
                  if v is not None]
        missing = [v for v in needed if v not in self._prepared]
        if missing:
            raise NotFound(f"config {self.key!r}: serving state names unknown versions {missing}")
        self._pins = dict(state.pins)
        self._kind = exp.stage_kind if exp.candidate_version is not None else "none"
        self._candidate = exp.candidate_version
        self._exposed = frozenset(exp.segments)
        self._threshold = exp.percent / 100.0
        self._salt = exp.salt
        self._shadow_fraction = exp.shadow_fraction if self._kind == "shadow" else 0.0
        self._cache: dict[tuple[int, str, str], Resolution] = {}
        self._stable = state.stable_version
        self._segment_free = not self._segments

    def _pick(self, user_key: str, segment_names: tuple[str, ...]) -> tuple[int, str, str]:
        for name in segment_names:
            pinned = self._pins.get(name)
            if pinned is not None:
                return pinned, "pinned", f"segment {name!r} is pinned to v{pinned}"
        kind = self._kind
        cand = self._candidate
        if cand is not None:
            if kind == "full":
                return cand, "candidate", f"rollout at full: candidate v{cand} serves everyone"
            if kind == "segments":
                for name in segment_names:
                    if name in self._exposed:
                        return cand, "candidate", f"segment {name!r} is exposed to candidate v{cand}"
            elif kind == "percent" and bucket(self.key, self._salt, user_key) < self._threshold:
                return cand, "candidate", f"user bucket below {self._threshold * 100:g}% of the rollout"
        if self._stable is None:
            raise NotFound(
                f"config {self.key!r} has no stable version: run 'canaryflow serve set-stable {self.key} N'"
            )
        if kind == "shadow":
            return self._stable, "stable", f"stable v{self._stable}; candidate v{cand} in shadow"
        return self._stable, "stable", f"stable v{self._stable}"

    def resolve(self, context: Mapping[str, Any] | None = None,
                variables: Mapping[str, object] | None = None) -> Resolution:
        """Resolve for a context ``{"key": user_key, "attributes": {...}}``."""
        ctx = context or _EMPTY
        user_key = str(ctx.get("key", ""))
        if self._segment_free:
            matched: tuple[str, ...] = ()
        else:
            attributes = ctx.get("attributes") or _EMPTY
            matched = tuple(s.name for s in self._segments if s.matches(attributes))
        version, variation, reason = self._pick(user_key, matched)
        segment = matched[0] if matched else "none"
        cache_key = (version, reason, segment)
        res = self._cache.get(cache_key)
        if res is None:
            res = self._prepared[version].base(self.key, version, variation, reason, segment, self.revision)
            if self._kind == "shadow" and variation == "stable":
                res = replace(res, shadow_version=self._candidate, shadow_fraction=self._shadow_fraction)
            if len(self._cache) < 4096:
                self._cache[cache_key] = res
        prepared = self._prepared[version]
        if prepared.needs_render:
            vars_ = variables or _EMPTY
            rendered = tuple(
                {"role": m["role"], "content": render_text(m["content"], vars_, config_key=self.key)}
                for m in prepared.messages
            )
            res = replace(res, messages=rendered)
        return res

    def spec(self, version: int) -> ConfigSpec:
        """The spec of a version this config knows."""
        try:
            return self._prepared[version].spec
        except KeyError as exc:
            raise NotFound(f"config {self.key!r} has no version {version}") from exc


def resolve(state: ServingState, versions: Mapping[int, ConfigSpec], segments: list[Segment],
            context: Mapping[str, Any] | None = None,
            variables: Mapping[str, object] | None = None) -> Resolution:
    """One-shot resolution (compiles, then resolves). Prefer :class:`CompiledConfig` in loops."""
    return CompiledConfig(state, versions, segments).resolve(context, variables)


__all__ = ["CompiledConfig", "Resolution", "bucket", "resolve"]
