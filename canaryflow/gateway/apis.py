"""``POST /v1/chat/completions`` (OpenAI) and ``POST /v1/messages`` (Anthropic), plain and streaming.

``model`` names the config. The config's rendered messages come first, the caller's messages after; the
config's parameters apply (a caller's ``max_tokens`` can only lower the config's; parameters the config does
not set pass through). Responses carry ``X-Canaryflow-Version``, ``-Variation``, ``-Request-Id``,
``-Fallback`` (and ``-Fallback-Index``/``-Fallback-Reason`` when a fallback served); JSON bodies also get a
``canaryflow`` object with the same facts.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from canaryflow.errors import CanaryflowError
from canaryflow.gateway.protocol import (
    Api,
    caller_context,
    config_key,
    error_response,
    read_json,
    serving_headers,
)
from canaryflow.providers import translate, wire
from canaryflow.providers.base import ChatResult
from canaryflow.serving.traffic import Completion, Stream, TrafficPlane

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _facts(c: Completion | Stream) -> dict[str, Any]:
    return {"request_id": c.request_id, "config": c.config_key, "version": c.version,
            "variation": c.variation, "fallback": c.fallback_index is not None}


async def _serve(plane: TrafficPlane, request: Request, api: Api) -> Response:
    try:
        body = await read_json(request)
        key = config_key(body)
        if api == "openai":
            messages = translate.openai_messages(body)
            params = translate.openai_parameters(body)
            ctx = caller_context(body, request.headers, fallback_user=body.get("user"))
        else:
            messages = translate.anthropic_messages(body)
            params = translate.anthropic_parameters(body)
            meta = body.get("metadata")
            ctx = caller_context(body, request.headers,
                                 fallback_user=meta.get("user_id") if isinstance(meta, dict) else None)
        res = await plane.aprepare(key, context=ctx.context(), variables=ctx.variables, parameters=params)
        if body.get("stream"):
            stream = await plane.astream(res, messages, variables=ctx.variables)
            headers = serving_headers(stream.request_id, stream.version, stream.variation,
                                      stream.fallback_index, stream.fallback_reason)
            headers.update(_SSE_HEADERS)
            if api == "openai":
                opts = body.get("stream_options")
                usage = bool(isinstance(opts, dict) and opts.get("include_usage"))
                gen = _openai_sse(stream, key, usage)
            else:
                gen = _anthropic_sse(stream, key)
            return StreamingResponse(gen, media_type="text/event-stream", headers=headers)
        done = await plane.acomplete(res, messages, variables=ctx.variables)
    except CanaryflowError as exc:
        return error_response(api, exc)
    headers = serving_headers(done.request_id, done.version, done.variation, done.fallback_index,
                              done.fallback_reason, f"{done.provider}/{done.model}")
    result = ChatResult(done.text, done.finish_reason, done.input_tokens, done.output_tokens,
                        done.cached_input_tokens, done.provider, done.model, None)
    if api == "openai":
        payload = wire.openai_completion(result, model=key, response_id=f"chatcmpl-{done.request_id}")
    else:
        payload = wire.anthropic_message(result, model=key, response_id=f"msg_{done.request_id}")
    payload["canaryflow"] = _facts(done)
    return JSONResponse(payload, headers=headers)


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return (f"event: {event}\ndata: {text}\n\n" if event else f"data: {text}\n\n").encode()


async def _openai_sse(stream: Stream, model: str, include_usage: bool) -> AsyncIterator[bytes]:
    rid = f"chatcmpl-{stream.request_id}"
    created = int(time.time())
    yield _sse(wire.openai_chunk(rid, model, created, text="", role=True, include_usage=include_usage))
    finish = "stop"
    try:
        async for chunk in stream:
            if chunk.text:
                yield _sse(wire.openai_chunk(rid, model, created, text=chunk.text,
                                             include_usage=include_usage))
            finish = chunk.finish_reason or finish
    except CanaryflowError as exc:  # mid-stream failure: the status is sent already; end with an error event
        yield _sse({"error": {"message": str(exc), "type": "upstream_error", "param": None,
                              "code": getattr(exc, "error_type", None)}})
        return
    done = stream.completion
    yield _sse(wire.openai_chunk(rid, model, created, finish_reason=finish, include_usage=include_usage))
    if include_usage and done is not None:
        usage = ChatResult("", finish, done.input_tokens, done.output_tokens, done.cached_input_tokens,
                           done.provider, done.model, None)
        yield _sse(wire.openai_chunk(rid, model, created, usage=usage))
    yield b"data: [DONE]\n\n"


async def _anthropic_sse(stream: Stream, model: str) -> AsyncIterator[bytes]:
    rid = f"msg_{stream.request_id}"
    started = False
    try:
        async for chunk in stream:
            if not started:
                started = True
                for event in wire.anthropic_start_events(rid, model, 0):
                    yield _sse(event, event["type"])
            if chunk.text:
                event = wire.anthropic_delta_event(chunk.text)
                yield _sse(event, event["type"])
    except CanaryflowError as exc:
        yield _sse({"type": "error", "error": {"type": "api_error", "message": str(exc)}}, "error")
        return
    done = stream.completion
    if not started:
        for event in wire.anthropic_start_events(rid, model, 0):
            yield _sse(event, event["type"])
    final = ChatResult("", done.finish_reason if done else "stop", done.input_tokens if done else 0,
                       done.output_tokens if done else 0, done.cached_input_tokens if done else 0,
                       done.provider if done else "", model, None)
    for event in wire.anthropic_end_events(final):
        yield _sse(event, event["type"])


async def chat_completions(plane: TrafficPlane, request: Request) -> Response:
    """``POST /v1/chat/completions``."""
    return await _serve(plane, request, "openai")


async def messages(plane: TrafficPlane, request: Request) -> Response:
    """``POST /v1/messages``."""
    return await _serve(plane, request, "anthropic")


__all__ = ["chat_completions", "messages"]
