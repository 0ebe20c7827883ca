"""The gateway's ASGI app: OpenAI- and Anthropic-compatible endpoints over the traffic plane.

Routes::

    POST /v1/chat/completions   OpenAI Chat Completions, plain and streaming (model = config key)
    POST /v1/responses          OpenAI Responses, plain and streaming (model = config key)
    POST /v1/messages           Anthropic Messages, plain and streaming (model = config key)
    POST /v1/messages/count_tokens  the input tokens of a message with the config applied (Anthropic configs)
    GET  /v1/models             the config keys that can be served (OpenAI or Anthropic shape)
    GET  /v1/models/{key}       one of them (``client.models.retrieve(key)``), or 404
    *    /v1/...                anything else: proxied to CANARYFLOW_GATEWAY_DEFAULT_PROVIDER, or 404
    POST /v1/resolve            {"config", "user", "attributes", "variables"} → the resolution
    POST /v1/feedback           {"request_id", "sentiment": "positive"|"negative", "comment"?}
    POST /v1/track              {"request_id", "event": "edited"|"copied"|…, "value"?}  (implicit feedback)
    GET  /metrics               Prometheus exposition of the traffic-plane instruments
    GET  /healthz               registry reachable? serving cache fresh? (503 when not)
    GET  /openapi.json          the OpenAPI description (canaryflow/gateway/openapi.py)

The hot path touches no database: resolution reads the client's cache, the traffic log is written in
batches by a background thread, shadow mirrors run as background tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from canaryflow import tracing
from canaryflow.errors import CanaryflowError, ValidationFailed
from canaryflow.gateway import apis, proxy
from canaryflow.gateway.openapi import openapi_endpoint
from canaryflow.gateway.protocol import MAX_BODY_BYTES, caller_context, read_json, status_of
from canaryflow.metrics.instruments import CONTENT_TYPE, default_metrics
from canaryflow.serving.traffic import TrafficPlane

Health = Callable[[], dict[str, Any]]
"""Returns ``{"ok": bool, ...details}``; called in a worker thread by ``GET /healthz``."""


def _request_id(body: dict[str, Any]) -> str:
    """The ``request_id`` a feedback or track body names (the ``X-Canaryflow-Request-Id`` of a response)."""
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise ValidationFailed("'request_id' must be the X-Canaryflow-Request-Id of a response",
                               source="request_id")
    return request_id


def _plain_error(exc: CanaryflowError) -> Response:
    return JSONResponse({"error": {"message": str(exc), "type": type(exc).__name__,
                                   "param": getattr(exc, "source", None)}}, status_code=status_of(exc))


class _Gateway(Starlette):
    """Starlette, with the POST endpoints of ``direct`` called straight from the app (same path and
    method as their routes, no root path): what the router, ``ExceptionMiddleware`` and the request
    wrapper would do for them is nothing, and an unexpected error gets ``ServerErrorMiddleware``'s
    treatment here (a plain 500 unless the response started, then re-raised for the server to log)."""

    def __init__(self, *, direct: Mapping[str, ASGIApp], **options: Any) -> None:
        super().__init__(**options)
        self._direct = direct

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self._direct.get(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None or scope["method"] != "POST" or scope.get("root_path"):
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await endpoint(scope, receive, sending)
        except Exception:
            if not started:
                await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise


def build_app(plane: TrafficPlane, *, health: Health | None = None, max_body_bytes: int | None = None
              ) -> Starlette:
    """The gateway app serving ``plane``.

    Args:
        plane: the traffic plane (client, metrics, traffic log, shadow mirror).
        health: the readiness check behind ``/healthz`` (default: always ok).
        max_body_bytes: request bodies past this get 413 before parsing (default:
            ``CANARYFLOW_GATEWAY_MAX_BODY_BYTES`` or 32 MiB).
    """
    metrics = plane.metrics or default_metrics()

    def bind(fn: Callable[[TrafficPlane, Request], Awaitable[Response]]) -> Callable[[Request],
                                                                                   Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await fn(plane, request)
        return endpoint

    async def resolve(request: Request) -> Response:
        try:
            body = await read_json(request)
            key = body.get("config", body.get("key"))
            if not isinstance(key, str) or not key:
                raise ValidationFailed("'config' must name a config key", source="config")
            flat = {"canaryflow": {k: body[k] for k in ("user", "attributes", "variables") if k in body}}
            ctx = caller_context(flat, request.headers)
            res = await plane.aprepare(key, context=ctx.context(), variables=ctx.variables)
        except CanaryflowError as exc:
            return _plain_error(exc)
        return JSONResponse(res.as_dict())

    async def feedback(request: Request) -> Response:
        try:
            body = await read_json(request)
            request_id = _request_id(body)
            sentiment = body.get("sentiment")
            comment = body.get("comment")
            if comment is not None and not isinstance(comment, str):
                raise ValidationFailed("'comment' must be a string", source="comment")
            labels = await asyncio.to_thread(plane.feedback, request_id, str(sentiment), comment)
        except CanaryflowError as exc:
            return _plain_error(exc)
        return JSONResponse({"ok": True, "request_id": request_id, "config": labels.config,
                             "version": labels.version, "variation": labels.variation})

    async def track(request: Request) -> Response:
        try:
            body = await read_json(request)
            request_id = _request_id(body)
            extra = sorted(set(body) - {"request_id", "event", "value"})
            if extra:
                raise ValidationFailed(f"unknown field {extra[0]!r}: /v1/track takes request_id, event and "
                                       "value", source=extra[0])
            event, value = body.get("event"), body.get("value")
            if not isinstance(event, str):
                raise ValidationFailed(f"'event' must be a string naming the event, got {event!r}",
                                       source="event")
            labels = await asyncio.to_thread(plane.track, request_id, event, value)
        except CanaryflowError as exc:
            return _plain_error(exc)
        return JSONResponse({"ok": True, "request_id": request_id, "event": event, "config": labels.config,
                             "version": labels.version, "variation": labels.variation})

    async def metrics_endpoint(request: Request) -> Response:
        # in a worker thread: with every gate-read series created at 0 (96 latency buckets per label set)
        # the exposition takes milliseconds, which must not stall requests on the event loop
        return Response(await asyncio.to_thread(metrics.exposition), media_type=CONTENT_TYPE)

    async def healthz(request: Request) -> Response:
        if health is None:
            return JSONResponse({"ok": True})
        try:
            report = await asyncio.to_thread(health)
        except Exception as exc:
            report = {"ok": False, "error": str(exc)}
        return JSONResponse(report, status_code=200 if report.get("ok") else 503)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        fresh = asyncio.create_task(plane.keep_fresh())  # new exposures' series exist before their traffic
        try:
            yield
        finally:
            fresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fresh
            await plane.close()

    served = {"/v1/chat/completions": apis.Endpoint(plane, "chat"),
              "/v1/responses": apis.Endpoint(plane, "responses"),
              "/v1/messages": apis.Endpoint(plane, "messages")}
    routes = [
        *(Route(path, endpoint, methods=["POST"]) for path, endpoint in served.items()),
        Route("/v1/messages/count_tokens", bind(apis.count_tokens), methods=["POST"]),
        Route("/v1/models", bind(proxy.models), methods=["GET"]),
        Route("/v1/models/{key}", bind(proxy.model), methods=["GET"]),
        Route("/v1/resolve", resolve, methods=["POST"]),
        Route("/v1/feedback", feedback, methods=["POST"]),
        Route("/v1/track", track, methods=["POST"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi_endpoint, methods=["GET"]),
        Route("/v1/{rest:path}", bind(proxy.unmanaged),
              methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]
    middleware = tracing.asgi_middleware()
    # with no middleware around them, the three APIs' POSTs skip the router (and its exception layers)
    app = _Gateway(routes=routes, lifespan=lifespan, middleware=middleware,
                   direct={} if middleware else served)
    if max_body_bytes is None:
        max_body_bytes = int(os.environ.get("CANARYFLOW_GATEWAY_MAX_BODY_BYTES") or MAX_BODY_BYTES)
    app.state.max_body_bytes = max_body_bytes
    return app


__all__ = ["Health", "build_app"]
