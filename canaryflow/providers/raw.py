"""What the adapters share for pass-through requests: the answer as received, and what metering reads.

An adapter sends ``ChatRequest.body`` as is and hands back the provider's JSON (``ChatResult.raw``) or its
stream events (``StreamChunk.events``); :func:`result_of` and :func:`metered_stream` read the usage, finish
reason, text and tool calls from them (:mod:`canaryflow.domain.answers`) without changing them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from canaryflow.domain.answers import Meter, StreamMeter, check_tool_call, declared_tools, meter
from canaryflow.providers.base import ChatRequest, ChatResult, StreamChunk


def _result(provider: str, req: ChatRequest, m: Meter, raw: dict[str, Any] | None,
            raw_bytes: bytes | None = None, request_id: str | None = None) -> ChatResult:
    tools = declared_tools(req.api, req.body or {}) or {}
    checked = tuple(check_tool_call(c, tools) for c in m.tool_calls)
    return ChatResult(text=m.text, finish_reason=m.finish_reason, input_tokens=m.input_tokens,
                      output_tokens=m.output_tokens, cached_input_tokens=m.cached_input_tokens,
                      provider=provider, model=m.model or req.model, response_id=m.response_id, raw=raw,
                      reasoning_tokens=m.reasoning_tokens, tool_calls=tuple(m.tool_calls),
                      tool_call_results=checked, raw_bytes=raw_bytes, provider_request_id=request_id)


def result_of(provider: str, req: ChatRequest, data: Any, content: bytes | None = None,
              request_id: str | None = None) -> ChatResult:
    """The :class:`ChatResult` of a whole answer ``data`` (kept as ``raw``, and as ``raw_bytes`` when
    ``content`` is the JSON it was read from; ``request_id``: the provider's id of the request)."""
    raw = data if isinstance(data, dict) else {"value": data}
    return _result(provider, req, meter(req.api, raw), raw, content if raw is data else None, request_id)


def delta_text(api: str, event: Mapping[str, Any]) -> str:
    """The text an event adds (for the streamed text pieces)."""
    if api == "messages":
        delta = event.get("delta") or {}
        return str(delta.get("text", "")) if delta.get("type") == "text_delta" else ""
    if api == "responses":
        return str(event.get("delta", "")) if event.get("type") == "response.output_text.delta" else ""
    for choice in event.get("choices") or []:
        content = (choice.get("delta") or {}).get("content")
        if choice.get("index", 0) == 0 and isinstance(content, str):
            return content
    return ""


async def metered_stream(provider: str, req: ChatRequest, events: AsyncIterator[Any],
                         request_id: str | None = None) -> AsyncIterator[StreamChunk]:
    """One chunk per event (the event kept whole; the first with the provider's ``request_id``), then a
    last chunk with the finish reason and usage."""
    acc = StreamMeter(req.api)
    async for event in events:
        if not isinstance(event, dict):
            continue
        acc.feed(event)
        yield StreamChunk(text=delta_text(req.api, event), events=(event,), provider_request_id=request_id)
        request_id = None
    result = _result(provider, req, acc.result(), None)
    yield StreamChunk(text="", finish_reason=result.finish_reason, usage=result)


__all__ = ["delta_text", "metered_stream", "result_of"]
