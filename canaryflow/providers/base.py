"""The one small protocol every provider adapter implements, and the data it exchanges.

``ChatRequest.parameters`` holds the config's sampling parameters as plain keyword arguments
(``temperature``, ``top_p``, ``max_tokens``, ``stop``, ``presence_penalty``, ``frequency_penalty``,
``seed``, ``response_format`` = ``"text" | "json_object"``); each adapter translates them for its API.

Token counts follow the OpenAI convention: ``input_tokens`` counts every prompt token, cached ones
included; ``cached_input_tokens`` is the part served from the provider's prompt cache.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from canaryflow.domain.answers import ToolCall

FINISH_REASONS = ("stop", "length", "content_filter", "tool_calls")


@dataclass
class ChatRequest:
    """A chat completion request in provider-neutral form."""

    model: str
    messages: list[dict[str, str]]
    parameters: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    body: dict[str, Any] | None = None
    """The whole request body for the provider (pass-through); when set, adapters send it as is to the
    endpoint of ``api`` and ignore ``messages``/``parameters``."""
    api: str = "chat"
    """``chat``, ``responses`` (OpenAI) or ``messages`` (Anthropic): the endpoint ``body`` is for."""
    headers: dict[str, str] = field(default_factory=dict)
    """API headers to send with ``body`` (the caller's ``anthropic-beta``/``anthropic-version``, same API)."""


@dataclass(frozen=True)
class CallerRequest:
    """The caller's whole request body and the API it speaks (``chat``, ``responses``, ``messages``)."""

    api: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    """The caller's headers of its API that the provider's API reads (see
    :data:`canaryflow.domain.shaping.API_HEADERS`)."""


@dataclass
class ChatResult:
    """A finished completion with its usage."""

    text: str
    finish_reason: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    provider: str
    model: str
    response_id: str | None
    raw: dict[str, Any] | None = None
    """The provider's whole answer (pass-through requests only), in the caller's API once served."""
    reasoning_tokens: int = 0
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_results: tuple[str, ...] = ()
    """:func:`~canaryflow.domain.answers.check_tool_call` of each tool call (when the request had tools)."""
    raw_bytes: bytes | None = None
    """``raw`` as the provider sent it (kept while the answer is the caller's unchanged)."""
    provider_request_id: str | None = None
    """The provider's id of the request (its ``request-id`` / ``x-request-id`` header), for its support."""


@dataclass
class StreamChunk:
    """A piece of a streamed completion; the last chunk carries ``finish_reason`` and ``usage``."""

    text: str
    finish_reason: str | None = None
    usage: ChatResult | None = None
    events: tuple[dict[str, Any], ...] = ()
    """The provider's stream events (parsed SSE data) behind this piece (pass-through requests only)."""
    provider_request_id: str | None = None
    """The provider's id of the request (its ``request-id`` / ``x-request-id``), on the first chunk."""


@runtime_checkable
class Provider(Protocol):
    """A chat provider reached through its official client."""

    name: str

    async def complete(self, req: ChatRequest, *, timeout: float) -> ChatResult:
        """Run one completion; failures raise :class:`canaryflow.errors.ProviderError`."""
        ...

    def stream(self, req: ChatRequest, *, timeout: float) -> AsyncIterator[StreamChunk]:
        """Stream one completion; failures raise :class:`canaryflow.errors.ProviderError`."""
        ...


__all__ = ["FINISH_REASONS", "CallerRequest", "ChatRequest", "ChatResult", "Provider", "StreamChunk"]
