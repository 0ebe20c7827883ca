"""The SDK's serving calls (``Client.complete`` / ``acomplete`` / ``stream`` / ``astream`` / ``feedback``).

A call sends a whole request body, as the gateway does: ``body`` (any field of the API — tools, response
formats, multimodal content, ...) or, without it, ``{"messages": messages, **parameters}``; ``api`` says which
API the body and the answer speak (``chat`` by default, ``messages`` for Anthropic's). The config is applied
to it (:mod:`canaryflow.domain.passthrough`), ``Completion.response`` is the provider's whole answer in that
API, and a stream's ``events()`` are its stream events.

Every provider call of a client runs on one background event loop (the *portal*), whether the caller is
synchronous or async: the providers' async HTTP clients stay on the loop they were created on, and shadow
mirrors keep running after the caller's own loop is gone. Async callers await the portal's future, so their
loop is never blocked.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from canaryflow import tracing
from canaryflow.domain.requests import check_request, plain_messages
from canaryflow.metrics.instruments import Labels, Metrics
from canaryflow.providers.base import CallerRequest, StreamChunk
from canaryflow.registry.traffic import Redactor, TrafficLog
from canaryflow.serving.stream import Stream
from canaryflow.serving.traffic import Completion, Resolver, TrafficPlane

T = TypeVar("T")
Messages = Sequence[Mapping[str, Any]]
Context = Mapping[str, Any] | None
Variables = Mapping[str, object] | None


class Portal:
    """An event loop in a daemon thread that runs coroutines for synchronous and foreign-loop callers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="canaryflow-sdk", daemon=True)
        self._thread.start()

    def submit(self, coro: Awaitable[T]) -> Future[T]:
        """Schedule ``coro`` on the portal loop."""
        return asyncio.run_coroutine_threadsafe(_wrap(coro), self.loop)

    def run(self, coro: Awaitable[T]) -> T:
        """Run ``coro`` on the portal loop and wait for its result."""
        return self.submit(coro).result()

    async def arun(self, coro: Awaitable[T]) -> T:
        """Await ``coro`` run on the portal loop, from any other loop."""
        return await asyncio.wrap_future(self.submit(coro))

    def close(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


async def _wrap(coro: Awaitable[T]) -> T:
    return await coro


def caller_request(key: str, messages: Messages, parameters: Mapping[str, Any] | None,
                   body: Mapping[str, Any] | None, api: str) -> CallerRequest:
    """The whole request an SDK call sends (``model`` = the config key), checked like the gateway's.

    Raises:
        ValidationFailed: naming the field.
    """
    full: dict[str, Any] = dict(body or {})
    if messages and not full.get("messages"):
        full["messages"] = [dict(m) for m in messages]
    for name, value in (parameters or {}).items():
        if value is not None:
            full.setdefault(name, value)
    full["model"] = key
    check_request(api, full)
    return CallerRequest(api, full)


class SdkTraffic:
    """The traffic plane of one :class:`canaryflow.Client`, with its portal loop."""

    def __init__(self, client: Resolver, *, registry: Any = None, traffic_rate: float = 0.1,
                 redactor: Redactor | None = None, retention: int = 100_000, metrics: Metrics | None = None,
                 timeout: float = 60.0, shadow_concurrency: int = 4, shadow_queue: int = 100) -> None:
        registry = registry if registry is not None else getattr(client, "registry", None)
        log = (TrafficLog(registry, rate=traffic_rate, redactor=redactor, retention=retention)
               if registry is not None and traffic_rate > 0 else None)
        self.plane = TrafficPlane(client, registry=registry, traffic_log=log, metrics=metrics,
                                  timeout=timeout, shadow_concurrency=shadow_concurrency,
                                  shadow_queue=shadow_queue)
        self.portal = Portal()
        tracing.configure()

    async def _complete(self, key: str, request: CallerRequest,
                        context: Mapping[str, Any] | None, variables: Mapping[str, object] | None,
                        parent: Any = None) -> Completion:
        with tracing.request(parent):
            res = await self.plane.aprepare(key, context=context, variables=variables)
            return await self.plane.acomplete(res, plain_messages(request.api, request.body),
                                              variables=variables, request=request)

    async def _stream(self, key: str, request: CallerRequest,
                      context: Mapping[str, Any] | None, variables: Mapping[str, object] | None,
                      parent: Any = None) -> Stream:
        with tracing.request(parent, end=False):  # the stream's end ends the span
            res = await self.plane.aprepare(key, context=context, variables=variables)
            return await self.plane.astream(res, plain_messages(request.api, request.body),
                                            variables=variables, request=request)

    def complete(self, key: str, messages: Messages = (), context: Context = None,
                 variables: Variables = None, *, parameters: Mapping[str, Any] | None = None,
                 body: Mapping[str, Any] | None = None, api: str = "chat") -> Completion:
        """See :meth:`canaryflow.Client.complete`."""
        request = caller_request(key, messages, parameters, body, api)
        return self.portal.run(self._complete(key, request, context, variables, tracing.capture()))

    async def acomplete(self, key: str, messages: Messages = (),
                        context: Context = None, variables: Variables = None,
                        *, parameters: Mapping[str, Any] | None = None,
                        body: Mapping[str, Any] | None = None, api: str = "chat") -> Completion:
        """See :meth:`canaryflow.Client.acomplete`."""
        request = caller_request(key, messages, parameters, body, api)
        return await self.portal.arun(self._complete(key, request, context, variables, tracing.capture()))

    def stream(self, key: str, messages: Messages = (), context: Context = None,
               variables: Variables = None, *, parameters: Mapping[str, Any] | None = None,
               body: Mapping[str, Any] | None = None, api: str = "chat") -> SyncStream:
        """See :meth:`canaryflow.Client.stream`."""
        request = caller_request(key, messages, parameters, {**(body or {}), "stream": True}, api)
        return SyncStream(self.portal, self.portal.run(self._stream(key, request, context, variables,
                                                                    tracing.capture())))

    async def astream(self, key: str, messages: Messages = (),
                      context: Context = None, variables: Variables = None,
                      *, parameters: Mapping[str, Any] | None = None,
                      body: Mapping[str, Any] | None = None, api: str = "chat") -> AsyncStream:
        """See :meth:`canaryflow.Client.astream`."""
        request = caller_request(key, messages, parameters, {**(body or {}), "stream": True}, api)
        stream = await self.portal.arun(self._stream(key, request, context, variables, tracing.capture()))
        return AsyncStream(self.portal, stream)

    def feedback(self, request_id: str, sentiment: str, comment: str | None = None) -> Labels:
        """See :meth:`canaryflow.Client.feedback`."""
        return self.plane.feedback(request_id, sentiment, comment)

    def track(self, request_id: str, event: str, value: float | None = None) -> Labels:
        """See :meth:`canaryflow.Client.track`."""
        return self.plane.track(request_id, event, value)

    def close(self) -> None:
        """Flush the traffic log, stop shadow workers and the portal loop."""
        self.portal.run(self.plane.close())
        self.portal.close()


class _StreamFacts:
    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self.request_id = stream.request_id
        self.version = stream.version
        self.variation = stream.variation
        self.fallback_index = stream.fallback_index

    @property
    def completion(self) -> Completion | None:
        """The finished completion (usage, cost, text) once the stream ended."""
        return self._stream.completion


class SyncStream(_StreamFacts):
    """Iterate text pieces of a stream from synchronous code (``for text in stream``)."""

    def __init__(self, portal: Portal, stream: Stream) -> None:
        super().__init__(stream)
        self._portal = portal
        self._gen = stream.__aiter__()

    def __iter__(self) -> Iterator[str]:
        for chunk in self._chunks():
            if chunk.text or chunk.usage is not None:
                yield chunk.text

    def events(self) -> Iterator[dict[str, Any]]:
        """The provider's stream events, whole, in the request's API (instead of text pieces)."""
        for chunk in self._chunks():
            yield from chunk.events

    def _chunks(self) -> Iterator[StreamChunk]:
        while True:
            try:
                chunk = self._portal.run(anext(self._gen))
            except StopAsyncIteration:
                return
            yield chunk

    def close(self) -> None:
        """Stop early (the request is counted as ended by the caller)."""
        self._portal.run(self._stream.aclose())


class AsyncStream(_StreamFacts):
    """Iterate text pieces of a stream from async code (``async for text in stream``)."""

    def __init__(self, portal: Portal, stream: Stream) -> None:
        super().__init__(stream)
        self._portal = portal
        self._gen = stream.__aiter__()

    async def __aiter__(self) -> AsyncIterator[str]:
        async for chunk in self._chunks():
            if chunk.text or chunk.usage is not None:
                yield chunk.text

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The provider's stream events, whole, in the request's API (instead of text pieces)."""
        async for chunk in self._chunks():
            for event in chunk.events:
                yield event

    async def _chunks(self) -> AsyncIterator[StreamChunk]:
        while True:
            try:
                chunk = await self._portal.arun(anext(self._gen))
            except StopAsyncIteration:
                return
            yield chunk

    async def aclose(self) -> None:
        """Stop early (the request is counted as ended by the caller)."""
        await self._portal.arun(self._stream.aclose())


__all__ = ["AsyncStream", "Context", "Messages", "Portal", "SdkTraffic", "SyncStream", "Variables"]
