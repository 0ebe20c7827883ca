"""OpenAI Chat Completions adapter over ``openai.AsyncOpenAI`` (any OpenAI-compatible endpoint).

The client is built with ``max_retries=0``: retries and fallbacks belong to :mod:`fallback`.

A plain completion goes through the client's ``post`` (it builds, authenticates and sends the request and
raises its typed errors) with the JSON body as given and the JSON answer read as is: the request-parameter
transform and the pydantic response models cost ~0.6 ms per request and the traffic plane only needs the
text, finish reason, usage, model and id. Streams use ``chat.completions.create(stream=True)``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai

from canaryflow.domain import fastjson
from canaryflow.providers.base import ChatRequest, ChatResult, StreamChunk
from canaryflow.providers.errors import map_error
from canaryflow.providers.raw import metered_stream, result_of

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


def _raw_usage(usage: Any) -> tuple[int, int, int]:
    if not isinstance(usage, dict):
        return 0, 0, 0
    details = usage.get("prompt_tokens_details")
    cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), cached


def _path(api: str) -> str:
    return "/responses" if api == "responses" else "/chat/completions"


_CONTENT_LENGTH = "Content-Length"


class _Direct:
    """The plain ``AsyncOpenAI``'s http client, base URL and headers, with each path's URL and merged
    request headers built once (``httpx2.AsyncClient.build_request`` redoes both per request)."""

    def __init__(self, http: httpx2.AsyncClient, base: str, headers: dict[str, str]) -> None:
        self.http = http
        self.base = base
        self.headers = headers
        self._routes: dict[str, tuple[httpx2.URL, httpx2.Headers]] = {}

    def route(self, path: str) -> tuple[httpx2.URL, httpx2.Headers]:
        """The URL of ``path`` and the headers every request to it carries (``Host`` first, as httpx2
        puts it)."""
        found = self._routes.get(path)
        if found is None:
            url = httpx2.URL(self.base + path)
            merged = httpx2.Headers(self.http.headers)
            merged.update(self.headers)
            head = httpx2.Headers([(b"Host", url.netloc), *merged.raw])
            found = self._routes[path] = (url, head)
        return found


class OpenAIProvider:
    """Chat completions through the official ``openai`` client."""

    name = "openai"
    api = "openai"  # the API it speaks (chat / responses), whatever the endpoint is called

    def __init__(self, client: openai.AsyncOpenAI, *, name: str = "openai"):
        self.client = client
        self._direct_path: _Direct | bool | None = False
        self._timeouts: dict[float, dict[str, float | None]] = {}
        self.name = name  # the endpoint's name: what results, metrics and prices are labelled with

    def _direct(self) -> _Direct | None:
        """What posting a pass-through body with the client's own HTTP client and credentials needs,
        skipping the per-request builders (the ``openai`` client's options, URL merge, header assembly ≈
        0.3 ms; ``httpx2``'s URL parse and header merge); None for clients that route by deployment (Azure)
        or are not the plain ``AsyncOpenAI``."""
        if self._direct_path is False:
            c = self.client
            if type(c) is openai.AsyncOpenAI:
                merged = {**c.default_headers, **c.auth_headers}
                self._direct_path = _Direct(c._client, str(c.base_url).rstrip("/"),
                                            {k: v for k, v in merged.items() if isinstance(v, str)})
            else:
                self._direct_path = None
        return self._direct_path if isinstance(self._direct_path, _Direct) else None

    def _timeout(self, timeout: float) -> dict[str, float | None]:
        found = self._timeouts.get(timeout)
        if found is None:
            found = self._timeouts[timeout] = httpx2.Timeout(timeout).as_dict()
        return found

    async def _post_direct(self, direct: _Direct, path: str, body: dict[str, Any],
                           timeout: float) -> httpx2.Response:
        """POST ``body`` as the http client's ``post`` would (its default headers merged under the
        client's, ``Host``, ``Content-Length``, its cookies, the timeout), sent with its ``send`` — so
        event hooks (tracing), redirects and the transport stay the client's."""
        url, head = direct.route(path)
        payload = fastjson.dumps(body)
        headers = httpx2.Headers(head)
        headers[_CONTENT_LENGTH] = str(len(payload))
        request = httpx2.Request("POST", url, headers=headers, stream=httpx2.ByteStream(payload),
                                 extensions={"timeout": self._timeout(timeout)})
        http = direct.http
        if http.cookies:
            http.cookies.set_cookie_header(request)
        return await http.send(request)

    async def complete(self, req: ChatRequest, *, timeout: float) -> ChatResult:
        """One non-streaming chat completion (``req.body`` as is, when given)."""
        if req.body is not None:
            try:
                direct = self._direct()
                if direct is None:
                    raw = await self.client.post(_path(req.api), body=req.body, cast_to=httpx2.Response,
                                                 options={"timeout": timeout})
                else:
                    raw = await self._post_direct(direct, _path(req.api), req.body, timeout)
                    if raw.status_code >= 400:
                        raise self.client._make_status_error_from_response(raw)
                data = fastjson.loads(raw.content)
            except Exception as exc:
                raise map_error(exc, provider=self.name, model=req.model) from exc
            return result_of(self.name, req, data, raw.content, raw.headers.get("x-request-id"))
        body = {"model": req.model, "messages": req.messages, **openai_kwargs(req.parameters)}
        try:
            raw = await self.client.post("/chat/completions", body=body, cast_to=httpx2.Response,
                                         options={"timeout": timeout})
            data = json.loads(raw.content)
            choices = data.get("choices") or [None]
            choice = choices[0] if isinstance(choices[0], dict) else {}
            message = choice.get("message") or {}
            inp, out, cached = _raw_usage(data.get("usage"))
            return ChatResult(
                text=str(message.get("content") or ""),
                finish_reason=str(choice.get("finish_reason") or "stop"),
                input_tokens=inp, output_tokens=out, cached_input_tokens=cached,
                provider=self.name, model=str(data.get("model") or req.model), response_id=data.get("id"),
            )
        except Exception as exc:
            raise map_error(exc, provider=self.name, model=req.model) from exc

    async def stream(self, req: ChatRequest, *, timeout: float) -> AsyncIterator[StreamChunk]:
        """Stream a chat completion; the last chunk carries the finish reason and the usage (whole text).

        With ``req.body`` each chunk carries the provider's event as received (the body must ask for usage:
        ``stream_options.include_usage``)."""
        if req.body is not None:
            try:
                events = await self.client.post(_path(req.api), body=req.body, cast_to=object, stream=True,
                                                stream_cls=openai.AsyncStream[object],
                                                options={"timeout": timeout})
                async for chunk in metered_stream(self.name, req, events.__aiter__(),
                                                  events.response.headers.get("x-request-id")):
                    yield chunk
            except Exception as exc:
                raise map_error(exc, provider=self.name, model=req.model) from exc
            return
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
