"""What metering reads from a provider's answer, whole or streamed, per API. Pure.

The answer itself reaches the caller unchanged; this only extracts text (for the traffic log and shadow
agreement), the finish reason (OpenAI vocabulary), usage (input tokens include cached ones; reasoning
tokens where reported) and tool calls, and checks tool calls against the request's tools
(:func:`check_tool_call`: ``valid``, ``invalid_json``, ``schema_mismatch``, ``unknown_tool``) for the
``tool_call_error_rate`` gate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from canaryflow.domain import fastjson
from canaryflow.domain.crossapi import TO_OPENAI_FINISH

TOOL_CALL_RESULTS = ("valid", "invalid_json", "schema_mismatch", "unknown_tool")


@dataclass(frozen=True)
class ToolCall:
    """One tool call of an answer; ``arguments`` as the model wrote them (a JSON string) or parsed."""

    name: str
    arguments: Any


@dataclass
class Meter:
    """The metered facts of one answer."""

    text: str = ""
    finish_reason: str = "stop"
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    tool_calls: list[ToolCall] = field(default_factory=list)
    model: str = ""
    response_id: str | None = None


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _chat_usage(m: Meter, usage: Any) -> None:
    if not isinstance(usage, Mapping):
        return
    m.input_tokens = _int(usage.get("prompt_tokens"))
    m.output_tokens = _int(usage.get("completion_tokens"))
    m.cached_input_tokens = _int((usage.get("prompt_tokens_details") or {}).get("cached_tokens"))
    m.reasoning_tokens = _int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens"))


def _messages_usage(m: Meter, usage: Any) -> None:
    if not isinstance(usage, Mapping):
        return
    cached = _int(usage.get("cache_read_input_tokens"))
    created = _int(usage.get("cache_creation_input_tokens"))
    if usage.get("input_tokens") is not None:
        m.input_tokens = _int(usage.get("input_tokens")) + cached + created
        m.cached_input_tokens = cached
    if usage.get("output_tokens") is not None:
        m.output_tokens = _int(usage.get("output_tokens"))


def _responses_usage(m: Meter, usage: Any) -> None:
    if not isinstance(usage, Mapping):
        return
    m.input_tokens = _int(usage.get("input_tokens"))
    m.output_tokens = _int(usage.get("output_tokens"))
    m.cached_input_tokens = _int((usage.get("input_tokens_details") or {}).get("cached_tokens"))
    m.reasoning_tokens = _int((usage.get("output_tokens_details") or {}).get("reasoning_tokens"))


def _responses_output(m: Meter, output: Any) -> None:
    texts: list[str] = []
    for item in output or []:
        if not isinstance(item, Mapping):
            continue
        if item.get("type") == "message":
            texts += [
                str(c.get("text", ""))
                for c in item.get("content") or []
                if isinstance(c, Mapping) and c.get("type") == "output_text"
            ]
        elif item.get("type") == "function_call":
            m.tool_calls.append(ToolCall(str(item.get("name", "")), item.get("arguments")))
    m.text = "".join(texts)


def _responses_finish(m: Meter, resp: Mapping[str, Any]) -> None:
    status = resp.get("status")
    if status == "incomplete":
        reason = (resp.get("incomplete_details") or {}).get("reason")
        m.finish_reason = "content_filter" if reason == "content_filter" else "length"
    else:
        m.finish_reason = "tool_calls" if m.tool_calls else "stop"


def meter(api: str, resp: Mapping[str, Any]) -> Meter:
    """The metered facts of a whole answer in ``api`` (``chat``, ``messages`` or ``responses``)."""
    m = Meter(model=str(resp.get("model") or ""), response_id=resp.get("id"))
    if api == "messages":
        texts = []
        for block in resp.get("content") or []:
            if not isinstance(block, Mapping):
                continue
            if block.get("type") == "text":
                texts.append(str(block.get("text", "")))
            elif block.get("type") == "tool_use":
                m.tool_calls.append(ToolCall(str(block.get("name", "")), block.get("input")))
        m.text = "".join(texts)
        m.finish_reason = TO_OPENAI_FINISH.get(str(resp.get("stop_reason")), "stop")
        _messages_usage(m, resp.get("usage"))
    elif api == "responses":
        _responses_output(m, resp.get("output"))
        _responses_finish(m, resp)
        _responses_usage(m, resp.get("usage"))
    else:
        choices = [c for c in resp.get("choices") or [] if isinstance(c, Mapping)]
        first = choices[0] if choices else {}
        content = (first.get("message") or {}).get("content")
        m.text = content if isinstance(content, str) else ""
        m.finish_reason = str(first.get("finish_reason") or "stop")
        for choice in choices:
            for call in (choice.get("message") or {}).get("tool_calls") or []:
                fn = call.get("function") or {} if isinstance(call, Mapping) else {}
                m.tool_calls.append(ToolCall(str(fn.get("name", "")), fn.get("arguments")))
        _chat_usage(m, resp.get("usage"))
    return m


class StreamMeter:
    """Feed a stream's events (parsed SSE data, in the provider's API); :attr:`meter` holds the facts."""

    def __init__(self, api: str) -> None:
        self.api = api
        self.meter = Meter()
        self._texts: list[str] = []
        self._calls: dict[int, list[Any]] = {}  # index → [name, argument pieces]

    def feed(self, event: Mapping[str, Any]) -> None:
        """Account for one event."""
        m = self.meter
        if self.api == "messages":
            kind = event.get("type")
            if kind == "message_start":
                message = event.get("message") or {}
                m.model = str(message.get("model") or "")
                m.response_id = message.get("id")
                _messages_usage(m, message.get("usage"))
            elif kind == "content_block_start":
                block = event.get("content_block") or {}
                if block.get("type") == "tool_use":
                    self._calls[_int(event.get("index"))] = [str(block.get("name", "")), []]
            elif kind == "content_block_delta":
                delta = event.get("delta") or {}
                if delta.get("type") == "text_delta":
                    self._texts.append(str(delta.get("text", "")))
                elif delta.get("type") == "input_json_delta" and _int(event.get("index")) in self._calls:
                    self._calls[_int(event.get("index"))][1].append(str(delta.get("partial_json", "")))
            elif kind == "message_delta":
                m.finish_reason = TO_OPENAI_FINISH.get(
                    str((event.get("delta") or {}).get("stop_reason")), "stop"
                )
                _messages_usage(m, event.get("usage"))
        elif self.api == "responses":
            if event.get("type") in ("response.completed", "response.incomplete", "response.failed"):
                resp = event.get("response") or {}
                done = meter("responses", resp)
                self.meter = done
                return
            if event.get("type") == "response.output_text.delta":
                self._texts.append(str(event.get("delta", "")))
        else:
            m.model = str(event.get("model") or m.model)
            m.response_id = m.response_id or event.get("id")
            for choice in event.get("choices") or []:
                delta = choice.get("delta") or {}
                if choice.get("index", 0) == 0 and isinstance(delta.get("content"), str):
                    self._texts.append(delta["content"])
                for call in delta.get("tool_calls") or []:
                    slot = self._calls.setdefault(
                        _int(choice.get("index")) * 1000 + _int(call.get("index")), ["", []]
                    )
                    fn = call.get("function") or {}
                    if fn.get("name"):
                        slot[0] = str(fn["name"])
                    if fn.get("arguments"):
                        slot[1].append(str(fn["arguments"]))
                if choice.get("finish_reason"):
                    m.finish_reason = str(choice["finish_reason"])
            if event.get("usage"):
                _chat_usage(m, event["usage"])

    def result(self) -> Meter:
        """The facts of the stream so far (call at its end)."""
        m = self.meter
        if self.api != "responses" or not m.text:
            m.text = m.text or "".join(self._texts)
        if self._calls and not m.tool_calls:
            m.tool_calls = [
                ToolCall(name, "".join(parts)) for _, (name, parts) in sorted(self._calls.items())
            ]
        return m


# ── tool calls ─────────────────────────────────────────────────────────────────────────────────────


def declared_tools(api: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The request's function tools as ``{name: JSON schema}`` (None: the request declared no tools)."""
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools:
        return None
    out: dict[str, Any] = {}
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        if api == "chat" and isinstance(tool.get("function"), Mapping):
            fn = tool["function"]
            out[str(fn.get("name"))] = fn.get("parameters")
        elif api == "messages" and tool.get("name"):
            out[str(tool["name"])] = tool.get("input_schema")
        elif api == "responses" and tool.get("type") == "function":
            out[str(tool.get("name"))] = tool.get("parameters")
        elif tool.get("name") or tool.get("type"):
            out[str(tool.get("name") or tool.get("type"))] = None  # a built-in tool: any arguments
    return out


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _matches(value: Any, schema: Any, depth: int = 0) -> bool:
    """A small JSON Schema check: type, enum, const, required, properties, additionalProperties, items."""
    if not isinstance(schema, Mapping) or depth > 32:
        return True
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if isinstance(kind, str) else []
    if kinds:
        ok = any(
            isinstance(value, _TYPES.get(k, (object,)))
            and not (k in ("integer", "number") and isinstance(value, bool))
            for k in kinds
        )
        if not ok:
            return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if "const" in schema and value != schema["const"]:
        return False
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        if any(name not in value for name in schema.get("required") or []):
            return False
        if schema.get("additionalProperties") is False and any(k not in props for k in value):
            return False
        return all(_matches(v, props[k], depth + 1) for k, v in value.items() if k in props)
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return all(_matches(v, schema["items"], depth + 1) for v in value)
    return True


def check_tool_call(call: ToolCall, tools: Mapping[str, Any]) -> str:
    """``valid``, ``invalid_json`` (arguments not a JSON object), ``schema_mismatch`` or ``unknown_tool``."""
    if call.name not in tools:
        return "unknown_tool"
    args = call.arguments
    if isinstance(args, str):
        try:
            args = fastjson.loads(args or "{}")
        except ValueError:
            return "invalid_json"
    if not isinstance(args, dict):
        return "invalid_json"
    return "valid" if _matches(args, tools[call.name]) else "schema_mismatch"


__all__ = [
    "TOOL_CALL_RESULTS",
    "Meter",
    "StreamMeter",
    "ToolCall",
    "check_tool_call",
    "declared_tools",
    "meter",
]
