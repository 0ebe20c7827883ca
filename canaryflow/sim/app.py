"""The simulator's ASGI app: OpenAI ``/v1/chat/completions`` and ``/v1/responses``, Anthropic
``/v1/messages``, Azure OpenAI's deployment route.

Bodies are validated as the real APIs do (:mod:`.requests`), answers are written by :mod:`.wire` and parsed
by the official clients in the tests. Errors come back in each API's own JSON shape. Any non-empty key is
accepted (``Authorization: Bearer …``, ``x-api-key`` or Azure's ``api-key``); a missing one gets a 401.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from canaryflow.sim import wire
from canaryflow.sim.engine import Outcome, Simulator, input_token_count
from canaryflow.sim.profiles import ModelProfile
from canaryflow.sim.questions import count_tokens
from canaryflow.sim.requests import (
    InvalidRequest,
    SimRequest,
    parse_chat,
    parse_count_tokens,
    parse_messages,
    parse_responses,
)

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
_OPENAI_STREAM_ERROR = {"error": {"message": "The server had an error while streaming (simulated).",
                                  "type": "server_error", "param": None, "code": None}}
_ANTHROPIC_STREAM_ERROR = {"type": "error", "error": {"type": "overloaded_error",
                                                      "message": "Overloaded (simulated, mid-stream)."}}
_RESPONSES_STREAM_ERROR = {"type": "error", "code": "server_error", "param": None, "sequence_number": 0,
                           "message": "The server had an error while streaming (simulated)."}


def openai_error(status: int, message: str | None = None, headers: dict[str, str] | None = None, *,
                 param: str | None = None, code: str | None = None) -> Response:
    """An error in the OpenAI shape ``{"error": {message, type, param, code}}``."""
    fallback = ("server_error" if status >= 500 else "invalid_request_error", None)
    kind, default_code = _OPENAI_ERRORS.get(status, fallback)
    body = {"error": {"message": message or _MESSAGES.get(status, "Error (simulated)."), "type": kind,
                      "param": param, "code": code or default_code}}
    return JSONResponse(body, status_code=status, headers=headers)


def anthropic_error(status: int, message: str | None = None, headers: dict[str, str] | None = None, *,
                    param: str | None = None, code: str | None = None) -> Response:
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


class SimApp:
    """Request handlers around one :class:`Simulator`."""

    def __init__(self, sim: Simulator):
        self.sim = sim

    async def _parse(self, request: Request, error: Callable[..., Response],
                     parse: Callable[[Any], SimRequest], model: str | None = None
                     ) -> tuple[SimRequest, Outcome] | Response:
        traceparent = request.headers.get("traceparent")
        if traceparent:  # what tracing tests check reached the provider
            self.sim.traceparents.append(traceparent)
        if not _has_key(request):
            return error(401, "You didn't provide an API key (simulated provider: any non-empty key works)."
                         if error is openai_error else "x-api-key header is required")
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return error(400, "We could not parse the JSON body of your request. (HINT: This likely means "
                         "you aren't using your HTTP library correctly.)")
        if model is not None and isinstance(body, dict):
            body.setdefault("model", model)
        try:
            req = parse(body)
            out = self.sim.plan(model or req.model, req.texts, req.max_tokens, request=req)
        except InvalidRequest as exc:
            return error(400, exc.message, param=exc.param, code=exc.code)
        except ValueError as exc:
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
        return req, out

    @staticmethod
    def _azure_refusal(request: Request) -> Response | None:
        if not request.query_params.get("api-version"):
            return JSONResponse({"error": {"code": "404", "message": "Resource not found"}}, status_code=404)
        if not request.headers.get("api-key", "").strip():
            return JSONResponse({"error": {"code": "401", "message": "Access denied due to invalid "
                                           "subscription key or wrong API endpoint."}}, status_code=401)
        return None

    async def azure_chat_completions(self, request: Request) -> Response:
        """``POST /openai/deployments/{deployment}/chat/completions?api-version=...`` (Azure OpenAI):
        the deployment names the model; the key comes in ``api-key``."""
        refused = self._azure_refusal(request)
        return refused or await self.chat_completions(request, model=request.path_params["deployment"])

    async def azure_responses(self, request: Request) -> Response:
        """``POST /openai/responses?api-version=...`` (Azure OpenAI; ``model`` is the deployment)."""
        return self._azure_refusal(request) or await self.responses(request)

    async def chat_completions(self, request: Request, model: str | None = None) -> Response:
        """``POST /v1/chat/completions``."""
        parsed = await self._parse(request, openai_error, parse_chat, model)
        if isinstance(parsed, Response):
            return parsed
        req, out = parsed
        model = model or req.model
        rid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        headers = {"x-request-id": f"req_{uuid.uuid4().hex[:24]}"}
        if not req.stream:
            await _sleep(out.latency_s)
            return JSONResponse(wire.chat_completion(out, model, rid, req.n), headers=headers)
        return StreamingResponse(self._paced(out, wire.chat_chunks(out, model, rid, req.include_usage, req.n),
                                             wire.sse_data, _OPENAI_STREAM_ERROR, done="data: [DONE]\n\n"),
                                 media_type=_SSE, headers=headers)

    async def _paced(self, out: Outcome, items: Iterator[dict[str, Any] | None],
                     write: Callable[[dict[str, Any]], str], stream_error: dict[str, Any],
                     done: str | None = None, numbered: bool = False) -> AsyncIterator[str]:
        """Send ``items``: the first after the time to first token, the rest spread over the latency (each
        ``None`` is a pacing point); an error event in place of piece ``stream_error_after``."""
        await _sleep(out.ttft_s)
        n_pieces = max(1, len(out.pieces) or sum(len(c.arguments) // 12 + 1 for c in out.tool_calls))
        gap = (out.latency_s - out.ttft_s) / n_pieces
        piece = 0
        seq = 0
        for item in items:
            if item is None:
                if piece == out.stream_error_after:
                    yield write(stream_error)
                    return
                if piece:
                    await _sleep(gap)
                piece += 1
                continue
            if numbered:
                item = {**item, "sequence_number": seq}
                seq += 1
            yield write(item)
        if done is not None:
            yield done

    async def messages(self, request: Request) -> Response:
        """``POST /v1/messages``."""
        parsed = await self._parse(request, anthropic_error, parse_messages)
        if isinstance(parsed, Response):
            return parsed
        req, out = parsed
        rid = f"msg_{uuid.uuid4().hex[:24]}"
        headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}"}
        if not req.stream:
            await _sleep(out.latency_s)
            return JSONResponse(wire.anthropic_message(out, req.model, rid, thinking=req.thinking),
                                headers=headers)
        events = wire.anthropic_events(out, req.model, rid, thinking=req.thinking)
        return StreamingResponse(self._paced(out, events, wire.sse_event, _ANTHROPIC_STREAM_ERROR),
                                 media_type=_SSE, headers=headers)

    async def count_tokens(self, request: Request) -> Response:
        """``POST /v1/messages/count_tokens``: the input tokens a message would use (as its answer counts)."""
        if not _has_key(request):
            return anthropic_error(401, "x-api-key header is required")
        try:
            req = parse_count_tokens(await request.json())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return anthropic_error(400, "We could not parse the JSON body of your request.")
        except InvalidRequest as exc:
            return anthropic_error(400, exc.message, param=exc.param, code=exc.code)
        tools = sum(count_tokens(json.dumps(t.parameters)) + 8 for t in req.tools)
        return JSONResponse({"input_tokens": input_token_count(req.texts) + req.extra_input_tokens + tools})

    async def responses(self, request: Request) -> Response:
        """``POST /v1/responses``."""
        parsed = await self._parse(request, openai_error, parse_responses)
        if isinstance(parsed, Response):
            return parsed
        req, out = parsed
        rid = f"resp_{uuid.uuid4().hex}"
        headers = {"x-request-id": f"req_{uuid.uuid4().hex[:24]}"}
        if not req.stream:
            await _sleep(out.latency_s)
            return JSONResponse(wire.response_object(out, req.model, rid, req.echo), headers=headers)
        return StreamingResponse(self._paced(out, wire.response_events(out, req.model, rid, req.echo),
                                             wire.sse_event, _RESPONSES_STREAM_ERROR, numbered=True),
                                 media_type=_SSE, headers=headers)

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
        Route("/v1/messages/count_tokens", handlers.count_tokens, methods=["POST"]),
        Route("/v1/responses", handlers.responses, methods=["POST"]),
        Route("/openai/deployments/{deployment}/chat/completions", handlers.azure_chat_completions,
              methods=["POST"]),
        Route("/openai/responses", handlers.azure_responses, methods=["POST"]),
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
