"""Endpoints canaryflow does not manage (``/v1/embeddings``, ``/v1/audio/...``, ...), ``GET /v1/models`` and
``GET /v1/models/{key}``.

With ``CANARYFLOW_GATEWAY_DEFAULT_PROVIDER`` naming a provider endpoint (``openai``, ``anthropic`` or a named
endpoint), such a request is proxied unchanged — method, path, query, body, content type — to that
endpoint's base URL with its API key, and its answer comes back unchanged. Without it the gateway answers
404 saying how to set it.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from canaryflow.errors import CanaryflowError, NotFound
from canaryflow.gateway.protocol import anthropic_caller, error_response, read_body
from canaryflow.providers.factory import get_provider
from canaryflow.serving.traffic import TrafficPlane

DEFAULT_PROVIDER_ENV = "CANARYFLOW_GATEWAY_DEFAULT_PROVIDER"
MANAGED = {"/v1/chat/completions": "POST", "/v1/responses": "POST", "/v1/messages": "POST",
           "/v1/models": "GET", "/v1/resolve": "POST", "/v1/feedback": "POST",
           "/v1/track": "POST", "/v1/messages/count_tokens": "POST"}
"""canaryflow's own /v1 paths (a wrong method there is a 405, never proxied)."""
_HOP = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "authorization",
        "x-api-key",
        "accept-encoding",
        "transfer-encoding",
    }
)


def _shape(request: Request) -> Any:
    return "anthropic" if "anthropic-version" in request.headers else "openai"


def _model(shape: str, key: str) -> dict[str, Any]:
    if shape == "anthropic":
        return {"type": "model", "id": key, "display_name": key, "created_at": "1970-01-01T00:00:00Z"}
    return {"id": key, "object": "model", "created": 0, "owned_by": "canaryflow"}


async def _served_keys(plane: TrafficPlane) -> list[str]:
    """The config keys that can be served (they have a stable version), sorted."""
    registry = getattr(plane.resolver, "registry", None) or plane.registry
    summaries = await asyncio.to_thread(registry.configs) if registry is not None else []
    return sorted(s.key for s in summaries if s.stable_version is not None)


async def models(plane: TrafficPlane, request: Request) -> Response:
    """``GET /v1/models``: the config keys that can be served (they have a stable version), in the OpenAI
    shape, or the Anthropic one when the request carries ``anthropic-version``."""
    shape = _shape(request)
    try:
        keys = await _served_keys(plane)
    except CanaryflowError as exc:
        return error_response(shape, exc)
    data = [_model(shape, k) for k in keys]
    if shape == "anthropic":
        return JSONResponse({"data": data, "has_more": False, "first_id": keys[0] if keys else None,
                             "last_id": keys[-1] if keys else None})
    return JSONResponse({"object": "list", "data": data})


async def model(plane: TrafficPlane, request: Request) -> Response:
    """``GET /v1/models/{key}`` (``client.models.retrieve(key)``): one servable config key as a model, in
    the shape of :func:`models`; an unknown key is a 404 naming it."""
    shape = _shape(request)
    key = request.path_params["key"]
    try:
        if key not in await _served_keys(plane):
            raise NotFound(f"unknown config {key!r}: GET /v1/models lists the config keys that can be served")
    except CanaryflowError as exc:
        return error_response(shape, exc)
    return JSONResponse(_model(shape, key))


async def unmanaged(plane: TrafficPlane, request: Request) -> Response:
    """Any other ``/v1/...`` path: proxied to the default provider, or a 404 that says how to configure it."""
    name = os.environ.get(DEFAULT_PROVIDER_ENV, "").strip()
    path = request.url.path
    if path.rstrip("/") in MANAGED:
        message = f"{request.method} is not allowed on {path}"
        refusal: dict[str, Any] = (
            {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
            if anthropic_caller(path, request.headers) else
            {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}})
        return JSONResponse(refusal, status_code=405, headers={"allow": MANAGED[path.rstrip("/")]})
    if not name:
        return error_response(
            _shape(request),
            NotFound(
                f"canaryflow does not manage {request.method} {path}: set {DEFAULT_PROVIDER_ENV}=<provider "
                "endpoint> (e.g. openai) to proxy it unchanged to that provider"
            ),
        )
    try:
        provider = get_provider(name)
        body = await read_body(request)
    except CanaryflowError as exc:
        return error_response(_shape(request), exc)
    client: Any = getattr(provider, "client", None)
    base = str(client.base_url).rstrip("/")
    sub = path[len("/v1") :] if base.endswith("/v1") else path
    url = base + sub + (f"?{request.url.query}" if request.url.query else "")
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
    headers.update({k: v for k, v in client.auth_headers.items()})
    try:
        answer = await client._client.request(request.method, url, content=body, headers=headers)
    except Exception as exc:  # the provider cannot be reached
        from canaryflow.providers.errors import map_error

        return error_response(_shape(request), map_error(exc, provider=name, model=""))
    keep = {
        k: v
        for k, v in answer.headers.items()
        if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding")
    }
    return Response(answer.content, status_code=answer.status_code, headers=keep)


__all__ = ["DEFAULT_PROVIDER_ENV", "model", "models", "unmanaged"]
