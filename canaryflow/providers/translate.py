"""OpenAI Chat Completions ⇄ Anthropic Messages, both ways: requests, responses, streams, finish reasons.

So an OpenAI-format request can be served by an Anthropic config and the reverse. The writers of each
API's JSON live in :mod:`canaryflow.providers.wire` (re-exported here); finish reasons map as
``stop ⇄ end_turn``, ``length ⇄ max_tokens``, ``content_filter ⇄ refusal``, ``tool_calls ⇄ tool_use``.
"""

from __future__ import annotations

import time
from typing import Any

from canaryflow.errors import ValidationFailed
from canaryflow.providers.base import ChatResult
from canaryflow.providers.wire import (
    anthropic_delta_event,
    anthropic_end_events,
    anthropic_message,
    anthropic_start_events,
    new_id,
    openai_chunk,
    openai_completion,
    to_anthropic_stop,
    to_openai_finish,
)

DEFAULT_ANTHROPIC_MAX_TOKENS = 1024
_SHARED = ("temperature", "top_p")


def content_text(content: Any) -> str:
    """The text of a message ``content``: a string, or a list of text blocks (other blocks ignored)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(b.get("text", "")) for b in content
                       if isinstance(b, dict) and b.get("type", "text") in ("text", "input_text"))
    raise ValidationFailed("message content must be a string or a list of content blocks", source="messages")


# ── requests ───────────────────────────────────────────────────────────────────────────────────────────

def split_system(messages: list[dict[str, str]]) -> tuple[str | None, list[dict[str, str]]]:
    """Anthropic form: system messages joined into one ``system`` string, the rest in order."""
    system = [m["content"] for m in messages if m.get("role") in ("system", "developer")]
    rest = [{"role": m["role"], "content": m["content"]} for m in messages
            if m.get("role") not in ("system", "developer")]
    return ("\n\n".join(system) if system else None), rest


def openai_messages(body: dict[str, Any]) -> list[dict[str, str]]:
    """Plain ``{role, content}`` messages from an OpenAI request body."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValidationFailed("'messages' must be a non-empty list", source="messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            raise ValidationFailed(f"messages[{i}] needs a 'role' and a 'content'", source="messages")
        role = "system" if m["role"] == "developer" else str(m["role"])
        out.append({"role": role, "content": content_text(m.get("content"))})
    return out


def anthropic_messages(body: dict[str, Any]) -> list[dict[str, str]]:
    """Plain ``{role, content}`` messages (system first) from an Anthropic request body."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValidationFailed("'messages' must be a non-empty list", source="messages")
    out: list[dict[str, str]] = []
    system = content_text(body.get("system"))
    if system:
        out.append({"role": "system", "content": system})
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            raise ValidationFailed(f"messages[{i}] needs a 'role' and a 'content'", source="messages")
        out.append({"role": str(m["role"]), "content": content_text(m.get("content"))})
    return out


def _stop_list(value: Any, field: str) -> list[str]:
    """A stop string or list of strings as a list (ValidationFailed naming ``field`` otherwise)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValidationFailed(f"'{field}' must be a string or a list of strings", source=field)


def openai_parameters(body: dict[str, Any]) -> dict[str, Any]:
    """Config-style parameters from an OpenAI request body."""
    params: dict[str, Any] = {k: body[k] for k in (*_SHARED, "presence_penalty", "frequency_penalty", "seed")
                              if body.get(k) is not None}
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    stop = body.get("stop")
    if stop is not None:
        params["stop"] = _stop_list(stop, "stop")
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("text", "json_object"):
        params["response_format"] = fmt["type"]
    return params


def anthropic_parameters(body: dict[str, Any]) -> dict[str, Any]:
    """Config-style parameters from an Anthropic request body."""
    params: dict[str, Any] = {k: body[k] for k in _SHARED if body.get(k) is not None}
    if body.get("max_tokens") is not None:
        params["max_tokens"] = body["max_tokens"]
    if body.get("stop_sequences"):
        params["stop"] = _stop_list(body["stop_sequences"], "stop_sequences")
    return params


def anthropic_kwargs(parameters: dict[str, Any]) -> dict[str, Any]:
    """Config parameters as ``messages.create`` keyword arguments (``max_tokens`` is required there)."""
    kwargs: dict[str, Any] = {k: parameters[k] for k in _SHARED if parameters.get(k) is not None}
    kwargs["max_tokens"] = int(parameters.get("max_tokens") or DEFAULT_ANTHROPIC_MAX_TOKENS)
    if parameters.get("stop"):
        stop = parameters["stop"]
        kwargs["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    return kwargs


def openai_request_to_anthropic(body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI Chat Completions request body as an Anthropic Messages request body."""
    system, rest = split_system(openai_messages(body))
    out: dict[str, Any] = {"model": body.get("model"), "messages": rest,
                           **anthropic_kwargs(openai_parameters(body))}
    if system is not None:
        out["system"] = system
    if body.get("stream"):
        out["stream"] = True
    return out


def anthropic_request_to_openai(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages request body as an OpenAI Chat Completions request body."""
    params = anthropic_parameters(body)
    out: dict[str, Any] = {"model": body.get("model"), "messages": anthropic_messages(body)}
    out.update({k: params[k] for k in _SHARED if k in params})
    if "max_tokens" in params:
        out["max_completion_tokens"] = params["max_tokens"]
    if "stop" in params:
        out["stop"] = params["stop"]
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out




# ── responses ──────────────────────────────────────────────────────────────────────────────────────────

def result_from_openai(resp: dict[str, Any], *, provider: str = "openai") -> ChatResult:
    """A :class:`ChatResult` from an OpenAI ``chat.completion`` object."""
    choice = (resp.get("choices") or [{}])[0]
    usage = resp.get("usage") or {}
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return ChatResult(text=content_text((choice.get("message") or {}).get("content")),
                      finish_reason=choice.get("finish_reason") or "stop",
                      input_tokens=int(usage.get("prompt_tokens") or 0),
                      output_tokens=int(usage.get("completion_tokens") or 0),
                      cached_input_tokens=int(cached), provider=provider, model=str(resp.get("model", "")),
                      response_id=resp.get("id"))


def result_from_anthropic(resp: dict[str, Any], *, provider: str = "anthropic") -> ChatResult:
    """A :class:`ChatResult` from an Anthropic ``message`` object."""
    usage = resp.get("usage") or {}
    cached = int(usage.get("cache_read_input_tokens") or 0)
    created = int(usage.get("cache_creation_input_tokens") or 0)
    return ChatResult(text=content_text(resp.get("content")),
                      finish_reason=to_openai_finish(resp.get("stop_reason")),
                      input_tokens=int(usage.get("input_tokens") or 0) + cached + created,
                      output_tokens=int(usage.get("output_tokens") or 0), cached_input_tokens=cached,
                      provider=provider, model=str(resp.get("model", "")), response_id=resp.get("id"))


def openai_response_to_anthropic(resp: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object as an Anthropic ``message`` object."""
    return anthropic_message(result_from_openai(resp), response_id=new_id("msg_"))


def anthropic_response_to_openai(resp: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic ``message`` object as an OpenAI ``chat.completion`` object."""
    return openai_completion(result_from_anthropic(resp), response_id=new_id("chatcmpl-"))


# ── streams ────────────────────────────────────────────────────────────────────────────────────────────

class OpenAIStreamToAnthropic:
    """Feed OpenAI ``chat.completion.chunk`` dicts, get Anthropic stream events back.

    Send the request with ``stream_options.include_usage`` so the last chunk carries the usage; the closing
    events are emitted once both the finish reason and the usage are known (or at :meth:`close`).
    """

    def __init__(self) -> None:
        self._started = False
        self._finish: str | None = None
        self._done = False
        self._model = ""
        self._id = new_id("msg_")

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """Events for one chunk."""
        events: list[dict[str, Any]] = []
        self._model = chunk.get("model") or self._model
        usage = chunk.get("usage")
        if not self._started and (chunk.get("choices") or usage):
            self._started = True
            prompt = int((usage or {}).get("prompt_tokens") or 0)
            events += anthropic_start_events(self._id, self._model, prompt)
        for choice in chunk.get("choices") or []:
            text = (choice.get("delta") or {}).get("content")
            if text:
                events.append(anthropic_delta_event(text))
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        if usage and not self._done:
            events += self._end(result_from_openai({"choices": [{"finish_reason": self._finish}],
                                                    "usage": usage, "model": self._model}))
        return events

    def close(self) -> list[dict[str, Any]]:
        """Closing events if the stream ended without a usage chunk."""
        if self._done or not self._started:
            return []
        return self._end(ChatResult("", self._finish or "stop", 0, 0, 0, "openai", self._model, None))

    def _end(self, result: ChatResult) -> list[dict[str, Any]]:
        self._done = True
        return anthropic_end_events(result)


class AnthropicStreamToOpenAI:
    """Feed Anthropic stream events (dicts), get OpenAI ``chat.completion.chunk`` dicts back."""

    def __init__(self, *, include_usage: bool = True) -> None:
        self.include_usage = include_usage
        self._id = new_id("chatcmpl-")
        self._created = int(time.time())
        self._model = ""
        self._input = 0
        self._cached = 0

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Chunks for one event."""
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self._model = message.get("model") or ""
            usage = message.get("usage") or {}
            self._cached = int(usage.get("cache_read_input_tokens") or 0)
            self._input = (int(usage.get("input_tokens") or 0) + self._cached
                           + int(usage.get("cache_creation_input_tokens") or 0))
            return [self._chunk(text="", role=True)]
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [self._chunk(text=delta["text"])]
            return []
        if kind == "message_delta":
            finish = to_openai_finish((event.get("delta") or {}).get("stop_reason"))
            out = [self._chunk(finish_reason=finish)]
            delta_usage = event.get("usage") or {}
            if delta_usage.get("input_tokens") is not None:  # cumulative totals override message_start
                self._cached = int(delta_usage.get("cache_read_input_tokens") or self._cached)
                self._input = (int(delta_usage["input_tokens"]) + self._cached
                               + int(delta_usage.get("cache_creation_input_tokens") or 0))
            if self.include_usage:
                output = int(delta_usage.get("output_tokens") or 0)
                usage = ChatResult("", finish, self._input, output, self._cached, "anthropic", self._model,
                                   None)
                out.append(openai_chunk(self._id, self._model, self._created, usage=usage))
            return out
        return []

    def _chunk(self, *, text: str | None = None, role: bool = False,
               finish_reason: str | None = None) -> dict[str, Any]:
        return openai_chunk(self._id, self._model, self._created, text=text, role=role,
                            finish_reason=finish_reason, include_usage=self.include_usage)


__all__ = [
    "DEFAULT_ANTHROPIC_MAX_TOKENS", "AnthropicStreamToOpenAI", "OpenAIStreamToAnthropic",
    "anthropic_kwargs", "anthropic_messages", "anthropic_parameters", "anthropic_request_to_openai",
    "anthropic_response_to_openai",
    "content_text", "openai_messages", "openai_parameters", "openai_request_to_anthropic",
    "openai_response_to_anthropic", "result_from_anthropic", "result_from_openai", "split_system",
    "to_anthropic_stop", "to_openai_finish",
]
