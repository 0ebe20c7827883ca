"""Which version serves a request, and why. Pure and fast: compile once per revision, resolve often.

Order: a segment *pin* → the rollout's *candidate exposure* → *stable*. Bucketing follows DESIGN.md:
``sha1(f"{config_key}.{salt}.{user_key}")``, first 15 hex digits / 0xFFFFFFFFFFFFFFF, candidate if
bucket < percent / 100 — so raising 5 % to 10 % only adds users. A request without a user key (anonymous) is
bucketed per request by a uniform draw: at a 5 % stage about 5 % of anonymous requests reach the candidate
(not all or none of them); the same anonymous caller may see both versions. A segments stage with a
``holdback`` keeps the users of its segments whose bucket is ≥ 1 − holdback on stable (labelled with their
segment), so the stage's gates can compare candidate and stable within the same segments.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from hashlib import sha1
from typing import Any

from canaryflow.domain.checks import Checker
from canaryflow.domain.config import ConfigSpec, render_text
from canaryflow.domain.errors import NotFound
from canaryflow.domain.segments import Segment, compile_segment
from canaryflow.domain.serving import ServingState

_SCALE = float(0xFFFFFFFFFFFFFFF)
_EMPTY: Mapping[str, Any] = {}
_MISSING: Any = object()


def bucket(config_key: str, salt: str, user_key: str) -> float:
    """The user's position in [0, 1) for this config and salt."""
    digest = sha1(f"{config_key}.{salt}.{user_key}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 4) / _SCALE  # the first 15 hex digits


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
    tools: tuple[dict[str, Any], ...] = ()
    """The config's tools in the neutral form ``{name, description, parameters[, strict]}``; the wire shape
    per API comes from :mod:`canaryflow.domain.tools` (``chat_tools_wire`` ...)."""
    tool_choice: str | dict[str, Any] | None = None
    """``auto`` | ``none`` | ``required`` | ``{"name": tool}``, or None (not set by the config)."""
    response_format: dict[str, Any] | None = None
    """``{"type": "json_schema", "name", "schema"[, "description", "strict"]}``, or None."""
    drop: tuple[str, ...] = ()
    """Request fields the config lets cross-API translation drop instead of refusing."""
    checker: Checker | None = None
    """The version's output checks (guardrails), compiled; None: the config declares none."""
    stable_version: int | None = None
    """The stable version when this resolution serves another one (where a failed output check retries)."""

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
            "tools": [dict(t) for t in self.tools],
            "tool_choice": self.tool_choice,
            "response_format": self.response_format,
            "output_checks": None if self.checker is None else self.checker.checks.model_dump(
                exclude_defaults=True),
        }


def _plain(value: Any) -> Any:
    """A config model field as plain JSON data (the config models may be pydantic)."""
    dump = getattr(value, "model_dump", None)
    return dump(mode="json", exclude_none=True, by_alias=True) if callable(dump) else value


@dataclass(frozen=True, slots=True)
class LabelSet:
    """One way a compiled config can be served, as metrics label it (:meth:`CompiledConfig.label_sets`)."""

    version: int
    variation: str
    segment: str
    provider: str
    model: str
    fallbacks: tuple[tuple[str, str], ...]


class _Prepared:
    """A version with everything that does not depend on the request computed once."""

    __slots__ = ("checker", "drop", "fallback", "messages", "names", "parameters", "response_format",
                 "spec", "tool_choice", "tools")

    def __init__(self, spec: ConfigSpec):
        self.spec = spec
        self.messages = tuple({"role": m.role, "content": m.content} for m in spec.messages)
        self.names = tuple(spec.placeholders())
        self.parameters = spec.parameters.as_kwargs()
        self.fallback = tuple(f.model_dump(mode="json", exclude_none=True) for f in spec.fallback)
        self.tools = tuple(t.model_dump(mode="json", exclude_none=True) for t in spec.tools or ())
        choice = spec.tool_choice
        self.tool_choice = choice if choice is None or isinstance(choice, str) else choice.model_dump()
        fmt = spec.response_format
        self.response_format = None if fmt is None else fmt.model_dump(mode="json", exclude_none=True,
                                                                       by_alias=True)
        self.drop = tuple(str(f) for f in getattr(spec, "drop", None) or ())
        checks = spec.output_checks
        self.checker = None if checks is None else Checker(checks, None if fmt is None else fmt.json_schema)

    def rendered(self, key: str, variables: Mapping[str, object]) -> tuple[dict[str, str], ...]:
        """The messages with placeholders filled (:class:`RenderError` names a missing variable)."""
        return tuple({"role": m["role"], "content": render_text(m["content"], variables, config_key=key)}
                     for m in self.messages)


class _Outcome:
    """One way a request can be served (version, variation, reason), with its Resolution cache."""

    __slots__ = ("cache", "prepared", "reason", "shadow", "variation", "version")

    def __init__(self, prepared: _Prepared, version: int, variation: str, reason: str,
                 shadow: tuple[int | None, float] = (None, 0.0)):
        self.prepared = prepared
        self.version = version
        self.variation = variation
        self.reason = reason
        self.shadow = shadow
        self.cache: dict[Any, Resolution] = {}


_CACHE_LIMIT = 4096


class CompiledConfig:
    """A config's serving state, versions and segments, prepared for fast repeated resolution.

    Segments become plain-Python matchers and every (outcome, segment, variable values) answer is built
    once and reused, so a warm resolve is a few dict lookups (plus one SHA-1 during a percent stage).
    """

    def __init__(self, state: ServingState, versions: Mapping[int, ConfigSpec],
                 segments: list[Segment] | tuple[Segment, ...], *, draw: Callable[[], float] = random.random):
        self._draw = draw
        self.key = key = state.config_key
        self.state = state
        self.revision = state.revision
        exp = state.exposure
        self._prepared = {v: _Prepared(spec) for v, spec in versions.items()}
        needed = [v for v in (state.stable_version, exp.candidate_version, *state.pins.values())
                  if v is not None]
        missing = [v for v in needed if v not in self._prepared]
        if missing:
            raise NotFound(f"config {key!r}: serving state names unknown versions {missing}")
        self._matchers = tuple((s.name, compile_segment(s)) for s in segments)
        kind = exp.stage_kind if exp.candidate_version is not None else "none"
        self._kind = kind
        cand = exp.candidate_version
        self._candidate = cand
        self._threshold = exp.percent / 100.0
        self._prefix = sha1(f"{key}.{exp.salt}.".encode())
        self._shadow_fraction = exp.shadow_fraction if kind == "shadow" else 0.0
        self._stable = state.stable_version
        self._pins = {name: _Outcome(self._prepared[v], v, "pinned", f"segment {name!r} is pinned to v{v}")
                      for name, v in state.pins.items()}
        self._exposed: dict[str, _Outcome] = {}
        self._full: _Outcome | None = None
        self._percent: _Outcome | None = None
        if cand is not None:
            prep = self._prepared[cand]
            if kind == "full":
                self._full = _Outcome(prep, cand, "candidate",
                                      f"rollout at full: candidate v{cand} serves everyone")
            elif kind == "segments":
                self._exposed = {name: _Outcome(prep, cand, "candidate",
                                                f"segment {name!r} is exposed to candidate v{cand}")
                                 for name in exp.segments}
            elif kind == "percent" and self._threshold > 0:
                self._percent = _Outcome(prep, cand, "candidate",
                                         f"user bucket below {self._threshold * 100:g}% of the rollout")
        self._stable_outcome: _Outcome | None = None
        if self._stable is not None:
            if kind == "shadow":
                self._stable_outcome = _Outcome(
                    self._prepared[self._stable], self._stable, "stable",
                    f"stable v{self._stable}; candidate v{cand} in shadow", (cand, self._shadow_fraction))
            else:
                self._stable_outcome = _Outcome(self._prepared[self._stable], self._stable, "stable",
                                                f"stable v{self._stable}")
        self._all_matches = bool(self._pins or self._exposed)
        # A segments stage's holdback: users whose bucket is in the top ``holdback`` share stay on stable,
        # labelled with their segment, so the stage's gates have stable traffic of the same segments.
        self._holdback = exp.holdback if self._exposed and self._stable is not None else 0.0
        self._held: dict[str, _Outcome] = {}
        if self._holdback and self._stable is not None:
            self._held = {name: _Outcome(self._prepared[self._stable], self._stable, "stable",
                                         f"segment {name!r}: held back on stable v{self._stable} "
                                         f"({self._holdback * 100:g} % of its users)")
                          for name in exp.segments}

    def _decide(self, context: Mapping[str, Any]) -> tuple[_Outcome, str]:
        """Pin → candidate exposure → stable, and the first matching segment's name."""
        segment = "none"
        matchers = self._matchers
        if matchers:
            attributes = context.get("attributes") or _EMPTY
            if self._all_matches:
                matched = [name for name, match in matchers if match(attributes)]
                if matched:
                    segment = matched[0]
                    pins = self._pins
                    for name in matched:
                        if name in pins:
                            return pins[name], segment
                    exposed = self._exposed
                    for name in matched:
                        if name in exposed:
                            if self._holdback and self._held_back(context):
                                return self._held[name], segment
                            return exposed[name], segment
            else:
                for name, match in matchers:
                    if match(attributes):
                        segment = name
                        break
        if self._full is not None:
            return self._full, segment
        if self._percent is not None:
            user_key = context.get("key", "")
            if not user_key:  # anonymous: bucketed per request, so the stage's share holds for them too
                if self._draw() < self._threshold:
                    return self._percent, segment
                return self._stable_or_raise(), segment
            if self._bucket(user_key) < self._threshold:
                return self._percent, segment
        return self._stable_or_raise(), segment

    def _bucket(self, user_key: object) -> float:
        """The user's place in [0, 1), fixed per (config, rollout salt, user key)."""
        h = self._prefix.copy()
        h.update((user_key if type(user_key) is str else str(user_key)).encode())
        return (int.from_bytes(h.digest()[:8], "big") >> 4) / _SCALE

    def _held_back(self, context: Mapping[str, Any]) -> bool:
        """Whether a user of an exposed segment stays on stable: the top ``holdback`` share of buckets, so
        they are also the last users a later percent stage moves (anonymous requests: drawn per request)."""
        user_key = context.get("key", "")
        if not user_key:
            return self._draw() < self._holdback
        return self._bucket(user_key) >= 1.0 - self._holdback

    def _stable_or_raise(self) -> _Outcome:
        if self._stable_outcome is None:
            raise NotFound(
                f"config {self.key!r} has no stable version: run 'canaryflow serve set-stable {self.key} N'"
            )
        return self._stable_outcome

    def resolve(self, context: Mapping[str, Any] | None = None,
                variables: Mapping[str, object] | None = None) -> Resolution:
        """Resolve for a context ``{"key": user_key, "attributes": {...}}``."""
        outcome, segment = self._decide(context or _EMPTY)
        prepared = outcome.prepared
        names = prepared.names
        if not names:
            cache_key: Any = segment
        else:
            vars_ = variables or _EMPTY
            if len(names) == 1:
                value = vars_.get(names[0], _MISSING)
                if value is _MISSING:
                    prepared.rendered(self.key, vars_)  # raises RenderError naming the variable
                cache_key = (segment, value if type(value) is str else str(value))
            else:
                values = [vars_.get(n, _MISSING) for n in names]
                if _MISSING in values:
                    prepared.rendered(self.key, vars_)
                cache_key = (segment, *(v if type(v) is str else str(v) for v in values))
        cache = outcome.cache
        res = cache.get(cache_key)
        if res is None:
            messages = prepared.rendered(self.key, variables or _EMPTY) if names else prepared.messages
            shadow_version, shadow_fraction = outcome.shadow
            res = Resolution(self.key, outcome.version, outcome.variation, outcome.reason,
                             prepared.spec.provider, prepared.spec.model, messages, prepared.parameters,
                             prepared.fallback, segment, self.revision, shadow_version, shadow_fraction,
                             prepared.tools, prepared.tool_choice, prepared.response_format, prepared.drop,
                             prepared.checker,
                             self._stable if outcome.version != self._stable else None)
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[cache_key] = res
        return res

    def label_sets(self) -> list[LabelSet]:
        """Every (version, variation, segment, provider, model, fallbacks) this state can serve or mirror.

        What the exporter creates at 0 before the first request (so no first increment is lost): stable
        as ``stable``, the candidate as both ``candidate`` and ``shadow`` (the next stage's series exist
        while the current one runs), pinned versions as ``pinned``; each in every segment and ``none``.
        """
        served: list[tuple[int, str]] = []
        if self._stable is not None:
            served.append((self._stable, "stable"))
        if self._candidate is not None:
            served += [(self._candidate, "candidate"), (self._candidate, "shadow")]
        served += sorted({(v, "pinned") for v in self.state.pins.values()})
        segments = ("none", *(name for name, _ in self._matchers))
        out: list[LabelSet] = []
        for version, variation in served:
            prep = self._prepared[version]
            fallbacks = tuple((str(f["provider"]), str(f["model"])) for f in prep.fallback)
            out += [LabelSet(version, variation, seg, prep.spec.provider, prep.spec.model, fallbacks)
                    for seg in segments]
        return out

    def has_version(self, version: int) -> bool:
        """Whether this compiled config holds ``version``."""
        return version in self._prepared

    def spec(self, version: int) -> ConfigSpec:
        """The spec of a version this config knows."""
        try:
            return self._prepared[version].spec
        except KeyError as exc:
            raise NotFound(f"config {self.key!r} has no version {version}") from exc


def resolution_for(res: Resolution, spec: ConfigSpec, version: int,
                   variables: Mapping[str, object]) -> Resolution:
    """``res`` served by another version of its config (``spec``), e.g. stable after the variation's
    answer failed its output checks: that version's provider, model, rendered messages, parameters,
    fallbacks, tools and checks; the labels (version, variation, segment) stay ``res``'s.

    Raises:
        RenderError: ``variables`` miss a placeholder of ``spec``.
    """
    p = _Prepared(spec)
    return Resolution(res.config_key, res.version, res.variation, f"v{version} after a failed output check",
                      spec.provider, spec.model, p.rendered(res.config_key, variables), p.parameters,
                      p.fallback, res.segment, res.revision, None, 0.0, p.tools, p.tool_choice,
                      p.response_format, p.drop, p.checker, None)


def resolve(state: ServingState, versions: Mapping[int, ConfigSpec], segments: list[Segment],
            context: Mapping[str, Any] | None = None,
            variables: Mapping[str, object] | None = None) -> Resolution:
    """One-shot resolution (compiles, then resolves). Prefer :class:`CompiledConfig` in loops."""
    return CompiledConfig(state, versions, segments).resolve(context, variables)


__all__ = ["CompiledConfig", "LabelSet", "Resolution", "bucket", "resolution_for", "resolve"]
