"""The simulator's ASGI app: OpenAI ``/v1/chat/completions`` and Anthropic ``/v1/messages``.

Responses are written with :mod:`canaryflow.providers.wire`, the same writers the gateway uses, and parsed
by the official clients in the tests. Errors come back in each API's own JSON shape. Any non-empty key is
accepted (``Authorization: Bearer …`` or ``x-api-key``); a missing one gets a 401.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from canaryflow.errors import ValidationFailed
from canaryflow.providers.base import ChatResult
from canaryflow.providers.translate import anthropic_messages, openai_messages
from canaryflow.providers.wire import (
    anthropic_delta_event,
    anthropic_end_events,
    anthropic_message,
    anthropic_start_events,
    openai_chunk,
    openai_completion,
)
from canaryflow.sim.engine import Outcome, Simulator
from canaryflow.sim.profiles import ModelProfile

_OPENAI_ERRORS = {400: ("invalid_request_error", None), 401: ("invalid_request_error", "invalid_api_key"),
                  403: ("invalid_request_error", None), 404: ("invalid_request_error", "model_not_found"),
                  429: ("requests", "rate_limit_exceeded"), 500: ("server_error", None),
                  503: ("server_error", None), 504: ("server_error", "timeout")}
_ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                     404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                     500: "api_error", 504: "timeout_error", 529: "overloaded_error"}
_MESSAGES = {400: "Invalid request.", 401: "Missing API key.", 403: "Permission denied.",
             404: "The model does not exist.", 429: "Rate limit reached (simulated). Retry later.",
             500: "The server had an error while processing your request (simulated).",
             504: "The request timed out (simulated).", 529: "Overloaded (simulated)."}
_SSE = "text/event-stream"


def openai_error(status: int, message: str | None = None,
                 headers: dict[str, str] | None = None) -> Response:
    """An error in the OpenAI shape ``{"error": {message, type, param, code}}``."""
    fallback = ("server_error" if status >= 500 else "invalid_request_error", None)
    kind, code = _OPENAI_ERRORS.get(status, fallback)
    body = {"error": {"message": message or _MESSAGES.get(status, "Error (simulated)."), "type": kind,
                      "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def anthropic_error(status: int, message: str | None = None,
                    headers: dict[str, str] | None = None) -> Response:
    """An error in the Anthropic shape ``{"type": "error", "error": {type, message}}``."""
    kind = _ANTHROPIC_ERRORS.get(status, "api_error" if status >= 500 else "invalid_request_error")
    body = {"type": "error", "error": {"type": kind, "message": message or _MESSAGES.get(status, "Error.")},
            "request_id": f"req_{uuid.uuid4().hex[:24]}"}
    return JSONResponse(body, status_code=status, headers=headers)


def _has_key(request: Request) -> bool:
    auth = request.headers.get("authorization", "")
    bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    return bool(bearer or request.headers.get("x-api-key", "").strip()
                or request.headers.get("api-key", "").strip())


async def _sleep(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


async def _hang(request: Request, seconds: float) -> None:
    """Wait ``seconds`` or until the client goes away."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return
        await asyncio.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def _result(out: Outcome, model: str, provider: str) -> ChatResult:
    return ChatResult(out.text, out.finish_reason, out.input_tokens, out.output_tokens,
                      out.cached_input_tokens, provider, model, None)


class SimApp:
    """Request handlers around one :class:`Simulator`."""

    def __init__(self, sim: Simulator):
        self.sim = sim

    async def _parse(self, request: Request, error: Callable[..., Response], api: str
                     ) -> tuple[dict[str, Any], list[dict[str, str]], Outcome] | Response:
        traceparent = request.headers.get("traceparent")
        if traceparent:
            self.sim.traceparents.append(traceparent)
        if not _has_key(request):
            return error(401, "You didn't provide an API key (simulated provider: any non-empty key works)."
                         if api == "openai" else "x-api-key header is required")
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return error(400, "The request body is not valid JSON.")
        if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not body["model"]:
            return error(400, "model: Field required")
        if api == "anthropic" and not isinstance(body.get("max_tokens"), int):
            return error(400, "max_tokens: Field required")
        try:
            messages = openai_messages(body) if api == "openai" else anthropic_messages(body)
            max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
            out = self.sim.plan(body["model"], messages, max_tokens if isinstance(max_tokens, int) else None)
        except (ValidationFailed, ValueError) as exc:
            return error(400, str(exc))
        if out.kind == "timeout":
            await _hang(request, out.hang_s)
            return error(504)
        if out.kind != "ok":
            await _sleep(out.latency_s)
            headers = None
            if out.retry_after_s is not None:
                headers = {"retry-after": f"{out.retry_after_s:g}",
                           "retry-after-ms": str(int(out.retry_after_s * 1000))}
            return error(out.status, headers=headers)
        return body, messages, out

    async def azure_chat_completions(self, request: Request) -> Response:
        """``POST /openai/deployments/{deployment}/chat/completions?api-version=...`` (Azure OpenAI):
        the deployment names the model; the key comes in ``api-key``."""
        if not request.query_params.get("api-version"):
            return JSONResponse({"error": {"code": "404", "message": "Resource not found"}}, status_code=404)
        if not request.headers.get("api-key", "").strip():
            return JSONResponse({"error": {"code": "401", "message": "Access denied due to invalid "
                                           "subscription key or wrong API endpoint."}}, status_code=401)
        return await self.chat_completions(request, model=request.path_params["deployment"])

    async def chat_completions(self, request: Request, model: str | None = None) -> Response:
        """``POST /v1/chat/completions``."""
        parsed = await self._parse(request, openai_error, "openai")
        if isinstance(parsed, Response):
            return parsed
        body, _, out = parsed
        model = model or body["model"]
        rid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        headers = {"x-request-id": f"req_{uuid.uuid4().hex[:24]}"}
        if not body.get("stream"):
            await _sleep(out.latency_s)
            return JSONResponse(openai_completion(_result(out, model, "openai"), response_id=rid),
                                headers=headers)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(self._openai_stream(out, model, rid, include_usage), media_type=_SSE,
                                 headers=headers)

    async def _openai_stream(self, out: Outcome, model: str, rid: str, include_usage: bool
                             ) -> AsyncIterator[str]:
        created = int(time.time())
        await _sleep(out.ttft_s)
        yield _data(openai_chunk(rid, model, created, text="", role=True, include_usage=include_usage))
        gap = (out.latency_s - out.ttft_s) / max(1, len(out.pieces))
        for i, piece in enumerate(out.pieces):
            if i == out.stream_error_after:
                yield _data({"error": {"message": "The server had an error while streaming (simulated).",
                                       "type": "server_error", "param": None, "code": None}})
                return
            if i:
                await _sleep(gap)
            yield _data(openai_chunk(rid, model, created, text=piece, include_usage=include_usage))
        yield _data(openai_chunk(rid, model, created, finish_reason=out.finish_reason,
                                 include_usage=include_usage))
        if include_usage:
            yield _data(openai_chunk(rid, model, created, usage=_result(out, model, "openai")))
        yield "data: [DONE]\n\n"

    async def messages(self, request: Request) -> Response:
        """``POST /v1/messages``."""
        parsed = await self._parse(request, anthropic_error, "anthropic")
        if isinstance(parsed, Response):
            return parsed
        body, _, out = parsed
        model = body["model"]
        rid = f"msg_{uuid.uuid4().hex[:24]}"
        headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}"}
        if not body.get("stream"):
            await _sleep(out.latency_s)
            return JSONResponse(anthropic_message(_result(out, model, "anthropic"), response_id=rid),
                                headers=headers)
        return StreamingResponse(self._anthropic_stream(out, model, rid), media_type=_SSE, headers=headers)

    async def _anthropic_stream(self, out: Outcome, model: str, rid: str) -> AsyncIterator[str]:
        await _sleep(out.ttft_s)
        for event in anthropic_start_events(rid, model, out.input_tokens, out.cached_input_tokens):
            yield _event(event)
        gap = (out.latency_s - out.ttft_s) / max(1, len(out.pieces))
        for i, piece in enumerate(out.pieces):
            if i == out.stream_error_after:
                yield _event({"type": "error", "error": {"type": "overloaded_error",
                                                         "message": "Overloaded (simulated, mid-stream)."}})
                return
            if i:
                await _sleep(gap)
            yield _event(anthropic_delta_event(piece))
        for event in anthropic_end_events(_result(out, model, "anthropic")):
            yield _event(event)

    async def models(self, request: Request) -> Response:
        """``GET /v1/models``: the profiled model names."""
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "canaryflow-sim"}
                for name in sorted(self.sim.profiles) if name != "default"]
        return JSONResponse({"object": "list", "data": data})

    async def healthz(self, request: Request) -> Response:
        """``GET /healthz``."""
        return JSONResponse({"ok": True})

    async def get_profiles(self, request: Request) -> Response:
        """``GET /admin/profiles``: every profile, the seed and the counters."""
        return JSONResponse({"seed": self.sim.seed, "latency_scale": self.sim.latency_scale,
                             "profiles": {k: v.model_dump() for k, v in self.sim.profiles.items()},
                             "stats": dict(self.sim.stats)})

    async def post_profiles(self, request: Request) -> Response:
        """``POST /admin/profiles``: ``{"model": M, "profile": {...}}`` or ``{"profiles": {M: {...}}}``."""
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            changes = body.get("profiles") or {body.get("model"): body.get("profile")}
            if not all(isinstance(k, str) and isinstance(v, dict) for k, v in changes.items()):
                raise ValueError('send {"model": NAME, "profile": {...}} or {"profiles": {NAME: {...}}}')
            updated = {model: self.sim.update_profile(model, fields).model_dump()
                       for model, fields in changes.items()}
        except ValidationError as exc:
            problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
            return JSONResponse({"error": "; ".join(problems)}, status_code=400)
        except (json.JSONDecodeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"profiles": updated})

    async def reset(self, request: Request) -> Response:
        """``POST /admin/reset`` (optional body ``{"seed": N}``): initial profiles, counters, seed."""
        raw = await request.body()
        seed = None
        if raw.strip():
            try:
                seed = json.loads(raw).get("seed")
            except (json.JSONDecodeError, AttributeError):
                return JSONResponse({"error": 'body must be {"seed": N} or empty'}, status_code=400)
        self.sim.reset(seed=int(seed) if seed is not None else None)
        return JSONResponse({"seed": self.sim.seed})


def _data(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, separators=(',', ':'))}\n\n"


def _event(obj: dict[str, Any]) -> str:
    return f"event: {obj['type']}\ndata: {json.dumps(obj, separators=(',', ':'))}\n\n"


def create_app(seed: int = 0, *, admin: bool = False, latency_scale: float = 1.0,
               profiles: dict[str, ModelProfile] | None = None,
               simulator: Simulator | None = None) -> Starlette:
    """The simulator app.

    Args:
        seed: seeds every request's random draws, so runs repeat.
        admin: serve ``/admin/profiles`` and ``/admin/reset`` (off by default).
        latency_scale: multiplies every sampled latency (0 = answer at once; tests).
        profiles: replaces the built-in profiles.
        simulator: use this simulator (then ``seed``, ``latency_scale``, ``profiles`` are ignored).
    """
    sim = simulator or Simulator(seed=seed, profiles=profiles, latency_scale=latency_scale)
    handlers = SimApp(sim)
    routes = [
        Route("/v1/chat/completions", handlers.chat_completions, methods=["POST"]),
        Route("/v1/messages", handlers.messages, methods=["POST"]),
        Route("/openai/deployments/{deployment}/chat/completions", handlers.azure_chat_completions,
              methods=["POST"]),
        Route("/v1/models", handlers.models, methods=["GET"]),
        Route("/healthz", handlers.healthz, methods=["GET"]),
    ]
    if admin:
        routes += [
            Route("/admin/profiles", handlers.get_profiles, methods=["GET"]),
            Route("/admin/profiles", handlers.post_profiles, methods=["POST"]),
            Route("/admin/reset", handlers.reset, methods=["POST"]),
        ]
    app = Starlette(routes=routes)
    app.state.simulator = sim
    return app


__all__ = ["anthropic_error", "create_app", "openai_error"]
