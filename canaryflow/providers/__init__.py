"""Provider adapters over the official openai / anthropic clients, behind one small protocol.

``get_provider(name)`` gives the adapter; :mod:`.errors` maps foreign errors to ``ProviderError``;
:mod:`.translate` converts between the two APIs' formats; :mod:`.fallback` runs a resolution's chain;
:mod:`.pricing` turns usage into dollars.
"""

from canaryflow.providers.base import ChatRequest, ChatResult, Provider, StreamChunk
from canaryflow.providers.factory import get_provider

__all__ = ["ChatRequest", "ChatResult", "Provider", "StreamChunk", "get_provider"]
