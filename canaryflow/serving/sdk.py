"""The SDK's serving calls (``Client.complete`` / ``acomplete`` / ``stream`` / ``astream`` / ``feedback``).

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
from canaryflow.metrics.instruments import Labels, Metrics
from canaryflow.registry.traffic import Redactor, TrafficLog
from canaryflow.serving.stream import Stream
from canaryflow.serving.traffic import Completion, Resolver, TrafficPlane

T = TypeVar("T")
Messages = Sequence[Mapping[str, str]]
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

    async def _complete(self, key: str, messages: Messages,
                        context: Mapping[str, Any] | None, variables: Mapping[str, object] | None,
                        parameters: Mapping[str, Any] | None, parent: Any = None) -> Completion:
        with tracing.request(parent):
            res = await self.plane.aprepare(key, context=context, variables=variables, parameters=parameters)
            return await self.plane.acomplete(res, messages, variables=variables)

    async def _stream(self, key: str, messages: Messages,
                      context: Mapping[str, Any] | None, variables: Mapping[str, object] | None,
                      parameters: Mapping[str, Any] | None, parent: Any = None) -> Stream:
        with tracing.request(parent, end=False):  # the stream's end ends the span
            res = await self.plane.aprepare(key, context=context, variables=variables, parameters=parameters)
            return await self.plane.astream(res, messages, variables=variables)

    def complete(self, key: str, messages: Messages, context: Context = None,
                 variables: Variables = None, *,
                 parameters: Mapping[str, Any] | None = None) -> Completion:
        """See :meth:`canaryflow.Client.complete`."""
        return self.portal.run(self._complete(key, messages, context, variables, parameters,
                                              tracing.capture()))

    async def acomplete(self, key: str, messages: Messages,
                        context: Context = None, variables: Variables = None,
                        *, parameters: Mapping[str, Any] | None = None) -> Completion:
        """See :meth:`canaryflow.Client.acomplete`."""
        return await self.portal.arun(self._complete(key, messages, context, variables, parameters,
                                                     tracing.capture()))

    def stream(self, key: str, messages: Messages, context: Context = None,
               variables: Variables = None, *,
               parameters: Mapping[str, Any] | None = None) -> SyncStream:
        """See :meth:`canaryflow.Client.stream`."""
        return SyncStream(self.portal, self.portal.run(self._stream(key, messages, context, variables,
                                                                    parameters, tracing.capture())))

    async def astream(self, key: str, messages: Messages,
                      context: Context = None, variables: Variables = None,
                      *, parameters: Mapping[str, Any] | None = None) -> AsyncStream:
        """See :meth:`canaryflow.Client.astream`."""
        stream = await self.portal.arun(self._stream(key, messages, context, variables, parameters,
                                                     tracing.capture()))
        return AsyncStream(self.portal, stream)

    def feedback(self, request_id: str, sentiment: str, comment: str | None = None) -> Labels:
        """See :meth:`canaryflow.Client.feedback`."""
        return self.plane.feedback(request_id, sentiment, comment)

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
        while True:
            try:
                chunk = self._portal.run(anext(self._gen))
            except StopAsyncIteration:
                return
            yield chunk.text

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
        while True:
            try:
                chunk = await self._portal.arun(anext(self._gen))
            except StopAsyncIteration:
                return
            yield chunk.text

    async def aclose(self) -> None:
        """Stop early (the request is counted as ended by the caller)."""
        await self._portal.arun(self._stream.aclose())


__all__ = ["AsyncStream", "Context", "Messages", "Portal", "SdkTraffic", "SyncStream", "Variables"]
