"""Agreement scoring between two answers (pure, table-driven)."""

from __future__ import annotations

import math

import pytest

from canaryflow.domain.agreement import (
    agreement_score,
    contains_match,
    exact_match,
    json_match,
    length_ratio,
    normalise,
    parse_json,
    score_agreement,
    token_f1,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Hello,  World! ", "hello world"),
        ("ÉTÉ\tand\nSpring.", "été and spring"),
        ("", ""),
        ("a-b", "a b"),
        ("“Quoted” — dash…", "quoted dash"),
    ],
)
def test_normalise(text: str, expected: str) -> None:
    assert normalise(text) == expected


@pytest.mark.parametrize(
    ("candidate", "reference", "exact", "lo", "hi"),
    [
        ("Hello, world!", "hello world", True, 1.0, 1.0),
        ("The refund takes 5 days.", "the refund takes 5 days", True, 1.0, 1.0),
        ("The refund takes 7 days.", "The refund takes 5 days.", False, 0.7, 0.95),
        ("Completely different words here", "The refund takes 5 days.", False, 0.0, 0.25),
        ("", "something", False, 0.0, 0.0),
        ("", "", True, 1.0, 1.0),
    ],
)
def test_text_scores(candidate: str, reference: str, exact: bool, lo: float, hi: float) -> None:
    a = score_agreement(candidate, reference)
    assert a.exact is exact
    assert a.reference_is_json is False
    assert a.json_valid is None
    assert lo <= a.score <= hi
    assert a.score == agreement_score(candidate, reference)


@pytest.mark.parametrize(
    ("candidate", "reference", "json_valid", "same_keys", "json_equal", "lo", "hi"),
    [
        ('{"a": 1, "b": 2}', '{"b": 2, "a": 1}', True, True, True, 1.0, 1.0),
        ('```json\n{"a": 1}\n```', '{"a": 1}', True, True, True, 1.0, 1.0),
        ('{"a": 1, "b": 3}', '{"a": 1, "b": 2}', True, True, False, 0.5, 0.99),
        ('{"a": 1}', '{"a": 1, "b": 2}', True, False, False, 0.25, 0.9),
        ("a: 1, b: 2", '{"a": 1, "b": 2}', False, False, False, 0.0, 0.0),
        ('{"a": 1', '{"a": 1}', False, False, False, 0.0, 0.0),
        ("[1, 2]", '{"a": 1}', True, False, False, 0.0, 0.5),
        ("[1, 2]", "[1, 2]", True, None, True, 1.0, 1.0),
    ],
)
def test_json_scores(
    candidate: str, reference: str, json_valid: bool, same_keys: bool | None, json_equal: bool,
    lo: float, hi: float,
) -> None:
    a = score_agreement(candidate, reference)
    assert a.reference_is_json is True
    assert a.json_valid is json_valid
    assert a.same_keys is same_keys
    assert a.json_equal is json_equal
    assert lo <= a.score <= hi


@pytest.mark.parametrize(
    ("candidate", "reference", "ratio"),
    [("abcd", "ab", 2.0), ("ab", "abcd", 0.5), ("", "", 1.0), ("x", "", math.inf), ("  ab ", "ab", 1.0)],
)
def test_length_ratio(candidate: str, reference: str, ratio: float) -> None:
    assert length_ratio(candidate, reference) == ratio


@pytest.mark.parametrize(
    ("a", "b", "f1"),
    [("a b c", "a b c", 1.0), ("a b", "c d", 0.0), ("a b c d", "a b", 2 / 3), ("", "", 1.0), ("a", "", 0.0)],
)
def test_token_f1(a: str, b: str, f1: float) -> None:
    assert token_f1(a, b) == pytest.approx(f1)


@pytest.mark.parametrize(
    ("text", "ok"),
    [('{"a": 1}', True), ("[1]", True), ("42", False), ('"s"', False), ("{bad", False), ("", False),
     ("```\n[1]\n```", True)],
)
def test_parse_json(text: str, ok: bool) -> None:
    assert parse_json(text)[0] is ok


@pytest.mark.parametrize(
    ("answer", "expected", "exact", "contains", "json_eq"),
    [
        ("Paris.", "paris", True, True, False),
        ("The capital is Paris.", "Paris", False, True, False),
        ("Parisian food", "Paris", False, False, False),
        ('{"x": [1, 2]}', '{ "x": [1,2] }', True, True, True),
        ('{"x": [2, 1]}', '{"x": [1, 2]}', False, False, False),
        ("anything", "", False, True, False),
    ],
)
def test_accuracy_checks(answer: str, expected: str, exact: bool, contains: bool, json_eq: bool) -> None:
    assert exact_match(answer, expected) is exact
    assert contains_match(answer, expected) is contains
    assert json_match(answer, expected) is json_eq
