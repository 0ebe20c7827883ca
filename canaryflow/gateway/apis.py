"""``POST /v1/chat/completions``, ``/v1/responses`` (OpenAI) and ``/v1/messages`` (Anthropic), plain and
streamed: pass-through, then apply the config.

``model`` names the config. The caller's body travels whole: the provider receives it with only the
config's decisions applied (:mod:`canaryflow.domain.passthrough`; translated first when the config's
provider speaks the other API, :mod:`canaryflow.domain.crossapi`), and the caller receives the provider's
answer — JSON or stream events — unchanged (translated back across APIs), plus the ``X-Canaryflow-Version``,
``-Variation``, ``-Request-Id``, ``-Fallback`` (``-Fallback-Index``/``-Fallback-Reason`` when a fallback
served) and ``-Served-By`` headers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from canaryflow.domain.passthrough import Api
from canaryflow.domain.requests import check_request, plain_messages
from canaryflow.errors import CanaryflowError
from canaryflow.gateway.protocol import caller_context, error_response, read_json, serving_headers
from canaryflow.providers.base import CallerRequest
from canaryflow.serving.traffic import Stream, TrafficPlane

log = logging.getLogger("canaryflow.gateway")
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _user_of(api: str, body: dict[str, Any]) -> Any:
    if api == "messages":
        meta = body.get("metadata")
        return meta.get("user_id") if isinstance(meta, dict) else None
    return body.get("user") or body.get("safety_identifier")


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


async def _serve(plane: TrafficPlane, request: Request, api: Api) -> Response:
    shape: Literal["openai", "anthropic"] = "anthropic" if api == "messages" else "openai"
    try:
        body = await read_json(request)
        key = check_request(api, body)
        ctx = caller_context(body, request.headers, fallback_user=_user_of(api, body))
        res = await plane.aprepare(key, context=ctx.context(), variables=ctx.variables)
        caller = CallerRequest(api, body)
        text = plain_messages(api, body)
        if body.get("stream") is True:
            stream = await plane.astream(res, text, variables=ctx.variables, request=caller)
            headers = serving_headers(stream.request_id, stream.version, stream.variation,
                                      stream.fallback_index, stream.fallback_reason)
            headers.update(_SSE_HEADERS)
            return StreamingResponse(_sse(stream, api), media_type="text/event-stream", headers=headers)
        done = await plane.acomplete(res, text, variables=ctx.variables, request=caller)
    except CanaryflowError as exc:
        log.info("refused %s request: %s", request.url.path, type(exc).__name__)
        return error_response(shape, exc)
    headers = serving_headers(done.request_id, done.version, done.variation, done.fallback_index,
                              done.fallback_reason, f"{done.provider}/{done.model}")
    content = done.response_bytes if done.response_bytes is not None else _dumps(done.response)
    return Response(content, media_type="application/json", headers=headers)


async def _sse(stream: Stream, api: Api) -> AsyncIterator[bytes]:
    named = api != "chat"  # Anthropic and Responses events carry an ``event:`` line
    try:
        async for chunk in stream:
            for event in chunk.events:
                data = _dumps(event)
                yield (b"event: " + str(event.get("type", "")).encode() + b"\ndata: " + data + b"\n\n"
                       if named else b"data: " + data + b"\n\n")
    except CanaryflowError as exc:  # mid-stream failure: the status is sent already; end with an error event
        if api == "messages":
            err = {"type": "error", "error": {"type": "api_error", "message": str(exc)}}
            yield b"event: error\ndata: " + _dumps(err) + b"\n\n"
        elif api == "responses":
            failed: dict[str, Any] = {"type": "error", "code": getattr(exc, "error_type", None),
                                      "message": str(exc), "param": None}
            yield b"event: error\ndata: " + _dumps(failed) + b"\n\n"
        else:
            err = {"error": {"message": str(exc), "type": "upstream_error", "param": None,
                             "code": getattr(exc, "error_type", None)}}
            yield b"data: " + _dumps(err) + b"\n\n"
        return
    if api == "chat":
        yield b"data: [DONE]\n\n"


async def chat_completions(plane: TrafficPlane, request: Request) -> Response:
    """``POST /v1/chat/completions``."""
    return await _serve(plane, request, "chat")


async def responses(plane: TrafficPlane, request: Request) -> Response:
    """``POST /v1/responses``."""
    return await _serve(plane, request, "responses")


async def messages(plane: TrafficPlane, request: Request) -> Response:
    """``POST /v1/messages``."""
    return await _serve(plane, request, "messages")


__all__ = ["chat_completions", "messages", "responses"]
