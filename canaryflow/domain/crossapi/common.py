"""Shared by both directions of :mod:`canaryflow.domain.crossapi`: the stop-reason maps, the refusal of a
field with no counterpart (unless the config drops it), small value checks."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from canaryflow.domain.errors import ValidationFailed

THINKING_BUDGET = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096}
TO_ANTHROPIC_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "content_filter": "refusal",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
}
TO_OPENAI_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "refusal": "content_filter",
    "tool_use": "tool_calls",
    "model_context_window_exceeded": "length",
}
DEFAULT_MAX_TOKENS = 1024


class Untranslatable(ValidationFailed):
    """A request field with no counterpart in the provider's API (a 400 naming the field and why)."""


def _refuse(field: str, why: str, drop: Collection[str]) -> None:
    """Refuse ``field`` unless ``drop`` lists it: its top-level name, its whole path, or its own name (the
    last part of the path: ``is_error`` for every ``messages[i].content[j].is_error``)."""
    if field.split("[")[0].split(".")[0] in drop or field in drop or field.rsplit(".", 1)[-1] in drop:
        return
    raise Untranslatable(
        f"{why}; it cannot be carried to the config's provider and is refused rather than "
        f"dropped (a config may list it in its drop fields)",
        source=field,
    )


def _str_list(value: Any, field: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValidationFailed("must be a string or a list of strings", source=field)


def _absent(value: Any, neutral: tuple[Any, ...] = ()) -> bool:
    return value is None or any(value is n or (value == n and type(value) is type(n)) for n in neutral)


def _text_of(blocks: Any) -> str:
    """The text of Anthropic content: a string, or its text blocks joined."""
    if isinstance(blocks, str):
        return blocks
    return "".join(
        str(b.get("text", "")) for b in blocks or [] if isinstance(b, dict) and b.get("type") == "text"
    )


def tool_call_of(block: Mapping[str, Any]) -> dict[str, Any]:
    """An Anthropic ``tool_use`` block as an OpenAI Chat tool call (arguments as a JSON string)."""
    return {"id": block.get("id"), "type": "function",
            "function": {"name": block.get("name"),
                         "arguments": json.dumps(block.get("input") or {}, ensure_ascii=False)}}
