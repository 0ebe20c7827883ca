"""Anthropic Messages adapter over ``anthropic.AsyncAnthropic`` (any Anthropic-compatible endpoint).

System messages move to the ``system`` field; ``max_tokens`` (required by the API) defaults to
:data:`~canaryflow.providers.translate.DEFAULT_ANTHROPIC_MAX_TOKENS`. Stop reasons come back as OpenAI
finish reasons. The client is built with ``max_retries=0``: retries belong to :mod:`fallback`.

A plain message goes through the client's ``post`` (it builds, authenticates and sends the request and
raises its typed errors) with the JSON body as given and the JSON answer read as is, skipping the
parameter transform and the pydantic models; streams use ``messages.create(stream=True)``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2

from canaryflow.providers.base import ChatRequest, ChatResult, StreamChunk
from canaryflow.providers.errors import map_error
from canaryflow.providers.raw import metered_stream, result_of
from canaryflow.providers.translate import anthropic_kwargs, split_system, to_openai_finish


def _request_kwargs(req: ChatRequest) -> dict[str, Any]:
    """``messages.create`` arguments; sampling parameters the client no longer names go in ``extra_body``."""
    system, messages = split_system(req.messages)
    body = anthropic_kwargs(req.parameters)
    extra = {k: body.pop(k) for k in ("temperature", "top_p") if k in body}
    kwargs: dict[str, Any] = {"model": req.model, "messages": messages, **body}
    if system:
        kwargs["system"] = system
    if extra:
        kwargs["extra_body"] = extra
    return kwargs


def _options(headers: dict[str, str], timeout: float) -> Any:
    """The client's request options: the timeout, and the caller's API headers (``anthropic-beta``, ...)."""
    return {"timeout": timeout, "headers": headers} if headers else {"timeout": timeout}


def _usage(usage: Any) -> tuple[int, int, int]:
    """(input incl. cache, output, cache reads) from an Anthropic usage object."""
    if usage is None:
        return 0, 0, 0
    cached = int(getattr(usage, "cache_read_input_tokens", 0) or 0)
    created = int(getattr(usage, "cache_creation_input_tokens", 0) or 0)
    inp = int(getattr(usage, "input_tokens", 0) or 0) + cached + created
    return inp, int(getattr(usage, "output_tokens", 0) or 0), cached


def _raw_usage(usage: Any) -> tuple[int, int, int]:
    """:func:`_usage` for the JSON usage object."""
    if not isinstance(usage, dict):
        return 0, 0, 0
    cached = int(usage.get("cache_read_input_tokens") or 0)
    created = int(usage.get("cache_creation_input_tokens") or 0)
    inp = int(usage.get("input_tokens") or 0) + cached + created
    return inp, int(usage.get("output_tokens") or 0), cached


class AnthropicProvider:
    """Messages through the official ``anthropic`` client."""

    name = "anthropic"
    api = "anthropic"  # the API it speaks (messages), whatever the endpoint is called

    def __init__(self, client: anthropic.AsyncAnthropic, *, name: str = "anthropic"):
        self.client = client
        self.name = name  # the endpoint's name: what results, metrics and prices are labelled with

    async def complete(self, req: ChatRequest, *, timeout: float) -> ChatResult:
        """One non-streaming message (``req.body`` as is, when given)."""
        if req.body is not None:
            try:
                raw = await self.client.post("/v1/messages", body=req.body, cast_to=httpx2.Response,
                                             options=_options(req.headers, timeout))
                data = json.loads(raw.content)
            except Exception as exc:
                raise map_error(exc, provider=self.name, model=req.model) from exc
            return result_of(self.name, req, data, raw.content, raw.headers.get("request-id"))
        body = _request_kwargs(req)
        body.update(body.pop("extra_body", None) or {})
        try:
            raw = await self.client.post("/v1/messages", body=body, cast_to=httpx2.Response,
                                         options={"timeout": timeout})
            data = json.loads(raw.content)
            text = "".join(str(block.get("text") or "") for block in data.get("content") or ()
                           if isinstance(block, dict) and block.get("type") == "text")
            inp, out, cached = _raw_usage(data.get("usage"))
            return ChatResult(text=text, finish_reason=to_openai_finish(data.get("stop_reason")),
                              input_tokens=inp, output_tokens=out, cached_input_tokens=cached,
                              provider=self.name, model=str(data.get("model") or req.model),
                              response_id=data.get("id"))
        except Exception as exc:
            raise map_error(exc, provider=self.name, model=req.model) from exc

    async def count_tokens(self, body: dict[str, Any], headers: dict[str, str], *, timeout: float
                           ) -> bytes:
        """``POST /v1/messages/count_tokens`` with ``body`` as is; the provider's JSON answer as received."""
        try:
            raw = await self.client.post("/v1/messages/count_tokens", body=body, cast_to=httpx2.Response,
                                         options=_options(headers, timeout))
        except Exception as exc:
            raise map_error(exc, provider=self.name, model=str(body.get("model") or "")) from exc
        return bytes(raw.content)

    async def stream(self, req: ChatRequest, *, timeout: float) -> AsyncIterator[StreamChunk]:
        """Stream a message; the last chunk carries the finish reason and the usage (whole text).

        With ``req.body`` each chunk carries the provider's event as received."""
        if req.body is not None:
            try:
                events = await self.client.post("/v1/messages", body=req.body, cast_to=object, stream=True,
                                                stream_cls=anthropic.AsyncStream[object],
                                                options=_options(req.headers, timeout))
                async for chunk in metered_stream(self.name, req, events.__aiter__(),
                                                  events.response.headers.get("request-id")):
                    yield chunk
            except Exception as exc:
                raise map_error(exc, provider=self.name, model=req.model) from exc
            return
        parts: list[str] = []
        inp = out = cached = 0
        stop_reason: str | None = None
        response_id: str | None = None
        model = req.model
        try:
            stream = await self.client.messages.create(**_request_kwargs(req), stream=True, timeout=timeout)
            async with stream:
                async for event in stream:
                    if event.type == "message_start":
                        response_id = event.message.id
                        model = event.message.model or model
                        inp, out, cached = _usage(event.message.usage)
                    elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                        if event.delta.text:
                            parts.append(event.delta.text)
                            yield StreamChunk(text=event.delta.text)
                    elif event.type == "message_delta":
                        stop_reason = event.delta.stop_reason
                        usage = event.usage
                        out = int(usage.output_tokens or 0)
                        if usage.input_tokens is not None:
                            inp, _, cached = _usage(usage)
        except Exception as exc:
            raise map_error(exc, provider=self.name, model=req.model) from exc
        result = ChatResult(text="".join(parts), finish_reason=to_openai_finish(stop_reason),
                            input_tokens=inp, output_tokens=out, cached_input_tokens=cached,
                            provider=self.name, model=model,
                            response_id=response_id)
        yield StreamChunk(text="", finish_reason=result.finish_reason, usage=result)


__all__ = ["AnthropicProvider"]
