"""Segment matching: every operator, rules OR / clauses AND; compiled matchers agree with the models."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canaryflow.domain.segments import Clause, Segment, compile_clause, compile_segment, first_match

CASES: list[tuple[str, list[Any], dict[str, Any], bool]] = [
    # op, values, attributes, expected
    ("equals", ["pro"], {"plan": "pro"}, True),
    ("equals", ["pro"], {"plan": "free"}, False),
    ("equals", ["pro"], {}, False),
    ("equals", [True], {"plan": True}, True),
    ("equals", [True], {"plan": "true"}, True),
    ("equals", [True], {"plan": "TRUE"}, True),
    ("equals", [True], {"plan": 1}, False),
    ("equals", [True], {"plan": False}, False),
    ("equals", [1], {"plan": True}, False),
    ("equals", [3], {"plan": 3.0}, True),
    ("in", ["pro", "team"], {"plan": "team"}, True),
    ("in", ["pro", "team"], {"plan": "free"}, False),
    ("not_in", ["pro", "team"], {"plan": "free"}, True),
    ("not_in", ["pro", "team"], {"plan": "pro"}, False),
    ("not_in", ["pro"], {}, False),
    ("starts_with", ["ad", "ro"], {"plan": "root"}, True),
    ("starts_with", ["ad"], {"plan": "user"}, False),
    ("starts_with", ["1"], {"plan": 12}, False),
    ("ends_with", ["@acme.com"], {"plan": "a@acme.com"}, True),
    ("ends_with", ["@acme.com"], {"plan": "a@acme.com.evil"}, False),
    ("contains", ["gold"], {"plan": "old-gold-2"}, True),
    ("contains", ["gold"], {"plan": "silver"}, False),
    ("contains", ["gold"], {"plan": None}, False),
    ("exists", [], {"plan": None}, True),
    ("exists", [], {}, False),
    ("exists", [False], {}, True),
    ("exists", [False], {"plan": "x"}, False),
    ("lt", [10], {"plan": 9}, True),
    ("lt", [10], {"plan": 10}, False),
    ("lte", [10], {"plan": 10}, True),
    ("gt", [10], {"plan": 10.5}, True),
    ("gt", [10], {"plan": "11"}, True),
    ("gt", [10], {"plan": "eleven"}, False),
    ("gte", [10], {"plan": 10}, True),
    ("gte", [10], {"plan": 9.99}, False),
    ("gte", [1], {"plan": True}, True),
    ("lt", [10], {}, False),
]


@pytest.mark.parametrize(("op", "values", "attributes", "expected"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_every_operator(op: str, values: list[Any], attributes: dict[str, Any], expected: bool) -> None:
    clause = Clause(attribute="plan", op=op, values=values)  # type: ignore[arg-type]
    assert clause.matches(attributes) is expected
    assert compile_clause(clause)(attributes) is expected


SEGMENT = Segment.model_validate({"name": "vip", "rules": [
    {"clauses": [{"attribute": "plan", "op": "equals", "values": ["pro"]},
                 {"attribute": "seats", "op": "gte", "values": [10]}]},
    {"attribute": "email", "op": "ends_with", "values": ["@acme.com"]},
]})


@pytest.mark.parametrize(("attributes", "expected"), [
    ({"plan": "pro", "seats": 12}, True),            # first rule: both clauses
    ({"plan": "pro", "seats": 2}, False),            # first rule: one clause fails (AND)
    ({"email": "x@acme.com"}, True),                 # second rule alone (OR)
    ({"plan": "free", "email": "x@other.com"}, False),
])
def test_rules_or_clauses_and(attributes: dict[str, Any], expected: bool) -> None:
    assert SEGMENT.matches(attributes) is expected
    assert compile_segment(SEGMENT)(attributes) is expected


def test_first_match_in_order() -> None:
    other = Segment.model_validate({"name": "all", "rules": [{"attribute": "plan", "op": "exists"}]})
    assert first_match([SEGMENT, other], {"plan": "pro", "seats": 50}) == "vip"
    assert first_match([SEGMENT, other], {"plan": "free"}) == "all"
    assert first_match([SEGMENT, other], {}) == "none"


WORDS = ["pro", "free", "true", "False", "a@acme.com", "12", "", "gold"]
SCALARS = st.one_of(st.booleans(), st.integers(-5, 15), st.floats(-5, 15, allow_nan=False),
                    st.sampled_from(WORDS), st.none())
OPS = st.sampled_from(["equals", "in", "not_in", "starts_with", "ends_with", "contains", "exists", "lt",
                       "lte", "gt", "gte"])


@st.composite
def clauses(draw: st.DrawFn) -> Clause:
    op = draw(OPS)
    if op in ("lt", "lte", "gt", "gte"):
        values: list[Any] = [draw(st.one_of(st.integers(-5, 15), st.floats(-5, 15, allow_nan=False)))]
    elif op in ("starts_with", "ends_with", "contains"):
        values = draw(st.lists(st.sampled_from(["p", "@acme.com", "ol", "1", "tr"]), min_size=1, max_size=3))
    elif op == "exists":
        values = draw(st.lists(st.booleans(), max_size=1))
    else:
        values = draw(st.lists(SCALARS.filter(lambda v: v is not None), min_size=1, max_size=3))
    return Clause(attribute=draw(st.sampled_from(["a", "b"])), op=op, values=values)


@settings(max_examples=400, deadline=None)
@given(clause=clauses(), attributes=st.dictionaries(st.sampled_from(["a", "b", "c"]), SCALARS, max_size=3))
def test_compiled_matchers_agree_with_the_models(clause: Clause, attributes: dict[str, Any]) -> None:
    assert compile_clause(clause)(attributes) is clause.matches(attributes)
