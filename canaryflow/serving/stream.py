"""A streamed completion of the traffic plane (see :mod:`canaryflow.serving.traffic`)."""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from canaryflow import tracing
from canaryflow.domain.resolution import Resolution
from canaryflow.errors import ProviderError, ValidationFailed
from canaryflow.providers.base import CallerRequest, ChatResult, StreamChunk
from canaryflow.providers.fallback import check_answer

if TYPE_CHECKING:
    from canaryflow.serving.traffic import Completion, TrafficPlane

_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(int.from_bytes(secrets.token_bytes(4), "big"))


def counted_error(exc: BaseException) -> ProviderError:
    """How a request that ``exc`` ended is counted: a provider's error as it is; a request refused before
    any provider call (a field the config's provider cannot take) as ``bad_request``; anything else
    ``other``."""
    if isinstance(exc, ProviderError):
        return exc
    kind = "bad_request" if isinstance(exc, ValidationFailed) else "other"
    return ProviderError(str(exc) or type(exc).__name__, error_type=kind)


def new_request_id() -> str:
    """A request id unique across processes (random per-process prefix + counter), 32 hex digits;
    cheaper than ``uuid4`` (no system call per request)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"



class Stream:
    """A streamed completion: ``async for chunk in stream`` yields :class:`StreamChunk` text pieces.

    ``request_id``, ``version``, ``variation`` and ``fallback_index`` are known before the first chunk is
    read; ``completion`` is set when the stream ended. The request is counted exactly once: on the last
    chunk, on a provider error, or when the reader stops early (``aclose``).
    """

    def __init__(self, plane: TrafficPlane, res: Resolution, caller: list[dict[str, str]],
                 variables: Mapping[str, object] | None = None, request: CallerRequest | None = None) -> None:
        self._plane = plane
        self._request = request
        self._variables = variables
        self.resolution = res
        self._caller = caller
        self.request_id = plane.new_request_id(res)
        self.version = res.version
        self.variation = res.variation
        self.config_key = res.config_key
        self.fallback_index: int | None = None
        self.fallback_reason: str | None = None
        self.completion: Completion | None = None
        self._started = time.perf_counter()
        self._ttfc: float | None = None
        self._first: StreamChunk | None = None
        self._iter: AsyncIterator[StreamChunk] | None = None
        self._pieces: list[str] = []
        self._done = False
        self._trace = tracing.current()

    async def _open(self) -> None:
        try:
            plane = self._plane
            if self._request is None:
                served = await plane.runner.stream(self.resolution, self._caller, timeout=plane.timeout)
            else:
                served = await plane.runner.stream(self.resolution, self._caller, timeout=plane.timeout,
                                                   request=self._request)
            self.fallback_index = served.fallback_index
            self.fallback_reason = served.reason
            chunks = served.chunks
            self._iter = chunks
            self._first = await anext(chunks)
            self._ttfc = time.perf_counter() - self._started
        except StopAsyncIteration:
            self._first = StreamChunk("", "stop")
        except BaseException as exc:
            self._fail(exc)
            raise

    def _fail(self, exc: BaseException) -> None:
        if self._done:
            return
        self._done = True
        err = counted_error(exc)
        err.request_id = self.request_id
        primary = self.fallback_reason if self.fallback_index is not None else None
        with tracing.resume(self._trace):
            self._plane._count_error(self.resolution, err, self._started, self.request_id, self._caller,
                                     self._variables, primary_error=primary)

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[StreamChunk]:
        try:
            chunk = self._first
            finish = "stop"
            while chunk is not None:
                self._pieces.append(chunk.text)
                finish = chunk.finish_reason or finish
                if chunk.usage is not None:
                    self._end(chunk)  # counted before the last chunk leaves, so a hang-up cannot lose it
                yield chunk
                if self._done or self._iter is None:
                    break
                try:
                    chunk = await anext(self._iter)
                except StopAsyncIteration:
                    chunk = None
            if not self._done:
                self._end(StreamChunk("", finish))
        except BaseException as exc:
            self._fail(exc)
            raise

    @property
    def provider_request_id(self) -> str | None:
        """The provider's id of the request (known with the first chunk, before the answer is sent)."""
        return self._first.provider_request_id if self._first is not None else None

    @property
    def served_by(self) -> str:
        """``provider/model`` of the target streaming the answer (the primary's, or the fallback's)."""
        res = self.resolution
        if self.fallback_index is None:
            return f"{res.provider}/{res.model}"
        target = res.fallback[self.fallback_index]
        return f"{target['provider']}/{target['model']}"

    def _end(self, last: StreamChunk) -> None:
        if self._done:
            return
        self._done = True
        usage = last.usage
        res = self.resolution
        text = "".join(self._pieces)
        if usage is None:
            usage = ChatResult(text, last.finish_reason or "stop", 0, 0, 0, res.provider, res.model, None)
        provider, model = res.provider, res.model
        if self.fallback_index is not None:
            target = res.fallback[self.fallback_index]
            provider, model = str(target["provider"]), str(target["model"])
        result = replace(usage, text=text, provider=provider, model=model,
                         finish_reason=usage.finish_reason or last.finish_reason or "stop")
        # output checks on a stream run at its end and only record: its text has already reached the user
        failed = (check_answer(res.checker, result)
                  if res.checker is not None and self.fallback_index is None else None)
        with tracing.resume(self._trace):
            self.completion = self._plane._finish(res, self._caller, result, self.fallback_index,
                                                  self.fallback_reason, self._started, self.request_id,
                                                  self._ttfc, self._variables, failed_check=failed)

    async def aclose(self) -> None:
        """Stop reading early; the request is counted as an error of type ``other`` if it had not ended."""
        if not self._done:
            self._fail(ProviderError("stream closed by the caller before it ended"))
        if self._iter is not None and hasattr(self._iter, "aclose"):
            await self._iter.aclose()


__all__ = ["Stream", "counted_error", "new_request_id"]
