"""The simulator's answers in each API's exact JSON: Chat Completions objects and chunks, Anthropic messages
and stream events, Responses objects and stream events — text, tool calls and usage.

Shapes follow the official clients' models (``openai.types.chat``, ``openai.types.responses``,
``anthropic.types``): tool-call chunks carry ``index``/``id``/``type``/``function`` on the first delta and
``function.arguments`` pieces after; Anthropic streams a ``tool_use`` block as ``content_block_start`` then
``input_json_delta`` events; Responses streams ``response.output_item.added`` →
``response.function_call_arguments.delta`` … ``.done`` → ``response.output_item.done``.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from canaryflow.sim.engine import Outcome, ToolCall

_TO_ANTHROPIC = {"stop": "end_turn", "length": "max_tokens", "content_filter": "refusal",
                 "tool_calls": "tool_use"}


def _hex(n: int = 24) -> str:
    return uuid.uuid4().hex[:n]


def _arg_pieces(arguments: str, size: int = 12) -> list[str]:
    return [arguments[i:i + size] for i in range(0, len(arguments), size)] or [""]


# ── Chat Completions ───────────────────────────────────────────────────────────────────────────────────

def chat_usage(out: Outcome) -> dict[str, Any]:
    """The ``usage`` object."""
    return {"prompt_tokens": out.input_tokens, "completion_tokens": out.output_tokens,
            "total_tokens": out.input_tokens + out.output_tokens,
            "prompt_tokens_details": {"cached_tokens": out.cached_input_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


def _chat_tool_calls(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls]


def chat_completion(out: Outcome, model: str, rid: str, n: int = 1) -> dict[str, Any]:
    """A ``chat.completion`` object (``n`` identical choices)."""
    message: dict[str, Any] = {"role": "assistant", "content": out.text if not out.tool_calls else None,
                               "refusal": None, "annotations": []}
    if out.tool_calls:
        message["tool_calls"] = _chat_tool_calls(out.tool_calls)
    choices = [{"index": i, "message": message, "logprobs": None, "finish_reason": out.finish_reason}
               for i in range(n)]
    return {"id": rid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": choices, "usage": chat_usage(out), "service_tier": "default",
            "system_fingerprint": None}


def chat_chunks(out: Outcome, model: str, rid: str, include_usage: bool,
                n: int = 1) -> Iterator[dict[str, Any] | None]:
    """Every ``chat.completion.chunk`` of the stream (each delta for choices ``0..n-1``); ``None`` marks
    where text pieces are paced."""
    created = int(time.time())
    base: dict[str, Any] = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                            "service_tier": "default", "system_fingerprint": None}
    extra = {"usage": None} if include_usage else {}

    def chunks(delta: dict[str, Any], finish: str | None = None) -> Iterator[dict[str, Any]]:
        for index in range(n):
            yield {**base, "choices": [{"index": index, "delta": delta, "logprobs": None,
                                        "finish_reason": finish}], **extra}

    if out.tool_calls:
        yield from chunks({"role": "assistant", "content": None, "refusal": None})
        for i, call in enumerate(out.tool_calls):
            yield from chunks({"tool_calls": [{"index": i, "id": call.id, "type": "function",
                                               "function": {"name": call.name, "arguments": ""}}]})
            for piece in _arg_pieces(call.arguments):
                yield None
                yield from chunks({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
    else:
        yield from chunks({"role": "assistant", "content": "", "refusal": None})
        for piece in out.pieces:
            yield None
            yield from chunks({"content": piece})
    yield from chunks({}, out.finish_reason)
    if include_usage:
        yield {**base, "choices": [], "usage": chat_usage(out)}


# ── Anthropic Messages ─────────────────────────────────────────────────────────────────────────────────

def anthropic_usage(out: Outcome) -> dict[str, Any]:
    """The ``usage`` object (``input_tokens`` excludes cache reads there)."""
    return {"input_tokens": out.input_tokens - out.cached_input_tokens, "output_tokens": out.output_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": out.cached_input_tokens,
            "service_tier": "standard"}


THINKING = "Let me think about what is asked."


def _signature(rid: str) -> str:
    return hashlib.sha256(rid.encode()).hexdigest()


def anthropic_message(out: Outcome, model: str, rid: str, *, thinking: bool = False) -> dict[str, Any]:
    """A ``message`` object: text, or ``tool_use`` blocks (after a signed thinking block, with thinking)."""
    content: list[dict[str, Any]] = [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.input()}
                                     for c in out.tool_calls]
    if not out.tool_calls:
        content = [{"type": "text", "text": out.text}]
    if thinking:
        content.insert(0, {"type": "thinking", "thinking": THINKING, "signature": _signature(rid)})
    return {"id": rid, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": _TO_ANTHROPIC.get(out.finish_reason, "end_turn"), "stop_sequence": None,
            "usage": anthropic_usage(out)}


def anthropic_events(out: Outcome, model: str, rid: str, *, thinking: bool = False
                     ) -> Iterator[dict[str, Any] | None]:
    """Every event of the stream; ``None`` marks where pieces are paced (``error_at`` is the caller's)."""
    start_usage = {**anthropic_usage(out), "output_tokens": 1}
    yield {"type": "message_start", "message": {"id": rid, "type": "message", "role": "assistant",
                                                "model": model, "content": [], "stop_reason": None,
                                                "stop_sequence": None, "usage": start_usage}}
    at = 0
    if thinking:
        yield {"type": "content_block_start", "index": 0,
               "content_block": {"type": "thinking", "thinking": "", "signature": ""}}
        yield {"type": "content_block_delta", "index": 0,
               "delta": {"type": "thinking_delta", "thinking": THINKING}}
        yield {"type": "content_block_delta", "index": 0,
               "delta": {"type": "signature_delta", "signature": _signature(rid)}}
        yield {"type": "content_block_stop", "index": 0}
        at = 1
    if out.tool_calls:
        for n, call in enumerate(out.tool_calls):
            i = n + at
            yield {"type": "content_block_start", "index": i,
                   "content_block": {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}}
            if n == 0:
                yield {"type": "ping"}
            for piece in _arg_pieces(call.arguments):
                yield None
                yield {"type": "content_block_delta", "index": i,
                       "delta": {"type": "input_json_delta", "partial_json": piece}}
            yield {"type": "content_block_stop", "index": i}
    else:
        yield {"type": "content_block_start", "index": at, "content_block": {"type": "text", "text": ""}}
        yield {"type": "ping"}
        for piece in out.pieces:
            yield None
            yield {"type": "content_block_delta", "index": at, "delta": {"type": "text_delta", "text": piece}}
        yield {"type": "content_block_stop", "index": at}
    yield {"type": "message_delta",
           "delta": {"stop_reason": _TO_ANTHROPIC.get(out.finish_reason, "end_turn"), "stop_sequence": None},
           "usage": {"output_tokens": out.output_tokens,
                     "input_tokens": out.input_tokens - out.cached_input_tokens,
                     "cache_creation_input_tokens": 0, "cache_read_input_tokens": out.cached_input_tokens}}
    yield {"type": "message_stop"}


# ── Responses ──────────────────────────────────────────────────────────────────────────────────────────

def responses_usage(out: Outcome) -> dict[str, Any]:
    """The Responses ``usage`` object."""
    return {"input_tokens": out.input_tokens,
            "input_tokens_details": {"cached_tokens": out.cached_input_tokens},
            "output_tokens": out.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": out.input_tokens + out.output_tokens}


def _items(out: Outcome, status: str) -> list[dict[str, Any]]:
    if out.tool_calls:
        return [{"id": f"fc_{_hex()}", "type": "function_call", "status": status, "call_id": c.id,
                 "name": c.name, "arguments": c.arguments} for c in out.tool_calls]
    return [{"id": f"msg_{_hex()}", "type": "message", "status": status, "role": "assistant",
             "content": [{"type": "output_text", "text": out.text, "annotations": [], "logprobs": []}]}]


def response_object(out: Outcome, model: str, rid: str, echo: dict[str, Any], *,
                    status: str = "completed", output: list[dict[str, Any]] | None = None,
                    created: float | None = None) -> dict[str, Any]:
    """A ``response`` object; ``status`` ``incomplete`` when the answer hit ``max_output_tokens``."""
    incomplete = status == "completed" and out.finish_reason == "length"
    final = "incomplete" if incomplete else status
    text = echo.get("text") or {"format": {"type": "text"}}
    return {
        "id": rid, "object": "response", "created_at": created or int(time.time()), "status": final,
        "background": False, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": echo.get("instructions"), "max_output_tokens": echo.get("max_output_tokens"),
        "max_tool_calls": None, "model": model,
        "output": _items(out, "completed") if output is None else output,
        "parallel_tool_calls": echo.get("parallel_tool_calls", True) is not False,
        "previous_response_id": echo.get("previous_response_id"),
        "reasoning": echo.get("reasoning") or {"effort": None, "summary": None},
        "service_tier": "default", "store": echo.get("store", True) is not False,
        "temperature": echo.get("temperature") if echo.get("temperature") is not None else 1.0,
        "text": text, "tool_choice": echo.get("tool_choice") or "auto", "tools": echo.get("tools") or [],
        "top_logprobs": 0, "top_p": echo.get("top_p") if echo.get("top_p") is not None else 1.0,
        "truncation": "disabled", "usage": responses_usage(out) if status != "in_progress" else None,
        "user": echo.get("user"), "metadata": echo.get("metadata") or {},
    }


def response_events(out: Outcome, model: str, rid: str,
                    echo: dict[str, Any]) -> Iterator[dict[str, Any] | None]:
    """The Responses stream (``sequence_number`` added by the caller); ``None`` marks pacing points."""
    created = int(time.time())
    opening = response_object(out, model, rid, echo, status="in_progress", output=[], created=created)
    yield {"type": "response.created", "response": opening}
    yield {"type": "response.in_progress", "response": opening}
    done_items = _items(out, "completed")
    for index, item in enumerate(done_items):
        if item["type"] == "function_call":
            yield {"type": "response.output_item.added", "output_index": index,
                   "item": {**item, "status": "in_progress", "arguments": ""}}
            for piece in _arg_pieces(item["arguments"]):
                yield None
                yield {"type": "response.function_call_arguments.delta", "item_id": item["id"],
                       "output_index": index, "delta": piece}
            yield {"type": "response.function_call_arguments.done", "item_id": item["id"],
                   "output_index": index, "name": item["name"], "arguments": item["arguments"]}
        else:
            yield {"type": "response.output_item.added", "output_index": index,
                   "item": {**item, "status": "in_progress", "content": []}}
            empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            yield {"type": "response.content_part.added", "item_id": item["id"], "output_index": index,
                   "content_index": 0, "part": empty}
            for piece in out.pieces:
                yield None
                yield {"type": "response.output_text.delta", "item_id": item["id"], "output_index": index,
                       "content_index": 0, "delta": piece, "logprobs": []}
            yield {"type": "response.output_text.done", "item_id": item["id"], "output_index": index,
                   "content_index": 0, "text": out.text, "logprobs": []}
            yield {"type": "response.content_part.done", "item_id": item["id"], "output_index": index,
                   "content_index": 0, "part": item["content"][0]}
        yield {"type": "response.output_item.done", "output_index": index, "item": item}
    final = response_object(out, model, rid, echo, output=done_items, created=created)
    yield {"type": "response.incomplete" if final["status"] == "incomplete" else "response.completed",
           "response": final}


def sse_data(obj: dict[str, Any]) -> str:
    """``data: {...}`` (Chat Completions)."""
    return f"data: {json.dumps(obj, separators=(',', ':'))}\n\n"


def sse_event(obj: dict[str, Any]) -> str:
    """``event: TYPE`` + ``data: {...}`` (Anthropic, Responses)."""
    return f"event: {obj['type']}\ndata: {json.dumps(obj, separators=(',', ':'))}\n\n"


__all__ = ["anthropic_events", "anthropic_message", "anthropic_usage", "chat_chunks", "chat_completion",
           "chat_usage", "response_events", "response_object", "responses_usage", "sse_data", "sse_event"]
