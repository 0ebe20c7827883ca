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

import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from canaryflow.domain import fastjson
from canaryflow.domain.passthrough import Api, Decisions
from canaryflow.domain.requests import check_request, plain_messages
from canaryflow.domain.resolution import Resolution
from canaryflow.domain.shaping import API_HEADERS, shape_count_tokens
from canaryflow.errors import CanaryflowError
from canaryflow.gateway.protocol import (
    caller_context,
    canaryflow_headers,
    error_response,
    json_response_head,
    parse_json,
    read_json,
    receive_body,
    serving_headers,
)
from canaryflow.providers.base import CallerRequest
from canaryflow.serving.traffic import Completion, Stream, TrafficPlane

log = logging.getLogger("canaryflow.gateway")
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _user_of(api: str, body: dict[str, Any]) -> Any:
    if api == "messages":
        meta = body.get("metadata")
        return meta.get("user_id") if isinstance(meta, dict) else None
    return body.get("user") or body.get("safety_identifier")


_API_HEADER_NAMES = {api: frozenset(n.encode("latin-1") for n in names) for api, names in API_HEADERS.items()}


def _api_headers(scope: Scope, api: str) -> dict[str, str]:
    """The request headers of ``scope`` that are ``api``'s own (:data:`API_HEADERS`), names lower-cased."""
    wanted = _API_HEADER_NAMES.get(api)
    if not wanted:
        return {}
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]
            if name.lower() in wanted}


def _provider_id_header(api: str) -> str:
    """Where the provider's request id goes: the header the caller's SDK reads it from."""
    return "request-id" if api == "messages" else "x-request-id"


def _served(res: Resolution) -> dict[str, str]:
    return {"x-canaryflow-version": str(res.version), "x-canaryflow-variation": res.variation}


def _error_headers(res: Resolution, exc: CanaryflowError) -> dict[str, str]:
    """What an error after resolution says of the request: the version and variation it was served for and,
    when a provider call ended it, its request id."""
    headers = _served(res)
    request_id = getattr(exc, "request_id", None)
    if request_id:
        headers["x-canaryflow-request-id"] = request_id
    return headers


def _dumps(data: Any) -> bytes:
    return fastjson.dumps(data)


class Endpoint:
    """The ASGI app of one API's POST endpoint (``chat``, ``responses`` or ``messages``), called by the
    router or, for its path, directly by the gateway app (:mod:`canaryflow.gateway.app`): it reads the
    body and headers from the ASGI messages and sends the answer itself, without a Starlette
    ``Request``/``Response`` per request."""

    __slots__ = ("api", "plane", "shape")

    def __init__(self, plane: TrafficPlane, api: Api) -> None:
        self.plane = plane
        self.api = api
        self.shape: Literal["openai", "anthropic"] = "anthropic" if api == "messages" else "openai"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plane, api = self.plane, self.api
        response: Response | None = None  # a stream or an error; None: the completion ``done``
        done: Completion | None = None
        res: Resolution | None = None
        try:
            body = parse_json(await receive_body(scope, receive))
            key = check_request(api, body)
            ctx = caller_context(body, canaryflow_headers(scope), fallback_user=_user_of(api, body))
            res = await plane.aprepare(key, context=ctx.context(), variables=ctx.variables)
            caller = CallerRequest(api, body, _api_headers(scope, api))
            text = plain_messages(api, body)
            if body.get("stream") is True:
                stream = await plane.astream(res, text, variables=ctx.variables, request=caller)
                headers = serving_headers(stream.request_id, stream.version, stream.variation,
                                          stream.fallback_index, stream.fallback_reason, stream.served_by)
                headers.update(_SSE_HEADERS)
                if stream.provider_request_id:
                    headers[_provider_id_header(api)] = stream.provider_request_id
                response = StreamingResponse(_sse(stream, api), media_type="text/event-stream",
                                             headers=headers)
            else:
                done = await plane.acomplete(res, text, variables=ctx.variables, request=caller)
        except CanaryflowError as exc:
            log.info("refused %s request: %s", scope.get("root_path", "") + scope["path"], type(exc).__name__)
            response = error_response(self.shape, exc, None if res is None else _error_headers(res, exc))
        if response is not None:
            await response(scope, receive, send)
            return
        assert done is not None  # the try ends with a response or a completion
        content = done.response_bytes if done.response_bytes is not None else _dumps(done.response)
        head = json_response_head(content, done.request_id, done.version, done.variation, done.fallback_index,
                                  done.fallback_reason, f"{done.provider}/{done.model}")
        if done.provider_request_id:  # the provider's id, under the name the caller's SDK reads
            head.append((_provider_id_header(api).encode(),
                         done.provider_request_id.encode("latin-1", "replace")))
        await send({"type": "http.response.start", "status": 200, "headers": head})
        await send({"type": "http.response.body", "body": content})


async def count_tokens(plane: TrafficPlane, request: Request) -> Response:
    """``POST /v1/messages/count_tokens``: the input tokens the config's provider counts for this message with
    the config applied (:func:`~canaryflow.domain.shaping.shape_count_tokens`), its answer unchanged plus
    ``X-Canaryflow-Version``/``-Variation``; a config whose provider speaks the OpenAI API is a 400."""
    try:
        body = await read_json(request)
        key = check_request("messages", body)
        ctx = caller_context(body, request.headers, fallback_user=_user_of("messages", body))
        res = await plane.aprepare(key, context=ctx.context(), variables=ctx.variables)
        provider: Any = plane.runner.provider_factory(res.provider)
        decisions = Decisions(res.model, res.messages, res.parameters, res.tools, res.tool_choice,
                              res.response_format)
        out = shape_count_tokens(body, decisions, str(getattr(provider, "api", provider.name)))
        headers = _api_headers(request.scope, "messages")
        content = await provider.count_tokens(out, headers, timeout=plane.timeout)
    except CanaryflowError as exc:
        return error_response("anthropic", exc)
    return Response(content, media_type="application/json", headers=_served(res))


_ANTHROPIC_ERROR_TYPES = {"rate_limit": "rate_limit_error", "timeout": "timeout_error",
                          "bad_request": "invalid_request_error", "content_filter": "invalid_request_error",
                          "auth": "authentication_error"}


def _anthropic_stream_error(exc: CanaryflowError) -> str:
    """The Anthropic error type of a mid-stream failure (what the caller's retry logic reads):
    ``overloaded_error`` when the provider said it was overloaded, else by the error's type."""
    kind = str(getattr(exc, "error_type", "") or "")
    if kind == "server_error" and "overloaded" in str(exc).lower():
        return "overloaded_error"
    return _ANTHROPIC_ERROR_TYPES.get(kind, "api_error")


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
            err = {"type": "error", "error": {"type": _anthropic_stream_error(exc), "message": str(exc)}}
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


__all__ = ["Endpoint", "count_tokens"]
