"""Answers across APIs, both ways: content, tool calls, thinking, stop reasons, usage."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from canaryflow.domain.crossapi.common import TO_ANTHROPIC_STOP, TO_OPENAI_FINISH, _text_of, tool_call_of


def _loads(raw: Any) -> Any:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except (TypeError, ValueError):
        return {"arguments": raw}
    return value if isinstance(value, dict) else {"arguments": value}


def _stop_sequence(choice: Mapping[str, Any], finish: Any) -> str | None:
    """The stop sequence an answer ended at, where the server says (vLLM's ``stop_reason``: the matched
    string; OpenAI does not say, so its answers end ``end_turn``)."""
    matched = choice.get("stop_reason")
    return matched if finish == "stop" and isinstance(matched, str) and matched else None


def openai_answer_to_anthropic(resp: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` as an Anthropic ``message`` (the first choice: ``n`` is refused)."""
    choice = (resp.get("choices") or [{}])[0] or {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("reasoning_content"):
        content.append({"type": "thinking", "thinking": message["reasoning_content"], "signature": ""})
    text = message.get("content")
    if text:
        content.append({"type": "text", "text": text if isinstance(text, str) else _text_of(text)})
    if message.get("refusal"):
        content.append({"type": "text", "text": message["refusal"]})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": fn.get("name"),
                "input": _loads(fn.get("arguments")),
            }
        )
    finish = "content_filter" if message.get("refusal") else choice.get("finish_reason")
    if message.get("tool_calls") and finish in (None, "stop"):
        finish = "tool_calls"  # OpenAI-compatible servers (Ollama, some vLLM) answer tool calls with "stop"
    matched = _stop_sequence(choice, finish)
    usage = resp.get("usage") or {}
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return {
        "id": f"msg_{resp.get('id', '')}",
        "type": "message",
        "role": "assistant",
        "model": resp.get("model"),
        "content": content,
        "stop_reason": "stop_sequence" if matched else TO_ANTHROPIC_STOP.get(finish or "stop", "end_turn"),
        "stop_sequence": matched,
        "usage": {
            "input_tokens": int(usage.get("prompt_tokens") or 0) - cached,
            "output_tokens": int(usage.get("completion_tokens") or 0),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached,
        },
    }


def _openai_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    cached = int(usage.get("cache_read_input_tokens") or 0)
    created = int(usage.get("cache_creation_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cached + created
    out = int(usage.get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": out,
        "total_tokens": prompt + out,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def anthropic_answer_to_openai(resp: Mapping[str, Any]) -> dict[str, Any]:
    """An Anthropic ``message`` as an OpenAI ``chat.completion``."""
    texts: list[str] = []
    thinking: list[str] = []
    blocks: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in resp.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            calls.append(tool_call_of(block))
        elif kind in ("thinking", "redacted_thinking"):
            blocks.append(dict(block))
            if kind == "thinking":
                thinking.append(str(block.get("thinking", "")))
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    if blocks:
        message["reasoning_content"] = "".join(thinking)
        message["thinking_blocks"] = blocks
    rid = str(resp.get("id", ""))
    return {
        "id": rid if rid.startswith("chatcmpl") else f"chatcmpl-{rid}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": resp.get("model"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": TO_OPENAI_FINISH.get(str(resp.get("stop_reason")), "stop"),
            }
        ],
        "usage": _openai_usage(resp.get("usage") or {}),
    }
