"""LLM-as-judge: what makes a config usable as a judge, what it is sent, and how its answer is read (pure).

A judge is an ordinary canaryflow config (rubric messages, provider, model, parameters), so changing it is a
new audited version rolled out like any other. To be a judge it **must** declare its output schema::

    key: answer-judge
    provider: openai
    model: gpt-4o-mini
    messages:
      - {role: system, content: "Grade the answer to the question: 1 if right, 0 if wrong."}
    response_format:
      type: json_schema
      name: grade
      schema: {type: object, required: [score],
               properties: {score: {type: number, minimum: 0, maximum: 1}, label: {type: string},
                            reason: {type: string}}}

An absolute judge's schema has a numeric ``score`` property (its ``minimum``/``maximum`` give the scale,
default 0–1; the score is mapped to 0–1); a pairwise judge's has a ``winner`` property (``A``, ``B`` or
``tie``; an ``enum`` may spell them in any case). ``label`` and ``reason`` are read when present.

The judge is sent its own messages, then one user message laid out by :func:`judge_prompt` /
:func:`pairwise_prompt` — the question (the caller's last user message) and the answer(s) between tags —
which :func:`parse_prompt` reads back (the simulator's judge profile uses it).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from canaryflow.domain.config import PLACEHOLDER, ConfigSpec
from canaryflow.domain.errors import CanaryflowError, ValidationFailed

JudgeKind = Literal["judge", "pairwise"]
Winner = Literal["A", "B", "tie"]
#: The property each kind of judge must declare in its output schema.
OUTPUT_FIELD: dict[str, str] = {"judge": "score", "pairwise": "winner"}
MARKER = "[canaryflow:judge]"
PAIRWISE_MARKER = "[canaryflow:judge-pairwise]"
MAX_REASON = 300
_TAGS = re.compile(r"<(question|answer|answer_a|answer_b)>\n?(.*?)\n?</\1>", re.S)


class JudgeOutputInvalid(CanaryflowError):
    """A judge's answer that cannot be read as a verdict (counted as a dropped sample, never as a score)."""


class JudgeDropped(CanaryflowError):
    """A sample not judged, on purpose: ``reason`` is ``budget`` (the evaluator's budget per hour is spent)
    or ``judge_config`` (the judge version served cannot judge). Counted as a drop with that reason."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class Scale:
    """The range of a judge's ``score`` (from its schema's ``minimum`` / ``maximum``)."""

    low: float = 0.0
    high: float = 1.0


@dataclass(frozen=True)
class JudgeVerdict:
    """What one judge call said: ``score`` in 0–1 (absolute judges) or ``winner`` (pairwise)."""

    score: float | None = None
    winner: Winner | None = None
    label: str | None = None
    reason: str = ""


def _properties(spec: ConfigSpec) -> dict[str, Any]:
    fmt = spec.response_format
    schema = fmt.json_schema if fmt is not None else None
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    return dict(props) if isinstance(props, Mapping) else {}


def check_judge(spec: ConfigSpec, kind: JudgeKind, *, field: str = "judge") -> Scale:
    """``spec`` can serve as a judge of ``kind``; returns the score's scale.

    Args:
        spec: the judge config's version.
        kind: ``judge`` (absolute score) or ``pairwise`` (winner A/B/tie).
        field: where the judge was named (for the error message), e.g. ``evaluators[0].judge``.

    Raises:
        ValidationFailed: no ``response_format`` json_schema, no ``score`` / ``winner`` property, or rubric
            messages with placeholders (a judge is sent no variables).
    """
    want = OUTPUT_FIELD[kind]
    where = f"config {spec.key!r} (named in {field})"
    if spec.response_format is None:
        raise ValidationFailed(
            f"{where} has no output schema: a judge config needs response_format {{type: json_schema, name, "
            f"schema}} whose properties include {want!r}", source="response_format")
    props = _properties(spec)
    prop = props.get(want)
    if not isinstance(prop, Mapping):
        raise ValidationFailed(
            f"{where}: response_format.schema.properties has no {want!r}; a {kind} judge answers "
            + ("{score: 0-1, label?, reason?}" if kind == "judge" else "{winner: A|B|tie, reason?}"),
            source=f"response_format.schema.properties.{want}")
    for message in spec.messages:
        if PLACEHOLDER.search(message.content):
            raise ValidationFailed(f"{where}: a judge's messages cannot use {{{{placeholders}}}} (it is sent "
                                   "no variables; the question and answers come in its user message)",
                                   source="messages")
    if kind == "pairwise":
        return Scale()
    if prop.get("type") not in ("number", "integer"):
        raise ValidationFailed(f"{where}: response_format.schema.properties.score must have type number "
                               f"or integer, got {prop.get('type')!r}",
                               source="response_format.schema.properties.score")
    low, high = prop.get("minimum", 0.0), prop.get("maximum", 1.0)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)) or high <= low:
        raise ValidationFailed(f"{where}: score's minimum/maximum must be numbers with minimum < maximum",
                               source="response_format.schema.properties.score")
    return Scale(float(low), float(high))


def _block(tag: str, text: str) -> str:
    return f"<{tag}>\n{text}\n</{tag}>"


def judge_prompt(question: str, answer: str) -> str:
    """The user message an absolute judge gets."""
    return "\n".join([MARKER, "Grade the answer to the question.", _block("question", question),
                      _block("answer", answer)])


def pairwise_prompt(question: str, answer_a: str, answer_b: str) -> str:
    """The user message a pairwise judge gets (answers already in their randomised order)."""
    return "\n".join([PAIRWISE_MARKER, "Which answer to the question is better: A, B, or tie?",
                      _block("question", question), _block("answer_a", answer_a),
                      _block("answer_b", answer_b)])


@dataclass(frozen=True)
class JudgePrompt:
    """A judge request read back: the question and one answer (absolute) or two (pairwise)."""

    question: str
    answers: tuple[str, ...]

    @property
    def pairwise(self) -> bool:
        """Two answers to compare."""
        return len(self.answers) == 2


def parse_prompt(text: str) -> JudgePrompt | None:
    """The judge request in ``text`` (a user message from :func:`judge_prompt` / :func:`pairwise_prompt`),
    or ``None`` when it is none."""
    pairwise = PAIRWISE_MARKER in text
    if not pairwise and MARKER not in text:
        return None
    blocks = {tag: body for tag, body in _TAGS.findall(text)}
    if "question" not in blocks:
        return None
    if pairwise:
        if "answer_a" not in blocks or "answer_b" not in blocks:
            return None
        return JudgePrompt(blocks["question"], (blocks["answer_a"], blocks["answer_b"]))
    if "answer" not in blocks:
        return None
    return JudgePrompt(blocks["question"], (blocks["answer"],))


def _winner(value: Any) -> Winner:
    text = str(value).strip().lower() if isinstance(value, str) else ""
    if text in ("a", "answer a", "answer_a"):
        return "A"
    if text in ("b", "answer b", "answer_b"):
        return "B"
    if text in ("tie", "draw", "equal", "both", "neither", "none"):
        return "tie"
    raise JudgeOutputInvalid(f"winner {value!r} is not A, B or tie")


def parse_verdict(text: str, kind: JudgeKind, scale: Scale = Scale()) -> JudgeVerdict:
    """Read a judge's JSON answer.

    Raises:
        JudgeOutputInvalid: not a JSON object, no ``score`` / ``winner``, or a score outside the scale.
    """
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        raise JudgeOutputInvalid("the judge's answer is not JSON") from exc
    if not isinstance(value, dict):
        raise JudgeOutputInvalid("the judge's answer is not a JSON object")
    reason = value.get("reason")
    reason_text = str(reason)[:MAX_REASON] if reason is not None else ""
    label = value.get("label")
    label_text = str(label)[:64] if label is not None else None
    if kind == "pairwise":
        if "winner" not in value:
            raise JudgeOutputInvalid("the judge's answer has no 'winner'")
        return JudgeVerdict(winner=_winner(value["winner"]), label=label_text, reason=reason_text)
    raw = value.get("score")
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise JudgeOutputInvalid(f"the judge's 'score' is not a number: {raw!r}")
    if not scale.low <= raw <= scale.high:
        raise JudgeOutputInvalid(f"the judge's score {raw:g} is outside {scale.low:g}–{scale.high:g}")
    score = (float(raw) - scale.low) / (scale.high - scale.low)
    return JudgeVerdict(score=score, label=label_text, reason=reason_text)


__all__ = ["MARKER", "MAX_REASON", "OUTPUT_FIELD", "PAIRWISE_MARKER", "JudgeDropped", "JudgeKind",
           "JudgeOutputInvalid",
           "JudgePrompt", "JudgeVerdict", "Scale", "Winner", "check_judge", "judge_prompt", "pairwise_prompt",
           "parse_prompt", "parse_verdict"]
