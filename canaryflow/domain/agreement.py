"""Agreement between two answers to the same request (pure).

Used by the gateway's shadow mirror and the shadow replay activity (candidate vs stable) and by
``canaryflow eval`` (answer vs expected answer). Checks, each cheap and deterministic:

* normalised exact match: case folded, punctuation dropped, whitespace collapsed;
* JSON: when the reference answer is JSON, is the candidate JSON too, with the same keys (and values)?
* length ratio: candidate length / reference length;
* token overlap: F1 of the normalised word multisets.

:func:`score_agreement` combines them into one score in [0, 1] (1 = same answer).
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Any

_PUNCT = str.maketrans({c: " " for c in string.punctuation + "“”‘’«»…–—"})
_WS = re.compile(r"\s+")
_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?```$", re.DOTALL)


@dataclass(frozen=True)
class Agreement:
    """How far a candidate answer agrees with a reference (stable) answer.

    Attributes:
        exact: the normalised texts are equal.
        reference_is_json: the reference answer parses as a JSON object or array.
        json_valid: the candidate parses as JSON (None when the reference is not JSON).
        same_keys: both are JSON objects with the same top-level keys (None when not applicable).
        json_equal: both parse to equal JSON values (None when the reference is not JSON).
        length_ratio: len(candidate) / len(reference) in characters (1.0 when both are empty).
        token_f1: F1 overlap of the normalised words, in [0, 1].
        score: the combined score in [0, 1].
    """

    exact: bool
    reference_is_json: bool
    json_valid: bool | None
    same_keys: bool | None
    json_equal: bool | None
    length_ratio: float
    token_f1: float
    score: float


def normalise(text: str) -> str:
    """Case-fold, drop punctuation, collapse whitespace: ``"  Hello,  World! "`` → ``"hello world"``."""
    folded = unicodedata.normalize("NFKC", text).casefold().translate(_PUNCT)
    return _WS.sub(" ", folded).strip()


def parse_json(text: str) -> tuple[bool, Any]:
    """Parse an answer as a JSON object or array, tolerating a Markdown code fence around it.

    Returns:
        ``(True, value)`` when it parses to a dict or list, else ``(False, None)``.
    """
    stripped = text.strip()
    fence = _FENCE.match(stripped)
    if fence:
        stripped = fence.group(1).strip()
    if not stripped or stripped[0] not in "[{":
        return False, None
    try:
        value = json.loads(stripped)
    except ValueError:
        return False, None
    if isinstance(value, dict | list):
        return True, value
    return False, None


def token_f1(candidate: str, reference: str) -> float:
    """F1 overlap of the normalised word multisets (1.0 when both are empty)."""
    a = normalise(candidate).split()
    b = normalise(reference).split()
    if not a and not b:
        return 1.0
    if not a or not b:
        return 0.0
    common = sum((Counter(a) & Counter(b)).values())
    if common == 0:
        return 0.0
    precision = common / len(a)
    recall = common / len(b)
    return 2 * precision * recall / (precision + recall)


def length_ratio(candidate: str, reference: str) -> float:
    """``len(candidate) / len(reference)`` after stripping; 1.0 when both are empty, inf when only
    the reference is."""
    c, r = len(candidate.strip()), len(reference.strip())
    if r == 0:
        return 1.0 if c == 0 else float("inf")
    return c / r


def _length_similarity(ratio: float) -> float:
    if ratio == float("inf") or ratio <= 0:
        return 0.0
    return min(ratio, 1 / ratio)


def score_agreement(candidate: str, reference: str) -> Agreement:
    """Score a candidate answer against a reference (the stable version's answer).

    When the reference is JSON, the combined score is 1.0 for equal JSON values, 0.0 for a candidate
    that is not JSON, and otherwise ``0.5·key Jaccard + 0.5·token F1``.
    For plain text it is 1.0 for a normalised exact match, else
    ``0.8·token F1 + 0.2·min(ratio, 1/ratio)`` of the lengths.

    Args:
        candidate: the answer being judged.
        reference: the answer taken as right (stable answer or expected answer).

    Returns:
        An :class:`Agreement` with every component and the combined ``score``.
    """
    exact = normalise(candidate) == normalise(reference)
    ratio = length_ratio(candidate, reference)
    f1 = token_f1(candidate, reference)
    ref_json, ref_value = parse_json(reference)
    if ref_json:
        cand_json, cand_value = parse_json(candidate)
        json_equal = cand_json and cand_value == ref_value
        same_keys: bool | None = None
        jaccard = 1.0 if cand_json and type(cand_value) is type(ref_value) else 0.0
        if isinstance(ref_value, dict):
            if isinstance(cand_value, dict):
                ka, kb = set(cand_value), set(ref_value)
                same_keys = ka == kb
                jaccard = len(ka & kb) / len(ka | kb) if ka | kb else 1.0
            else:
                same_keys = False
        if json_equal:
            score = 1.0
        elif not cand_json:
            score = 0.0
        else:
            score = 0.5 * jaccard + 0.5 * f1
        return Agreement(exact, True, cand_json, same_keys, json_equal, ratio, f1, _clip(score))
    score = 1.0 if exact else 0.8 * f1 + 0.2 * _length_similarity(ratio)
    return Agreement(exact, False, None, None, None, ratio, f1, _clip(score))


def agreement_score(candidate: str, reference: str) -> float:
    """The combined score of :func:`score_agreement` alone, in [0, 1]."""
    return score_agreement(candidate, reference).score


def exact_match(answer: str, expected: str) -> bool:
    """Normalised exact match of an answer against an expected answer."""
    return normalise(answer) == normalise(expected)


def contains_match(answer: str, expected: str) -> bool:
    """The normalised expected answer occurs in the normalised answer (word-aligned)."""
    exp = normalise(expected)
    if not exp:
        return True
    return f" {exp} " in f" {normalise(answer)} "


def json_match(answer: str, expected: str) -> bool:
    """Both parse as JSON (objects/arrays, code fences tolerated) and are equal as values."""
    ok_a, value_a = parse_json(answer)
    ok_e, value_e = parse_json(expected)
    return ok_a and ok_e and value_a == value_e


def _clip(x: float) -> float:
    return max(0.0, min(1.0, x))


__all__ = [
    "Agreement",
    "agreement_score",
    "contains_match",
    "exact_match",
    "json_match",
    "length_ratio",
    "normalise",
    "parse_json",
    "score_agreement",
    "token_f1",
]
