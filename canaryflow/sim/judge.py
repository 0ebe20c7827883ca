"""The simulator's judge profile: grade answers to the built-in questions against their known answers.

See :mod:`canaryflow.sim` (judge requests) for the rules. Draws come from the request's seeded
``random.Random`` in a fixed order (one Gaussian), so a grade repeats for the same seed and request.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any

from canaryflow.domain.judging import JudgePrompt
from canaryflow.sim.profiles import ModelProfile
from canaryflow.sim.questions import find_question, is_correct
from canaryflow.sim.schema import example

_UNKNOWN = 0.5


def _rightness(question: str, answer: str) -> float:
    """1 for the known answer, 0 for another, 0.5 when the question is not a known one."""
    correct = is_correct(question, answer)
    return _UNKNOWN if correct is None else float(correct)


def _expected(question: str) -> str:
    known = find_question(question)
    return f"the known answer is {known.answer}" if known is not None else "no known answer"


def _word(right: float) -> str:
    return "right" if right == 1 else "wrong" if right == 0 else "unknown"


def _spell(prop: Any, value: str) -> str:
    """``value`` as the schema's enum spells it (case-insensitive), else as is."""
    if isinstance(prop, Mapping) and isinstance(prop.get("enum"), list):
        for choice in prop["enum"]:
            if isinstance(choice, str) and choice.lower() == value.lower():
                return choice
    return value


def grade(profile: ModelProfile, rng: random.Random, prompt: JudgePrompt,
          schema: Mapping[str, Any] | None) -> str:
    """The judge's JSON answer to one judge request."""
    noise = rng.gauss(0.0, 1.0) * profile.judge_noise
    props: Mapping[str, Any] = {}
    if schema is not None and isinstance(schema.get("properties"), Mapping):
        props = schema["properties"]
    fields: dict[str, Any]
    if prompt.pairwise:
        a, b = (_rightness(prompt.question, x) for x in prompt.answers)
        preference = a - b + profile.judge_bias + noise
        band = profile.judge_tie_band
        winner = "A" if preference > band else "B" if preference < -band else "tie"
        reason = f"{_expected(prompt.question)}; A {_word(a)}, B {_word(b)}"
        fields = {"winner": _spell(props.get("winner"), winner), "reason": reason}
    else:
        right = _rightness(prompt.question, prompt.answers[0])
        score = min(1.0, max(0.0, right + noise))
        found = props.get("score")
        prop: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        low, high = float(prop.get("minimum", 0.0)), float(prop.get("maximum", 1.0))
        scaled: float = low + score * (high - low)
        value: float | int = round(scaled) if prop.get("type") == "integer" else round(scaled, 3)
        label = "correct" if score >= 0.5 else "incorrect"
        verdict = "gives it" if right == 1 else "does not give it" if right == 0 else "cannot be checked"
        fields = {"score": value, "label": _spell(props.get("label"), label),
                  "reason": f"{_expected(prompt.question)}; the answer {verdict}"}
    if schema is None:
        return json.dumps(fields)
    out = example(schema, rng)
    if not isinstance(out, dict):
        out = {}
    for name, val in fields.items():
        if name in props or not props:
            out[name] = val
    return json.dumps(out)


__all__ = ["grade"]
