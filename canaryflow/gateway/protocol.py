"""What the gateway's two APIs share: the caller's canaryflow context, response headers, error shapes.

Context (user key, attributes, template variables) comes from a ``canaryflow`` object in the body — what
the clients send with ``extra_body={"canaryflow": {...}}`` — or from headers; the body wins per field::

    {"canaryflow": {"user": "u-1", "attributes": {"email": "a@acme.com"}, "variables": {"product": "X"}}}
    X-Canaryflow-User: u-1
    X-Canaryflow-Attr-<name>: value        (names arrive lower-cased; values are strings)
    X-Canaryflow-Var-<name>: value

Without a user key, OpenAI's ``user`` field or Anthropic's ``metadata.user_id`` is used.

Errors (status → when): 400 a bad body or a prompt variable missing (the field is named), 404 an unknown
config, 429 the provider rate limited the last attempt (with its ``Retry-After``), 502 the provider failed
after every fallback, 504 it timed out, 503 the registry is unreachable. Bodies follow the API called:
OpenAI ``{"error": {...}}``, Anthropic ``{"type": "error", "error": {...}}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive

from canaryflow.domain import fastjson
from canaryflow.errors import (
    CanaryflowError,
    Conflict,
    NotFound,
    PayloadTooLarge,
    ProviderError,
    RegistryUnavailable,
    RenderError,
    Unauthorized,
    ValidationFailed,
)

Api = Literal["openai", "anthropic"]
_ATTR = "x-canaryflow-attr-"
_VAR = "x-canaryflow-var-"


@dataclass
class CallerContext:
    """Who is asking and with which template variables."""

    user: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, object] = field(default_factory=dict)

    def context(self) -> dict[str, Any]:
        """The resolution context ``{"key": ..., "attributes": {...}}``."""
        return {"key": self.user, "attributes": self.attributes}


MAX_BODY_BYTES = 32 * 1024 * 1024
"""Default request body limit (``CANARYFLOW_GATEWAY_MAX_BODY_BYTES``); larger bodies get 413 unparsed."""


async def read_body(request: Request, limit: int | None = None) -> bytes:
    """The raw body, refused with :class:`PayloadTooLarge` past ``limit`` bytes (the app's limit by
    default) — by its ``Content-Length`` before reading, or while reading a chunked body."""
    if limit is None:
        limit = int(getattr(request.app.state, "max_body_bytes", MAX_BODY_BYTES))
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    if length is not None and length.isdigit():
        return await request.body()
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise _too_large(limit)
        parts.append(part)
    return b"".join(parts)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the body is over the gateway's limit of {limit} bytes (set "
                           "CANARYFLOW_GATEWAY_MAX_BODY_BYTES to change it)", source="body")


def body_limit(scope: Mapping[str, Any]) -> int:
    """The app's body limit (``app.state.max_body_bytes``, else :data:`MAX_BODY_BYTES`)."""
    return int(getattr(getattr(scope.get("app"), "state", None), "max_body_bytes", MAX_BODY_BYTES))


async def receive_body(scope: Mapping[str, Any], receive: Receive, limit: int | None = None) -> bytes:
    """:func:`read_body` for an ASGI endpoint: the raw body from ``receive``, refused with
    :class:`PayloadTooLarge` past ``limit`` (the app's by default) — by its ``Content-Length`` before reading,
    or while reading; a client gone before the end raises Starlette's ``ClientDisconnect``, as
    ``Request.body()`` does."""
    if limit is None:
        limit = body_limit(scope)
    for name, value in scope["headers"]:
        if name == b"content-length":
            if value.isdigit() and int(value) > limit:
                raise _too_large(limit)
            break
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            part = message.get("body", b"")
            if part:
                size += len(part)
                if size > limit:
                    raise _too_large(limit)
                parts.append(part)
            if not message.get("more_body", False):
                break
        elif kind == "http.disconnect":
            raise ClientDisconnect()
    return parts[0] if len(parts) == 1 else b"".join(parts)


def parse_json(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object (ValidationFailed otherwise)."""
    try:
        body = fastjson.loads(raw)
    except ValueError as exc:
        raise ValidationFailed(f"the body is not valid JSON ({exc})", source="body") from exc
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object", source="body")
    if b"\\ud" in raw or b"\\uD" in raw:  # an escaped surrogate: only whole pairs make text
        try:
            fastjson.dumps(body).decode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValidationFailed(f"the body escapes a lone UTF-16 surrogate ({exc.object[exc.start]!r}), "
                                   "which is not text: send the character, or both halves of its pair",
                                   source="body") from exc
    return body


async def read_json(request: Request) -> dict[str, Any]:
    """The request body as a JSON object (ValidationFailed otherwise; PayloadTooLarge past the limit)."""
    return parse_json(await read_body(request))


def canaryflow_headers(scope: Mapping[str, Any]) -> dict[str, str]:
    """The ``X-Canaryflow-*`` request headers of an ASGI ``scope`` (what :func:`caller_context` reads)."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
            if name[:13].lower() == b"x-canaryflow-"}


def caller_context(body: Mapping[str, Any], headers: Mapping[str, str], *, fallback_user: Any = None
                   ) -> CallerContext:
    """Merge the body's ``canaryflow`` object over the ``X-Canaryflow-*`` headers."""
    ctx = CallerContext()
    for name, value in headers.items():
        name = name.lower()
        if not name.startswith("x-canaryflow-"):
            continue
        if name == "x-canaryflow-user":
            ctx.user = value
        elif name.startswith(_ATTR) and len(name) > len(_ATTR):
            ctx.attributes[name[len(_ATTR):].replace("-", "_")] = value
        elif name.startswith(_VAR) and len(name) > len(_VAR):
            ctx.variables[name[len(_VAR):].replace("-", "_")] = value
    extra = body.get("canaryflow")
    if extra is not None:
        if not isinstance(extra, dict):
            raise ValidationFailed("'canaryflow' must be an object with user, attributes, variables",
                                   source="canaryflow")
        user = extra.get("user", extra.get("key"))
        if user is not None:
            ctx.user = str(user)
        for part in ("attributes", "variables"):
            given = extra.get(part)
            if given is None:
                continue
            if not isinstance(given, dict):
                raise ValidationFailed(f"'canaryflow.{part}' must be an object", source=f"canaryflow.{part}")
            getattr(ctx, part).update(given)
    if not ctx.user and fallback_user:
        ctx.user = str(fallback_user)
    return ctx


def config_key(body: Mapping[str, Any]) -> str:
    """The ``model`` field, which names the config."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ValidationFailed("'model' must name a config key (e.g. \"support-bot\")", source="model")
    return model


def status_of(exc: CanaryflowError) -> int:
    """The HTTP status for an error."""
    if isinstance(exc, PayloadTooLarge):
        return 413
    if isinstance(exc, ValidationFailed | RenderError):
        return 400
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Unauthorized):
        return 403
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, RegistryUnavailable):
        return 503
    if isinstance(exc, ProviderError):
        if exc.error_type == "timeout":
            return 504
        if exc.error_type in ("bad_request", "content_filter"):
            return 400
        if exc.error_type == "rate_limit":
            return 429
        return 502
    return 500


_OPENAI_TYPES = {413: "invalid_request_error", 400: "invalid_request_error", 404: "not_found_error",
                 403: "permission_error", 409: "conflict_error", 429: "rate_limit_error",
                 502: "upstream_error", 503: "service_unavailable", 504: "timeout", 500: "server_error"}
_ANTHROPIC_TYPES = {413: "request_too_large", 400: "invalid_request_error", 404: "not_found_error",
                    429: "rate_limit_error", 529: "overloaded_error",
                    502: "api_error", 503: "overloaded_error", 504: "timeout_error", 500: "api_error"}


def anthropic_caller(path: str, headers: Mapping[str, str]) -> bool:
    """Whether the caller speaks the Anthropic API, for errors the gateway answers before any API endpoint
    does: an Anthropic path, or ``anthropic-version`` (the Anthropic client sends it on every request);
    ``headers`` with lower-case names."""
    return path.startswith("/v1/messages") or "anthropic-version" in headers


def error_response(api: Api, exc: CanaryflowError, headers: Mapping[str, str] | None = None) -> Response:
    """The error in the shape of the API that was called (a rate limit with the provider's
    ``Retry-After``, in seconds and in ``retry-after-ms`` as OpenAI sends it; an Anthropic provider's
    529 overloaded as a 529 ``overloaded_error`` to an Anthropic caller, a 502 to an OpenAI one)."""
    status = status_of(exc)
    if api == "anthropic" and status == 502 and getattr(exc, "status_code", None) == 529:
        status = 529  # Anthropic's overloaded: its client's OverloadedError, retried as Anthropic's are
    headers = dict(headers or {})
    retry_after = getattr(exc, "retry_after", None)
    if status in (429, 529) and retry_after is not None:
        headers.setdefault("retry-after", str(math.ceil(retry_after)))
        headers.setdefault("retry-after-ms", str(int(retry_after * 1000)))
    message = str(exc)
    param = getattr(exc, "source", None) or getattr(exc, "param", None)
    code = exc.error_type if isinstance(exc, ProviderError) else None
    body: dict[str, Any]
    if api == "anthropic":
        body = {"type": "error",
                "error": {"type": _ANTHROPIC_TYPES.get(status, "api_error"), "message": message}}
    else:
        body = {"error": {"message": message, "type": _OPENAI_TYPES.get(status, "server_error"),
                          "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def serving_headers(request_id: str, version: int, variation: str, fallback_index: int | None,
                    fallback_reason: str | None, served_by: str | None = None) -> dict[str, str]:
    """The ``X-Canaryflow-*`` response headers."""
    headers = {"x-canaryflow-request-id": request_id, "x-canaryflow-version": str(version),
               "x-canaryflow-variation": variation,
               "x-canaryflow-fallback": "false" if fallback_index is None else "true"}
    if fallback_index is not None:
        headers["x-canaryflow-fallback-index"] = str(fallback_index)
        headers["x-canaryflow-fallback-reason"] = fallback_reason or "other"
    if served_by:
        headers["x-canaryflow-served-by"] = served_by
    return headers


def json_response_head(content: bytes, request_id: str, version: int, variation: str,
                       fallback_index: int | None, fallback_reason: str | None,
                       served_by: str | None = None) -> list[tuple[bytes, bytes]]:
    """The raw headers of a 200 JSON answer: :func:`serving_headers`, then ``content-length`` and
    ``content-type`` (what ``Response(content, media_type="application/json", headers=...)`` sends)."""
    head = [(b"x-canaryflow-request-id", request_id.encode("latin-1")),
            (b"x-canaryflow-version", str(version).encode("latin-1")),
            (b"x-canaryflow-variation", variation.encode("latin-1")),
            (b"x-canaryflow-fallback", b"false" if fallback_index is None else b"true")]
    if fallback_index is not None:
        head.append((b"x-canaryflow-fallback-index", str(fallback_index).encode("latin-1")))
        head.append((b"x-canaryflow-fallback-reason", (fallback_reason or "other").encode("latin-1")))
    if served_by:
        head.append((b"x-canaryflow-served-by", served_by.encode("latin-1")))
    head.append((b"content-length", str(len(content)).encode("latin-1")))
    head.append((b"content-type", b"application/json"))
    return head


__all__ = ["MAX_BODY_BYTES", "Api", "CallerContext", "body_limit", "caller_context", "canaryflow_headers",
           "config_key", "error_response", "json_response_head", "parse_json", "read_body", "read_json",
           "receive_body", "serving_headers", "status_of"]
