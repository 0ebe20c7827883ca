"""Writers of each API's JSON: OpenAI ``chat.completion`` objects and chunks, Anthropic messages and
stream events, and the finish-reason maps between them. The gateway and the simulator both write with these.

Finish reasons (OpenAI ⇄ Anthropic)::

    stop            ⇄ end_turn (stop_sequence, pause_turn → stop)
    length          ⇄ max_tokens
    content_filter  ⇄ refusal
    tool_calls      ⇄ tool_use
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from canaryflow.providers.base import ChatResult

TO_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "content_filter": "refusal",
                     "tool_calls": "tool_use", "function_call": "tool_use"}
TO_OPENAI_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
                    "max_tokens": "length", "refusal": "content_filter", "tool_use": "tool_calls",
                    "model_context_window_exceeded": "length"}


def to_anthropic_stop(finish_reason: str | None) -> str:
    """OpenAI ``finish_reason`` → Anthropic ``stop_reason``."""
    return TO_ANTHROPIC_STOP.get(finish_reason or "stop", "end_turn")


def to_openai_finish(stop_reason: str | None) -> str:
    """Anthropic ``stop_reason`` → OpenAI ``finish_reason``."""
    return TO_OPENAI_FINISH.get(stop_reason or "end_turn", "stop")


# ── responses ──────────────────────────────────────────────────────────────────────────

def new_id(prefix: str) -> str:
    """A fresh response id such as ``chatcmpl-…`` or ``msg_…``."""
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def openai_usage(r: ChatResult) -> dict[str, Any]:
    """The OpenAI ``usage`` object of a result."""
    return {"prompt_tokens": r.input_tokens, "completion_tokens": r.output_tokens,
            "total_tokens": r.input_tokens + r.output_tokens,
            "prompt_tokens_details": {"cached_tokens": r.cached_input_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


def anthropic_usage(r: ChatResult) -> dict[str, Any]:
    """The Anthropic ``usage`` object of a result (``input_tokens`` excludes cache reads there)."""
    return {"input_tokens": r.input_tokens - r.cached_input_tokens, "output_tokens": r.output_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": r.cached_input_tokens}


def openai_completion(r: ChatResult, *, model: str | None = None, response_id: str | None = None,
                      created: int | None = None) -> dict[str, Any]:
    """A ``chat.completion`` object for a result."""
    return {"id": response_id or r.response_id or new_id("chatcmpl-"), "object": "chat.completion",
            "created": created or int(time.time()), "model": model or r.model, "system_fingerprint": None,
            "choices": [{"index": 0, "logprobs": None, "finish_reason": r.finish_reason,
                         "message": {"role": "assistant", "content": r.text, "refusal": None}}],
            "usage": openai_usage(r)}


def openai_chunk(response_id: str, model: str, created: int, *, text: str | None = None,
                 role: bool = False, finish_reason: str | None = None,
                 usage: ChatResult | None = None, include_usage: bool = False) -> dict[str, Any]:
    """One ``chat.completion.chunk``; with ``usage`` it is the final usage-only chunk (no choices)."""
    chunk: dict[str, Any] = {"id": response_id, "object": "chat.completion.chunk", "created": created,
                             "model": model, "system_fingerprint": None}
    if usage is not None:
        chunk["choices"] = []
        chunk["usage"] = openai_usage(usage)
        return chunk
    delta: dict[str, Any] = {}
    if role:
        delta["role"] = "assistant"
    if text is not None:
        delta["content"] = text
    chunk["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
    if include_usage:
        chunk["usage"] = None
    return chunk


def anthropic_message(r: ChatResult, *, model: str | None = None,
                      response_id: str | None = None) -> dict[str, Any]:
    """A Messages API ``message`` object for a result."""
    stop = to_anthropic_stop(r.finish_reason)
    return {"id": response_id or r.response_id or new_id("msg_"), "type": "message", "role": "assistant",
            "model": model or r.model, "content": [{"type": "text", "text": r.text}],
            "stop_reason": stop, "stop_sequence": None, "usage": anthropic_usage(r)}


def anthropic_start_events(response_id: str, model: str, input_tokens: int,
                           cached_input_tokens: int = 0) -> list[dict[str, Any]]:
    """``message_start``, ``content_block_start`` and ``ping``: what opens an Anthropic stream."""
    usage = {"input_tokens": input_tokens - cached_input_tokens, "output_tokens": 1,
             "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached_input_tokens}
    return [
        {"type": "message_start", "message": {"id": response_id, "type": "message", "role": "assistant",
                                              "model": model, "content": [], "stop_reason": None,
                                              "stop_sequence": None, "usage": usage}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]


def anthropic_delta_event(text: str) -> dict[str, Any]:
    """One ``content_block_delta`` carrying ``text``."""
    return {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}


def anthropic_end_events(r: ChatResult) -> list[dict[str, Any]]:
    """``content_block_stop``, ``message_delta`` (stop reason, usage) and ``message_stop``."""
    return [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": to_anthropic_stop(r.finish_reason),
                                            "stop_sequence": None},
         "usage": {"output_tokens": r.output_tokens, "input_tokens": r.input_tokens - r.cached_input_tokens,
                   "cache_read_input_tokens": r.cached_input_tokens}},
        {"type": "message_stop"},
    ]


def anthropic_stream_events(r: ChatResult, pieces: list[str], *,
                            response_id: str | None = None) -> Iterator[dict[str, Any]]:
    """The whole Anthropic event sequence for a result streamed as ``pieces``."""
    rid = response_id or r.response_id or new_id("msg_")
    yield from anthropic_start_events(rid, r.model, r.input_tokens, r.cached_input_tokens)
    for piece in pieces:
        yield anthropic_delta_event(piece)
    yield from anthropic_end_events(r)


__all__ = [
    "TO_ANTHROPIC_STOP", "TO_OPENAI_FINISH", "anthropic_delta_event", "anthropic_end_events",
    "anthropic_message", "anthropic_start_events", "anthropic_stream_events", "anthropic_usage", "new_id",
    "openai_chunk", "openai_completion", "openai_usage", "to_anthropic_stop", "to_openai_finish",
]
