"""Segments: named groups of users matched by rules on context attributes (rules OR, clauses AND)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Operator = Literal[
    "equals", "in", "not_in", "starts_with", "ends_with", "contains", "exists", "lt", "lte", "gt", "gte"
]
NUMERIC_OPS = frozenset({"lt", "lte", "gt", "gte"})
Matcher = Callable[[Mapping[str, Any]], bool]
"""A compiled predicate over context attributes (see :func:`compile_segment`)."""
_MISSING: Any = object()
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "lt": operator.lt, "lte": operator.le, "gt": operator.gt, "gte": operator.ge}
SEGMENT_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"


class Clause(BaseModel):
    """``attribute op values``; true when any value matches (``not_in``: when none does)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attribute: str = Field(min_length=1)
    op: Operator
    values: list[Any] = Field(default_factory=list)

    @model_validator(mode="after")
    def _values_fit_op(self) -> Clause:
        if self.op != "exists" and not self.values:
            raise ValueError(f"operator {self.op!r} needs at least one value in 'values'")
        if self.op in NUMERIC_OPS:
            for v in self.values:
                if isinstance(v, bool) or not isinstance(v, int | float):
                    raise ValueError(f"operator {self.op!r} compares numbers: {v!r} is not a number")
        if self.op in {"starts_with", "ends_with", "contains"}:
            for v in self.values:
                if not isinstance(v, str):
                    raise ValueError(f"operator {self.op!r} compares strings: {v!r} is not a string")
        return self

    def matches(self, attributes: Mapping[str, Any]) -> bool:
        """Whether the attributes satisfy this clause."""
        present = self.attribute in attributes
        if self.op == "exists":
            want = bool(self.values[0]) if self.values else True
            return present == want
        if not present:
            return False
        value = attributes[self.attribute]
        op = self.op
        if op in ("equals", "in"):
            return any(_eq(value, v) for v in self.values)
        if op == "not_in":
            return not any(_eq(value, v) for v in self.values)
        if op in NUMERIC_OPS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    return False
            ref = self.values[0]
            return bool(
                (op == "lt" and value < ref)
                or (op == "lte" and value <= ref)
                or (op == "gt" and value > ref)
                or (op == "gte" and value >= ref)
            )
        if not isinstance(value, str):
            return False
        if op == "starts_with":
            return any(value.startswith(v) for v in self.values)
        if op == "ends_with":
            return any(value.endswith(v) for v in self.values)
        return any(v in value for v in self.values)  # contains


def _eq(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual is expected or (isinstance(actual, str) and actual.lower() == str(expected).lower())
    return bool(actual == expected)


class Rule(BaseModel):
    """Clauses that must all hold. A bare clause is accepted as a rule of one clause."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clauses: list[Clause] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _bare_clause(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "clauses" not in data and "attribute" in data:
            return {"clauses": [data]}
        return data

    def matches(self, attributes: Mapping[str, Any]) -> bool:
        """True when every clause holds."""
        return all(c.matches(attributes) for c in self.clauses)


class Segment(BaseModel):
    """A named group of users."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=SEGMENT_NAME)
    description: str = ""
    rules: list[Rule] = Field(min_length=1)

    def matches(self, attributes: Mapping[str, Any]) -> bool:
        """True when any rule holds."""
        return any(r.matches(attributes) for r in self.rules)


class SegmentFile(BaseModel):
    """The segment file: ``segments: [...]`` with unique names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segments: list[Segment]

    @field_validator("segments")
    @classmethod
    def _unique(cls, segments: list[Segment]) -> list[Segment]:
        names = [s.name for s in segments]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate segment names {dupes}: each segment name must appear once")
        return segments


def _compile_equals(attribute: str, values: list[Any], negate: bool) -> Matcher:
    """``equals``/``in``/``not_in`` with the exact semantics of ``_eq``, split by the actual value's type."""
    bools = tuple(v for v in values if isinstance(v, bool))
    strs = frozenset(v for v in values if isinstance(v, str))
    words = frozenset(str(v).lower() for v in bools)
    others = tuple(v for v in values if not isinstance(v, bool | str))

    def match(attributes: Mapping[str, Any]) -> bool:
        value = attributes.get(attribute, _MISSING)
        if value is _MISSING:
            return False
        if isinstance(value, bool):
            hit = value in bools  # only bools in there: == is identity
        elif isinstance(value, str):
            hit = value in strs or (bool(words) and value.lower() in words)
        else:
            hit = any(value == o for o in others)
        return hit is not negate

    return match


def _compile_numeric(attribute: str, op: str, ref: float) -> Matcher:
    compare = _COMPARE[op]

    def match(attributes: Mapping[str, Any]) -> bool:
        value = attributes.get(attribute, _MISSING)
        if value is _MISSING:
            return False
        if isinstance(value, bool) or not isinstance(value, int | float):
            try:
                value = float(value)
            except (TypeError, ValueError):
                return False
        return bool(compare(value, ref))

    return match


def _compile_string(attribute: str, op: str, values: tuple[str, ...]) -> Matcher:
    if op == "starts_with":
        def starts(attributes: Mapping[str, Any]) -> bool:
            value = attributes.get(attribute)
            return isinstance(value, str) and value.startswith(values)
        return starts
    if op == "ends_with":
        def ends(attributes: Mapping[str, Any]) -> bool:
            value = attributes.get(attribute)
            return isinstance(value, str) and value.endswith(values)
        return ends

    def contains(attributes: Mapping[str, Any]) -> bool:
        value = attributes.get(attribute)
        return isinstance(value, str) and any(v in value for v in values)
    return contains


def compile_clause(clause: Clause) -> Matcher:
    """A plain-Python predicate equivalent to ``clause.matches`` (no pydantic on the hot path)."""
    attribute, op, values = clause.attribute, clause.op, list(clause.values)
    if op == "exists":
        want = bool(values[0]) if values else True
        return lambda attributes: (attribute in attributes) == want
    if op in ("equals", "in", "not_in"):
        return _compile_equals(attribute, values, negate=op == "not_in")
    if op in NUMERIC_OPS:
        return _compile_numeric(attribute, op, values[0])
    return _compile_string(attribute, op, tuple(values))


def _all(matchers: tuple[Matcher, ...]) -> Matcher:
    if len(matchers) == 1:
        return matchers[0]

    def match(attributes: Mapping[str, Any]) -> bool:
        for m in matchers:  # noqa: SIM110 - a loop beats a generator on the hot path
            if not m(attributes):
                return False
        return True

    return match


def _any(matchers: tuple[Matcher, ...]) -> Matcher:
    if len(matchers) == 1:
        return matchers[0]

    def match(attributes: Mapping[str, Any]) -> bool:
        for m in matchers:  # noqa: SIM110 - a loop beats a generator on the hot path
            if m(attributes):
                return True
        return False

    return match


def compile_segment(segment: Segment) -> Matcher:
    """A plain-Python predicate equivalent to ``segment.matches``: rules OR, clauses AND."""
    return _any(tuple(_all(tuple(compile_clause(c) for c in r.clauses)) for r in segment.rules))


def first_match(segments: list[Segment] | tuple[Segment, ...], attributes: Mapping[str, Any]) -> str:
    """Name of the first segment the attributes match, or ``"none"``."""
    for seg in segments:
        if seg.matches(attributes):
            return seg.name
    return "none"


__all__ = ["Clause", "Matcher", "Operator", "Rule", "Segment", "SegmentFile", "compile_clause",
           "compile_segment", "first_match"]
