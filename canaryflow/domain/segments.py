"""Segments: named groups of users matched by rules on context attributes (rules OR, clauses AND)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Operator = Literal[
    "equals", "in", "not_in", "starts_with", "ends_with", "contains", "exists", "lt", "lte", "gt", "gte"
]
NUMERIC_OPS = frozenset({"lt", "lte", "gt", "gte"})
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


def first_match(segments: list[Segment] | tuple[Segment, ...], attributes: Mapping[str, Any]) -> str:
    """Name of the first segment the attributes match, or ``"none"``."""
    for seg in segments:
        if seg.matches(attributes):
            return seg.name
    return "none"


__all__ = ["Clause", "Operator", "Rule", "Segment", "SegmentFile", "first_match"]
