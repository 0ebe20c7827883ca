"""Translate the openai / anthropic / httpx exceptions into :class:`ProviderError` (DESIGN.md taxonomy).

::

    openai / anthropic exception             error_type       status
    ───────────────────────────────────────  ───────────────  ──────
    APITimeoutError, httpx TimeoutException  timeout          None
    APIConnectionError, httpx TransportError connection       None
    429 RateLimitError                       rate_limit       429 (retry_after from the headers)
    408, 504                                 timeout          408/504
    5xx, 529 overloaded                      server_error     5xx
    400 whose code mentions content filter   content_filter   400
    400, 404, 409, 413, 422                  bad_request      4xx
    401, 403                                 auth             401/403
    error event inside a stream              by its type      None (overloaded → server_error, …)
    anything else                            other            …

Messages never carry secrets: anything shaped like an API key, and the current key values from the
environment, are replaced by ``***``.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import re
import time
from collections.abc import Mapping
from typing import Any

import anthropic
import httpx
import httpx2
import openai

from canaryflow.errors import ProviderError

_KEY_SHAPES = re.compile(r"(sk-[A-Za-z0-9_\-*]{4,}|(?:Bearer|x-api-key:?)\s+\S+)", re.IGNORECASE)
_KEY_ENVS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
_MAX_MESSAGE = 300


def redact(text: str) -> str:
    """``text`` with API-key-shaped substrings and the environment's key values replaced by ``***``."""
    for env in _KEY_ENVS:
        value = os.environ.get(env)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return _KEY_SHAPES.sub("***", text)


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    if not headers:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - time.time())


def _body_type(text: str) -> str:
    """Classify an error reported inside a stream (no HTTP status of its own) by its body."""
    if "rate_limit" in text:
        return "rate_limit"
    if "timeout" in text:
        return "timeout"
    if any(word in text for word in ("overloaded", "server_error", "api_error", "internal")):
        return "server_error"
    if "content_filter" in text or "content_policy" in text:
        return "content_filter"
    if "invalid_request" in text:
        return "bad_request"
    return "other"


def _status_type(status: int, text: str) -> str:
    if status < 400:
        return _body_type(text)
    if status == 429:
        return "rate_limit"
    if status in (408, 504):
        return "timeout"
    if status >= 500:
        return "server_error"
    if status in (401, 403):
        return "auth"
    if "content_filter" in text or "content filter" in text or "content_policy" in text:
        return "content_filter"
    if status in (400, 404, 409, 413, 422):
        return "bad_request"
    return "other"


def _body_text(body: object) -> str:
    if isinstance(body, dict):
        inner: Any = body.get("error", body)
        if isinstance(inner, dict):
            return " ".join(str(inner.get(k) or "") for k in ("type", "code", "message")).lower()
    return str(body or "").lower()


def _provider_message(exc: BaseException, body: object) -> str:
    """The provider's own words: its error body's ``message`` (both APIs nest it under ``error``), else the
    client's message (which starts "Error code: N - " and shows the body as a Python dict)."""
    inner = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(inner, dict) and isinstance(inner.get("message"), str) and inner["message"]:
        return str(inner["message"])
    return getattr(exc, "message", "") or ""


def map_error(exc: BaseException, *, provider: str, model: str) -> ProviderError:
    """The :class:`ProviderError` for an exception raised while calling ``provider``/``model``.

    Callers raise the result ``from exc`` so the cause stays attached.
    """
    if isinstance(exc, ProviderError):
        return exc
    where = f"{provider} {model}"
    status: int | None = None
    retry_after: float | None = None
    detail = ""
    body = getattr(exc, "body", None)
    param = body.get("param") if isinstance(body, dict) and isinstance(body.get("param"), str) else None
    if isinstance(exc, openai.APITimeoutError | anthropic.APITimeoutError | httpx.TimeoutException
                  | httpx2.TimeoutException | asyncio.TimeoutError | TimeoutError):
        error_type, summary = "timeout", "timed out"
    elif isinstance(exc, openai.APIConnectionError | anthropic.APIConnectionError | httpx.TransportError
                    | httpx2.TransportError | ConnectionError):
        error_type, summary = "connection", "connection failed"
    elif isinstance(exc, openai.APIStatusError | anthropic.APIStatusError):
        error_type = _status_type(exc.status_code, _body_text(exc.body))
        status = exc.status_code if exc.status_code >= 400 else None  # < 400: an error event mid-stream
        retry_after = parse_retry_after(exc.response.headers)
        summary = {"rate_limit": "rate limited", "timeout": "timed out", "server_error": "server error",
                   "auth": "authentication failed", "content_filter": "blocked by the content filter",
                   "bad_request": "bad request"}.get(error_type, "request failed")
        detail = _provider_message(exc, body)
    elif isinstance(exc, openai.APIError | anthropic.APIError):
        error_type = _body_type(_body_text(exc.body))
        summary = "failed mid-stream"
        detail = getattr(exc, "message", "") or ""
    elif isinstance(exc, openai.ContentFilterFinishReasonError):
        error_type, summary = "content_filter", "blocked by the content filter"
    else:
        error_type, summary = "other", f"unexpected {type(exc).__name__}"
        detail = str(exc)
    message = f"{where}: {summary}" + (f" ({status})" if status else "")
    if detail:
        message += f": {redact(detail)[:_MAX_MESSAGE]}"
    return ProviderError(message, error_type=error_type, status_code=status, provider=provider, model=model,
                         retry_after=retry_after, param=param)


__all__ = ["map_error", "parse_retry_after", "redact"]
