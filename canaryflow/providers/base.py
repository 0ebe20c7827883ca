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

FINISH_REASONS = ("stop", "length", "content_filter", "tool_calls")


@dataclass
class ChatRequest:
    """A chat completion request in provider-neutral form."""

    model: str
    messages: list[dict[str, str]]
    parameters: dict[str, Any] = field(default_factory=dict)
    stream: bool = False


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


@dataclass
class StreamChunk:
    """A piece of a streamed completion; the last chunk carries ``finish_reason`` and ``usage``."""

    text: str
    finish_reason: str | None = None
    usage: ChatResult | None = None


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


__all__ = ["FINISH_REASONS", "ChatRequest", "ChatResult", "Provider", "StreamChunk"]
