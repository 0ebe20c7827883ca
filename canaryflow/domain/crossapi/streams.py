"""Stream events across APIs, both ways, one event at a time (stateful translators)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from canaryflow.domain.crossapi.answers import _openai_usage, _stop_sequence
from canaryflow.domain.crossapi.common import TO_ANTHROPIC_STOP, TO_OPENAI_FINISH


class AnthropicEventsToOpenAI:
    """Feed Anthropic stream events, get OpenAI ``chat.completion.chunk`` objects back."""

    def __init__(self, *, include_usage: bool = True) -> None:
        self.include_usage = include_usage
        self._id = "chatcmpl-"
        self._model: Any = None
        self._created = int(time.time())
        self._usage: dict[str, Any] = {}
        self._tools: dict[int, int] = {}  # Anthropic block index → OpenAI tool call index
        self._thinking: dict[int, dict[str, Any]] = {}  # Anthropic block index → the block, as it streams
        self._blocks = 0  # thinking blocks sent

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def feed(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Chunks for one event."""
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self._id = f"chatcmpl-{message.get('id', '')}"
            self._model = message.get("model")
            self._usage = dict(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") in ("thinking", "redacted_thinking"):
                self._thinking[int(event.get("index", 0))] = dict(block)
                return []
            if block.get("type") == "tool_use":
                index = self._tools[int(event.get("index", 0))] = len(self._tools)
                return [
                    self._chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "id": block.get("id"),
                                    "type": "function",
                                    "function": {"name": block.get("name"), "arguments": ""},
                                }
                            ]
                        }
                    )
                ]
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if dtype == "thinking_delta":
                block = self._thinking.get(int(event.get("index", 0)))
                if block is not None:
                    block["thinking"] = str(block.get("thinking") or "") + str(delta.get("thinking", ""))
                return [self._chunk({"reasoning_content": delta.get("thinking", "")})]
            if dtype == "signature_delta":
                block = self._thinking.get(int(event.get("index", 0)))
                if block is not None:
                    block["signature"] = str(block.get("signature") or "") + str(delta.get("signature", ""))
                return []
            if dtype == "input_json_delta":
                index = self._tools.get(int(event.get("index", 0)), 0)
                return [
                    self._chunk(
                        {
                            "tool_calls": [
                                {"index": index, "function": {"arguments": delta.get("partial_json", "")}}
                            ]
                        }
                    )
                ]
            return []
        if kind == "content_block_stop":
            block = self._thinking.pop(int(event.get("index", 0)), None)
            if block is None:
                return []
            self._blocks += 1
            # the whole signed block once, as a plain answer's message.thinking_blocks carries it (indexed,
            # so the openai stream helper accumulates several), to go back in the next turn's history
            return [self._chunk({"thinking_blocks": [{"index": self._blocks - 1, **block}]})]
        if kind == "message_delta":
            self._usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            stop = (event.get("delta") or {}).get("stop_reason")
            out = [self._chunk({}, TO_OPENAI_FINISH.get(str(stop), "stop"))]
            if self.include_usage:
                out.append(
                    {
                        "id": self._id,
                        "object": "chat.completion.chunk",
                        "created": self._created,
                        "model": self._model,
                        "choices": [],
                        "usage": _openai_usage(self._usage),
                    }
                )
            return out
        return []


class OpenAIChunksToAnthropic:
    """Feed OpenAI ``chat.completion.chunk`` objects, get Anthropic stream events back.

    The request must ask for ``stream_options.include_usage`` (so the last chunk carries the usage); the
    closing events are sent with it, or by :meth:`close`.
    """

    def __init__(self) -> None:
        self._started = False
        self._finish: str | None = None
        self._done = False
        self._open: tuple[str, int] | None = None  # ("text" | "tool" | "thinking", OpenAI tool index)
        self._refused = False
        self._called = False  # a tool call was streamed
        self._matched: str | None = None  # the stop sequence the server says the answer ended at
        self._index = -1

    def _stop_finish(self) -> str:
        if self._refused:
            return "content_filter"
        if self._called and self._finish in (None, "stop"):
            return "tool_calls"  # OpenAI-compatible servers (Ollama, some vLLM) end tool calls with "stop"
        return self._finish or "stop"

    def _start(self, chunk: Mapping[str, Any]) -> list[dict[str, Any]]:
        self._started = True
        return [
            {
                "type": "message_start",
                "message": {
                    "id": f"msg_{chunk.get('id', '')}",
                    "type": "message",
                    "role": "assistant",
                    "model": chunk.get("model"),
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                },
            }
        ]

    def _switch(self, kind: str, tool: int, block: dict[str, Any]) -> list[dict[str, Any]]:
        if self._open == (kind, tool):
            return []
        events = self._stop_block()
        self._index += 1
        self._open = (kind, tool)
        return [*events, {"type": "content_block_start", "index": self._index, "content_block": block}]

    def _stop_block(self) -> list[dict[str, Any]]:
        if self._open is None:
            return []
        self._open = None
        return [{"type": "content_block_stop", "index": self._index}]

    def feed(self, chunk: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Events for one chunk."""
        events: list[dict[str, Any]] = [] if self._started else self._start(chunk)
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                events += self._switch("thinking", -1, {"type": "thinking", "thinking": "", "signature": ""})
                events.append(
                    {
                        "type": "content_block_delta",
                        "index": self._index,
                        "delta": {"type": "thinking_delta", "thinking": delta["reasoning_content"]},
                    }
                )
            for key in ("content", "refusal"):  # a refusal is text with stop_reason refusal, as answers
                if not delta.get(key):
                    continue
                self._refused = self._refused or key == "refusal"
                events += self._switch("text", -1, {"type": "text", "text": ""})
                events.append(
                    {
                        "type": "content_block_delta",
                        "index": self._index,
                        "delta": {"type": "text_delta", "text": delta[key]},
                    }
                )
            for call in delta.get("tool_calls") or []:
                fn = call.get("function") or {}
                self._called = True
                events += self._switch(
                    "tool",
                    int(call.get("index", 0)),
                    {"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": {}},
                )
                if fn.get("arguments"):
                    events.append(
                        {
                            "type": "content_block_delta",
                            "index": self._index,
                            "delta": {"type": "input_json_delta", "partial_json": fn["arguments"]},
                        }
                    )
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
                self._matched = _stop_sequence(choice, self._finish)
        usage = chunk.get("usage")
        if usage and not self._done:
            events += self._end(usage)
        return events

    def _end(self, usage: Mapping[str, Any]) -> list[dict[str, Any]]:
        self._done = True
        cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        return [
            *self._stop_block(),
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": "stop_sequence" if self._matched and self._stop_finish() == "stop"
                    else TO_ANTHROPIC_STOP.get(self._stop_finish(), "end_turn"),
                    "stop_sequence": self._matched if self._stop_finish() == "stop" else None,
                },
                "usage": {
                    "input_tokens": int(usage.get("prompt_tokens") or 0) - cached,
                    "output_tokens": int(usage.get("completion_tokens") or 0),
                    "cache_read_input_tokens": cached,
                },
            },
            {"type": "message_stop"},
        ]

    def close(self) -> list[dict[str, Any]]:
        """The closing events if the stream ended without a usage chunk."""
        if self._done:
            return []
        events = [] if self._started else self._start({})
        return [*events, *self._end({})]
