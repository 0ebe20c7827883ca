"""``get_provider(name)``: the adapter for a config's ``provider``, with clients cached per endpoint.

Base URLs and keys come from the providers' standard variables (``OPENAI_BASE_URL``/``OPENAI_API_KEY``,
``ANTHROPIC_BASE_URL``/``ANTHROPIC_API_KEY``), read on every call, so a changed environment gets a new
client; clients are cached per (name, base URL, key) and built with ``max_retries=0``.

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

if TYPE_CHECKING:
    import httpx2

_ENV = {
    "openai": ("OPENAI_BASE_URL", "OPENAI_API_KEY"),
    "anthropic": ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"),
}
_cache: dict[tuple[str, str | None, str], Provider] = {}
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


def _build_openai(base_url: str | None, api_key: str) -> Provider:
    import openai

    from canaryflow.providers.openai_provider import OpenAIProvider

    return OpenAIProvider(openai.AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0,
                                            http_client=_http_client(base_url,
                                                                     openai.DefaultAsyncHttpxClient)))


def _build_anthropic(base_url: str | None, api_key: str) -> Provider:
    import anthropic

    from canaryflow.providers.anthropic_provider import AnthropicProvider

    return AnthropicProvider(anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=0,
                                                     http_client=_http_client(
                                                         base_url, anthropic.DefaultAsyncHttpxClient)))


_BUILDERS: dict[str, Callable[[str | None, str], Provider]] = {
    "openai": _build_openai,
    "anthropic": _build_anthropic,
}


def get_provider(name: str, *, base_url: str | None = None, api_key: str | None = None) -> Provider:
    """The adapter for provider ``name`` (``openai`` or ``anthropic``).

    Args:
        name: the config's ``provider``.
        base_url: overrides the ``*_BASE_URL`` variable (``None``: the variable, else the official URL).
        api_key: overrides the ``*_API_KEY`` variable.

    Raises:
        ValidationFailed: an unknown provider name.
        ProviderError: no API key (``error_type="auth"``).
    """
    if name not in _BUILDERS:
        raise ValidationFailed(f"unknown provider {name!r}: use one of {sorted(_BUILDERS)}",
                               source="provider")
    url_env, key_env = _ENV[name]
    url = base_url or os.environ.get(url_env) or None
    key = api_key or os.environ.get(key_env)
    if not key:
        raise ProviderError(f"{name}: no API key: set {key_env}", error_type="auth", provider=name)
    cache_key = (name, url, key)
    with _lock:
        provider = _cache.get(cache_key)
        if provider is None:
            provider = _BUILDERS[name](url, key)
            _cache[cache_key] = provider
    return provider


def clear_cache() -> None:
    """Forget every cached client (tests, key rotation)."""
    with _lock:
        _cache.clear()


__all__ = ["clear_cache", "get_provider"]
