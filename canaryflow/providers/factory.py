"""``get_provider(name)``: the adapter for a config's ``provider`` (an endpoint name), clients cached.

Endpoints come from :mod:`canaryflow.providers.endpoints`: ``openai`` and ``anthropic`` always exist
(``OPENAI_BASE_URL``/``OPENAI_API_KEY``, ``ANTHROPIC_BASE_URL``/``ANTHROPIC_API_KEY``), a providers file
adds more (``api: openai`` for any OpenAI-compatible server such as vLLM or Ollama, ``anthropic``,
``azure-openai``). The environment is read on every call, so a changed key or URL gets a new client;
clients are cached per (endpoint, URL, key, headers) and built with ``max_retries=0``.

An ``azure-openai`` endpoint is an :class:`openai.AsyncAzureOpenAI` client (``azure_endpoint`` = the
endpoint's ``base_url``, its ``api_version``, the key sent as ``api-key``): the config's ``model`` is the
deployment name and the client builds ``{base_url}/openai/deployments/{model}/chat/completions
?api-version=...`` from the JSON body's ``model`` — so requests must go through the client with a JSON body
(``post(..., body=dict)``), as the adapters do.

Transport (``CANARYFLOW_PROVIDER_TRANSPORT``): ``auto`` (default) sends plain-HTTP endpoints — a local
sidecar, a self-hosted OpenAI-compatible server, the simulator — through
:class:`~canaryflow.providers.transport.LeanTransport` (one write per request, a keep-alive pool per host:
~0.5 ms less per call on loopback), and HTTPS endpoints such as the providers' own APIs through the clients'
default httpx transport, where the network dwarfs that saving and the battle-tested TLS stack is worth more.
``lean`` or ``httpx`` forces one for every endpoint. A proxy variable (``HTTPS_PROXY``, ``HTTP_PROXY``,
``ALL_PROXY``) always selects the default transport.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from canaryflow import tracing
from canaryflow.errors import ProviderError, ValidationFailed
from canaryflow.providers.base import Provider
from canaryflow.providers.endpoints import Connection, connection, get_endpoint

if TYPE_CHECKING:
    import httpx2

NO_KEY = "no-key"
"""Sent for an endpoint without ``api_key_env`` (a local server that takes no key): never None, which
would make the client read ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` and send that key to another host."""
_cache: dict[tuple[object, ...], Provider] = {}
_lock = threading.Lock()
_PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")


def _use_lean(base_url: str | None) -> bool:
    mode = os.environ.get("CANARYFLOW_PROVIDER_TRANSPORT", "auto").strip().lower()
    if mode not in ("auto", "lean", "httpx"):
        raise ValidationFailed(f"CANARYFLOW_PROVIDER_TRANSPORT={mode!r}: use auto, lean or httpx")
    if mode == "httpx" or any(os.environ.get(v) for v in _PROXY_VARS):
        return False
    return mode == "lean" or (base_url or "").lower().startswith("http://")


def _http_client(base_url: str | None, default: Callable[..., httpx2.AsyncClient] | None = None
                 ) -> httpx2.AsyncClient | None:
    """The clients' HTTP client: the lean transport, or None (the client's own default; see above); with
    tracing on, either one carries the ``traceparent`` hook (canaryflow.tracing)."""
    hooks = tracing.http_event_hooks()
    if not _use_lean(base_url):
        return default(event_hooks=hooks) if hooks and default is not None else None
    import httpx2

    from canaryflow.providers.transport import LeanTransport

    return httpx2.AsyncClient(transport=LeanTransport(), timeout=httpx2.Timeout(600.0, connect=5.0),
                              follow_redirects=True, event_hooks=hooks)


def _build_openai(conn: Connection) -> Provider:
    import openai

    from canaryflow.providers.openai_provider import OpenAIProvider

    client = openai.AsyncOpenAI(api_key=conn.api_key or NO_KEY, base_url=conn.base_url, max_retries=0,
                                default_headers=dict(conn.headers) or None,
                                http_client=_http_client(conn.base_url, openai.DefaultAsyncHttpxClient))
    return OpenAIProvider(client, name=conn.endpoint.name)


def _build_azure(conn: Connection) -> Provider:
    import openai

    from canaryflow.providers.openai_provider import OpenAIProvider

    if not conn.base_url:
        raise ProviderError(f"{conn.endpoint.name}: no base URL: set {conn.endpoint.base_url_env}",
                            error_type="bad_request", provider=conn.endpoint.name)
    if not conn.api_key:
        raise ProviderError(f"{conn.endpoint.name}: azure-openai needs api_key_env", error_type="auth",
                            provider=conn.endpoint.name)
    client = openai.AsyncAzureOpenAI(azure_endpoint=conn.base_url, api_version=conn.endpoint.api_version,
                                     api_key=conn.api_key, max_retries=0,
                                     default_headers=dict(conn.headers) or None,
                                     http_client=_http_client(conn.base_url, openai.DefaultAsyncHttpxClient))
    return OpenAIProvider(client, name=conn.endpoint.name)


def _build_anthropic(conn: Connection) -> Provider:
    import anthropic

    from canaryflow.providers.anthropic_provider import AnthropicProvider

    client = anthropic.AsyncAnthropic(api_key=conn.api_key or NO_KEY, base_url=conn.base_url, max_retries=0,
                                      default_headers=dict(conn.headers) or None,
                                      http_client=_http_client(conn.base_url,
                                                               anthropic.DefaultAsyncHttpxClient))
    return AnthropicProvider(client, name=conn.endpoint.name)


_BUILDERS: dict[str, Callable[[Connection], Provider]] = {
    "openai": _build_openai,
    "azure-openai": _build_azure,
    "anthropic": _build_anthropic,
}


def get_provider(name: str, *, base_url: str | None = None, api_key: str | None = None) -> Provider:
    """The adapter for endpoint ``name`` (``openai``, ``anthropic`` or one of the providers file).

    Args:
        name: the config's ``provider``.
        base_url: overrides the endpoint's base URL (``None``: the endpoint's, else the official URL).
        api_key: overrides the key from the endpoint's ``api_key_env`` variable.

    Raises:
        ProviderError: an unknown endpoint (``error_type="bad_request"``), or no API key (``"auth"``).
        ValidationFailed: the providers file is invalid.
    """
    conn = connection(get_endpoint(name), base_url=base_url, api_key=api_key)
    ep = conn.endpoint
    cache_key = (ep.name, ep.api, ep.api_version, conn.base_url, conn.api_key, conn.headers)
    with _lock:
        provider = _cache.get(cache_key)
        if provider is None:
            provider = _BUILDERS[conn.endpoint.api](conn)
            _cache[cache_key] = provider
    return provider


def clear_cache() -> None:
    """Forget every cached client (tests, key rotation)."""
    with _lock:
        _cache.clear()


__all__ = ["clear_cache", "get_provider"]
