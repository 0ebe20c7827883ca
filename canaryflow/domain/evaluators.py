"""Online evaluators a config declares, what one scores, and the registry of scorers per kind. Pure.

In a config file::

    evaluators:
      - {name: json_ok, kind: valid_json, sample: 0.1}      # the answer parses as JSON
      - {name: schema, kind: match_schema}                  # it matches response_format's schema
      - {name: short, kind: length, max: 800}               # characters (min and/or max)
      - {name: has_status, kind: contains, values: [status]}
      - {name: no_todo, kind: not_contains, values: [TODO]}
      - {name: pat, kind: regex, pattern: "^\\{"}           # re.search must find it
      - {name: no_refusal, kind: refusal}                   # not a refusal (the provider's or written)
      - {name: nonempty, kind: non_empty}
      - {name: tools_ok, kind: tool_calls}                  # every tool call fits the request's tools
      - {name: helpful, kind: judge, judge: grader, version: 2}   # LLM-as-judge (a judge config key)
      - {name: prefer, kind: pairwise, judge: grader}             # shadow only: candidate vs stable

A sampled copy of live, shadow and replayed answers (``sample``: the share, decided by a hash of the
request id, so a mirrored request's stable and shadow answers are sampled together) is scored off the
request path. Each evaluation gives a :class:`Score`: a value in [0, 1], passed or not, a label and a short
reason (never the answer's text). The deterministic kinds reuse the output checks of
:mod:`canaryflow.domain.checks` (score 1 = pass, 0 = fail, the label the failure's type). ``judge`` and
``pairwise`` are scored by plug-ins: a :data:`ScorerFactory` registered for the kind in a
:class:`ScorerRegistry` builds a :class:`Scorer` per (config version, evaluator).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from canaryflow.domain.budget import Budget
from canaryflow.domain.checks import Checker, OutputChecks, compiling

CHECK_KINDS = ("valid_json", "match_schema", "regex", "contains", "not_contains", "length", "refusal",
               "non_empty", "tool_calls")
"""Deterministic kinds (scored in the gateway process from the answer alone)."""
JUDGE_KINDS = ("judge", "pairwise")
"""Kinds scored by a judge config (plug-ins: see :class:`ScorerRegistry`)."""
KINDS = (*CHECK_KINDS, *JUDGE_KINDS)
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
_KEY = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
MAX_EVALUATORS = 16
MAX_REASON = 120
SOURCES = ("live", "shadow", "replay")
"""Where a scored answer came from."""


class EvaluatorSpec(BaseModel):
    """One evaluator of a config version (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=NAME_PATTERN, description="[a-z0-9][a-z0-9_.-]{0,62}; a gate names it")
    kind: str = Field(description="one of " + ", ".join(KINDS))
    sample: float = Field(default=1.0, description="share of answers scored, in (0, 1]")
    pattern: str | None = Field(default=None, description="regex: a Python regular expression to find")
    values: list[str] = Field(default_factory=list, description="contains / not_contains: the strings")
    min: int | None = Field(default=None, ge=0, description="length: fewest characters")
    max: int | None = Field(default=None, ge=1, description="length: most characters")
    judge: str | None = Field(default=None, description="judge / pairwise: the judge config's key")
    version: int | None = Field(default=None, ge=1, description="judge / pairwise: the judge config's "
                                                                "version (default: its stable one)")
    threshold: float = Field(default=0.5, ge=0.0, le=1.0,
                             description="judge: a score at or above this passes")
    budget_per_hour: Budget | None = Field(
        default=None, description="judge / pairwise: the most this evaluator may spend per hour and process, "
                                  "in dollars (a number or {usd: N}) or {calls: N}; over it a sample is "
                                  "dropped and counted (reason budget)")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in KINDS:
            raise ValueError(f"unknown kind {value!r}: use one of {', '.join(KINDS)}")
        return value

    @field_validator("sample")
    @classmethod
    def _share(cls, value: float) -> float:
        if not 0.0 < value <= 1.0:
            raise ValueError(f"sample {value:g} is outside (0, 1]: the share of answers scored, e.g. 0.1")
        return value

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return compiling("pattern", value)

    @field_validator("judge")
    @classmethod
    def _judge_key(cls, value: str | None) -> str | None:
        if value is not None and not _KEY.match(value):
            raise ValueError(f"judge {value!r} is not a config key ([a-z0-9][a-z0-9._-]{{0,62}})")
        return value

    @model_validator(mode="after")
    def _fields_of_kind(self) -> EvaluatorSpec:
        k = self.kind
        needs = {"regex": ("pattern",), "contains": ("values",), "not_contains": ("values",),
                 "judge": ("judge",), "pairwise": ("judge",)}.get(k, ())
        for name in needs:
            if not getattr(self, name):
                raise ValueError(f"kind {k} needs {name!r}" + {
                    "pattern": ' (e.g. pattern: "^\\\\{")', "values": " (e.g. values: [status])",
                    "judge": " (the key of a judge config pushed first)"}[name])
        owned = {"pattern": ("regex",), "values": ("contains", "not_contains"), "min": ("length",),
                 "max": ("length",), "judge": JUDGE_KINDS, "version": JUDGE_KINDS,
                 "threshold": ("judge",), "budget_per_hour": JUDGE_KINDS}
        for name, kinds in owned.items():
            if name in self.model_fields_set and k not in kinds:
                raise ValueError(f"{name!r} belongs to kind {' / '.join(kinds)}, not {k}: remove it")
        if k == "length":
            if self.min is None and self.max is None:
                raise ValueError("kind length needs 'min' and/or 'max' (characters)")
            if self.min is not None and self.max is not None and self.min > self.max:
                raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Only the fields the author set (and name, kind): a field added later with a default does not
        change the content hash of versions pushed before it."""
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if k in ("name", "kind") or k in self.model_fields_set}

    @property
    def is_judge(self) -> bool:
        """Scored by a judge config (``judge`` / ``pairwise``)."""
        return self.kind in JUDGE_KINDS


def check_evaluators(evaluators: Sequence[EvaluatorSpec], *, has_schema: bool) -> None:
    """Refuse (``ValueError``) what a list of evaluators cannot be together: duplicate names, too many,
    ``match_schema`` without a response schema."""
    if len(evaluators) > MAX_EVALUATORS:
        raise ValueError(f"{len(evaluators)} evaluators, at most {MAX_EVALUATORS}")
    seen: set[str] = set()
    for i, ev in enumerate(evaluators):
        if ev.name in seen:
            raise ValueError(f"[{i}].name: two evaluators are both named {ev.name!r}: rename one")
        seen.add(ev.name)
        if ev.kind == "match_schema" and not has_schema:
            raise ValueError(f"[{i}] ({ev.name}): kind match_schema needs a schema to match: set "
                             "response_format {type: json_schema, name, schema} (or use kind valid_json)")


def sample_point(request_id: str) -> float:
    """The request's position in [0, 1) for sampling (the same for every evaluator and variation)."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 18446744073709551616.0


@dataclass(frozen=True, slots=True)
class Sample:
    """One answer to score. ``messages`` and ``reference`` are for judges only; nothing of the text is
    ever stored or exported."""

    request_id: str
    config_key: str
    version: int
    variation: str
    segment: str
    text: str
    source: str = "live"
    """One of :data:`SOURCES`: ``live``, ``shadow`` or ``replay``."""
    finish_reason: str = "stop"
    tool_calls: int = 0
    tool_call_results: tuple[str, ...] = ()
    refused: bool = False
    messages: tuple[Mapping[str, Any], ...] = ()
    """The caller's messages (the judge's input)."""
    reference: str | None = None
    """Stable's answer to the same request (shadow: what a pairwise judge compares against)."""
    provider: str = ""
    model: str = ""


@dataclass(frozen=True, slots=True)
class Score:
    """The result of one evaluator on one answer (OpenTelemetry ``gen_ai.evaluation.result``)."""

    evaluator: str
    score: float
    """``gen_ai.evaluation.score.value``, in [0, 1]."""
    passed: bool
    label: str = ""
    """``gen_ai.evaluation.score.label`` (``pass``, a failure's type, a judge's label)."""
    reason: str = ""
    """``gen_ai.evaluation.explanation``: short, never the prompt or the answer."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score {self.score!r} of {self.evaluator!r} is outside [0, 1]")
        if len(self.reason) > MAX_REASON:
            object.__setattr__(self, "reason", self.reason[: MAX_REASON - 1] + "…")


class Scorer(Protocol):
    """Scores one answer; a plug-in (``judge``) may call a model. Never raises for a bad answer (a score
    says so); an exception is counted as an evaluation error."""

    async def score(self, sample: Sample) -> list[Score]: ...


@dataclass(frozen=True, slots=True)
class EvaluatorContext:
    """What a scorer factory knows of the version it scores."""

    config_key: str
    version: int
    response_schema: dict[str, Any] | None = None


ScorerFactory = Callable[[EvaluatorSpec, EvaluatorContext], Scorer]
"""Builds the :class:`Scorer` of one evaluator of one config version (compiled once per version)."""


class CheckScorer:
    """A deterministic evaluator: one output check of :mod:`canaryflow.domain.checks`, reused."""

    __slots__ = ("_checker", "spec")

    def __init__(self, spec: EvaluatorSpec, ctx: EvaluatorContext) -> None:
        self.spec = spec
        k = spec.kind
        checks = OutputChecks(
            valid_json=k == "valid_json", match_schema=k == "match_schema", non_empty=k == "non_empty",
            refusal=k == "refusal", regex=spec.pattern if k == "regex" else None,
            contains=list(spec.values) if k == "contains" else [],
            not_contains=list(spec.values) if k == "not_contains" else [],
            min_length=spec.min if k == "length" else None, max_length=spec.max if k == "length" else None)
        self._checker = Checker(checks, ctx.response_schema)

    def score_now(self, sample: Sample) -> list[Score]:
        """The score, synchronously (deterministic kinds never wait)."""
        name = self.spec.name
        if self.spec.kind == "tool_calls":
            results = sample.tool_call_results
            if not results:
                return []  # no tool call to judge: nothing scored
            bad = [r for r in results if r != "valid"]
            return [Score(name, (len(results) - len(bad)) / len(results), not bad,
                          "pass" if not bad else bad[0], f"{len(bad)} of {len(results)} tool calls invalid"
                          if bad else f"{len(results)} tool calls valid")]
        failed = self._checker.check(sample.text, finish_reason=sample.finish_reason,
                                     tool_calls=sample.tool_calls, refused=sample.refused)
        if failed is None:
            return [Score(name, 1.0, True, "pass")]
        return [Score(name, 0.0, False, failed, _REASONS.get(failed, failed))]

    async def score(self, sample: Sample) -> list[Score]:
        return self.score_now(sample)


_REASONS = {"invalid_json": "not valid JSON", "schema_mismatch": "JSON does not match the schema",
            "empty": "empty answer", "refusal": "a refusal", "pattern": "pattern not matched",
            "length": "length out of bounds"}


@dataclass
class ScorerRegistry:
    """Which factory builds the scorer of each kind. The deterministic kinds are built in; the judge
    plug-in registers ``judge`` and ``pairwise``: ``registry.register("judge", factory)``."""

    factories: dict[str, ScorerFactory] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind in CHECK_KINDS:
            self.factories.setdefault(kind, CheckScorer)

    def register(self, kind: str, factory: ScorerFactory) -> None:
        """Use ``factory`` for evaluators of ``kind`` (one of :data:`KINDS`)."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
        self.factories[kind] = factory

    def build(self, spec: EvaluatorSpec, ctx: EvaluatorContext) -> Scorer | None:
        """The scorer of ``spec``, or None when no factory is registered for its kind."""
        factory = self.factories.get(spec.kind)
        return None if factory is None else factory(spec, ctx)


@dataclass(frozen=True, slots=True)
class CompiledEvaluator:
    """An evaluator with its scorer, built once per config version."""

    spec: EvaluatorSpec
    scorer: Scorer | None
    """None: no scorer for this kind in this process (scores are not produced; counted as dropped)."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def sample(self) -> float:
        return self.spec.sample


def compile_evaluators(evaluators: Sequence[EvaluatorSpec], ctx: EvaluatorContext,
                       scorers: ScorerRegistry) -> tuple[CompiledEvaluator, ...]:
    """Every evaluator of a version with its scorer (``pairwise`` ones only score shadow answers)."""
    return tuple(CompiledEvaluator(spec, scorers.build(spec, ctx)) for spec in evaluators)


def chosen(evaluators: Sequence[CompiledEvaluator], point: float, source: str) -> tuple[CompiledEvaluator,
                                                                                        ...]:
    """The evaluators sampling a request at ``point`` (:func:`sample_point`) from ``source``
    (``pairwise`` needs a stable answer to compare with: shadow and replay only)."""
    return tuple(e for e in evaluators if point < e.sample
                 and (e.spec.kind != "pairwise" or source != "live"))


__all__ = ["CHECK_KINDS", "JUDGE_KINDS", "KINDS", "MAX_REASON", "SOURCES", "CheckScorer", "CompiledEvaluator",
           "EvaluatorContext", "EvaluatorSpec", "Sample", "Score", "Scorer", "ScorerFactory",
           "ScorerRegistry", "check_evaluators", "chosen", "compile_evaluators", "sample_point"]
