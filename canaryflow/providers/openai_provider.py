"""OpenAI Chat Completions adapter over ``openai.AsyncOpenAI`` (any OpenAI-compatible endpoint).

The client is built with ``max_retries=0``: retries and fallbacks belong to :mod:`fallback`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai

from canaryflow.providers.base import ChatRequest, ChatResult, StreamChunk
from canaryflow.providers.errors import map_error

_PASSTHROUGH = ("temperature", "top_p", "stop", "presence_penalty", "frequency_penalty", "seed")


def openai_kwargs(parameters: dict[str, Any]) -> dict[str, Any]:
    """Config parameters as ``chat.completions.create`` keyword arguments."""
    kwargs: dict[str, Any] = {k: parameters[k] for k in _PASSTHROUGH if parameters.get(k) is not None}
    max_tokens = parameters.get("max_tokens", parameters.get("max_completion_tokens"))
    if max_tokens is not None:
        kwargs["max_completion_tokens"] = max_tokens
    response_format = parameters.get("response_format")
    if isinstance(response_format, str):
        kwargs["response_format"] = {"type": response_format}
    elif isinstance(response_format, dict):
        kwargs["response_format"] = response_format
    return kwargs


def _usage(usage: Any) -> tuple[int, int, int]:
    if usage is None:
        return 0, 0, 0
    details = getattr(usage, "prompt_tokens_details", None)
    cached = int(getattr(details, "cached_tokens", 0) or 0) if details is not None else 0
    return int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0), cached


class OpenAIProvider:
    """Chat completions through the official ``openai`` client."""

    name = "openai"

    def __init__(self, client: openai.AsyncOpenAI):
        self.client = client

    async def complete(self, req: ChatRequest, *, timeout: float) -> ChatResult:
        """One non-streaming chat completion."""
        try:
            resp = await self.client.chat.completions.create(
                model=req.model, messages=req.messages,  # type: ignore[arg-type]
                timeout=timeout, **openai_kwargs(req.parameters),
            )
        except Exception as exc:
            raise map_error(exc, provider=self.name, model=req.model) from exc
        choice = resp.choices[0] if resp.choices else None
        inp, out, cached = _usage(resp.usage)
        return ChatResult(
            text=(choice.message.content or "") if choice else "",
            finish_reason=str(choice.finish_reason) if choice and choice.finish_reason else "stop",
            input_tokens=inp, output_tokens=out, cached_input_tokens=cached,
            provider=self.name, model=resp.model or req.model, response_id=resp.id,
        )

    async def stream(self, req: ChatRequest, *, timeout: float) -> AsyncIterator[StreamChunk]:
        """Stream a chat completion; the last chunk carries the finish reason and the usage (whole text)."""
        finish: str | None = None
        usage: Any = None
        response_id: str | None = None
        model = req.model
        parts: list[str] = []
        try:
            stream = await self.client.chat.completions.create(  # type: ignore[call-overload]
                model=req.model, messages=req.messages,
                timeout=timeout, stream=True, stream_options={"include_usage": True},
                **openai_kwargs(req.parameters),
            )
            async with stream:
                async for chunk in stream:
                    response_id = response_id or chunk.id
                    model = chunk.model or model
                    if chunk.usage is not None:
                        usage = chunk.usage
                    for choice in chunk.choices:
                        if choice.finish_reason:
                            finish = str(choice.finish_reason)
                        text = choice.delta.content if choice.delta else None
                        if text:
                            parts.append(text)
                            yield StreamChunk(text=text)
        except Exception as exc:
            raise map_error(exc, provider=self.name, model=req.model) from exc
        inp, out, cached = _usage(usage)
        result = ChatResult(text="".join(parts), finish_reason=finish or "stop", input_tokens=inp,
                            output_tokens=out, cached_input_tokens=cached, provider=self.name, model=model,
                            response_id=response_id)
        yield StreamChunk(text="", finish_reason=result.finish_reason, usage=result)


__all__ = ["OpenAIProvider", "openai_kwargs"]
