"""Run a resolution's primary provider, then its fallback chain, with a bounded retry and circuit breakers.

For each target in order (primary, then ``resolution.fallback``):

* an open circuit (:class:`~canaryflow.providers.breaker.CircuitBreaker`) skips the target;
* a retryable failure (rate_limit, timeout, connection, server_error) is retried ``retries`` times,
  after ``retry-after`` when the provider sent one (skipped when it exceeds ``max_retry_after``), then the
  next target serves;
* a bad_request / auth / content_filter / other failure of the primary is raised at once — a fallback
  would not help; the same failure of a fallback target moves on to the next one;
* streams fall back only before their first chunk; a failure after it reaches the caller;
* a non-streamed answer that fails the resolution's output checks (:mod:`canaryflow.domain.checks`) counts
  as a failed attempt of that target with the check's reason (``invalid_json``, ``schema_mismatch``, …) and
  the next target serves; a ``refusal`` is only recorded (:attr:`Served.failed_check`, the answer is kept)
  unless the config sets ``route_refusals``. A check failure is not a provider fault: breakers ignore it.

The result says which fallback served (``None`` = the primary) and every attempt, so metrics can count
``canaryflow_fallbacks_total{reason}`` with :attr:`Served.reason`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from canaryflow import tracing
from canaryflow.domain.checks import Checker, provider_refused
from canaryflow.domain.passthrough import Decisions
from canaryflow.domain.resolution import Resolution
from canaryflow.domain.shaping import (
    EventShaper,
    provider_api,
    shape_answer,
    shape_headers,
    shape_request,
    wants_usage,
)
from canaryflow.errors import AllProvidersFailed, ProviderError, ValidationFailed
from canaryflow.providers.base import CallerRequest, ChatRequest, ChatResult, Provider, StreamChunk
from canaryflow.providers.breaker import CircuitBreaker
from canaryflow.providers.factory import get_provider

CIRCUIT_OPEN = "circuit_open"


@dataclass(frozen=True)
class Target:
    """One provider/model/parameters to try; ``fallback_index`` is ``None`` for the primary."""

    provider: str
    model: str
    parameters: dict[str, Any]
    fallback_index: int | None
    scope: tuple[str, str] = ("", "")
    """(config, variation) whose circuit for this provider/model the call counts in."""


@dataclass(frozen=True)
class Attempt:
    """One call (or one skip): ``error_type`` is ``None`` on success, ``circuit_open`` when skipped."""

    provider: str
    model: str
    fallback_index: int | None
    error_type: str | None
    status_code: int | None = None
    duration_s: float = 0.0


def _reason(fallback_index: int | None, attempts: Sequence[Attempt]) -> str | None:
    if fallback_index is None:
        return None
    return next((a.error_type for a in attempts if a.fallback_index is None and a.error_type), "other")


class Served(NamedTuple):
    """A completed call: the result, which fallback served it (``None``: the primary), every attempt, and
    the output check the served answer failed when it was kept anyway (a refusal that is not re-routed)."""

    result: ChatResult
    fallback_index: int | None
    attempts: list[Attempt]

    @property
    def reason(self) -> str | None:
        """Why the primary did not serve (its error type or ``circuit_open``); ``None`` if it did."""
        return _reason(self.fallback_index, self.attempts)

    @property
    def failed_check(self) -> str | None:
        """The output check the served answer failed (it was kept: a refusal not re-routed), or ``None``."""
        return self.attempts[-1].error_type if self.attempts else None


class StreamServed(NamedTuple):
    """A started stream: its chunks (the first one already received), which fallback, every attempt."""

    chunks: AsyncIterator[StreamChunk]
    fallback_index: int | None
    attempts: list[Attempt]

    @property
    def reason(self) -> str | None:
        """Why the primary did not serve; ``None`` if it did."""
        return _reason(self.fallback_index, self.attempts)


def targets(resolution: Resolution) -> list[Target]:
    """The primary then each fallback, fallback parameters merged over the primary's."""
    scope = (resolution.config_key, resolution.variation)
    out = [Target(resolution.provider, resolution.model, dict(resolution.parameters), None, scope)]
    for i, fb in enumerate(resolution.fallback):
        params = {**resolution.parameters, **(fb.get("parameters") or {})}
        out.append(Target(str(fb["provider"]), str(fb["model"]), params, i, scope))
    return out


class FallbackRunner:
    """Calls providers for resolutions with retry, fallback and circuit breaking."""

    def __init__(self, *, retries: int = 1, breaker: CircuitBreaker | None = None,
                 max_retry_after: float = 2.0, backoff_s: float = 0.1, timeout: float = 60.0,
                 provider_factory: Callable[[str], Provider] = get_provider,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.retries = max(0, retries)
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self.max_retry_after = max_retry_after
        self.backoff_s = backoff_s
        self.timeout = timeout
        self.provider_factory = provider_factory
        self.sleep = sleep

    async def complete(self, resolution: Resolution, caller_messages: Sequence[dict[str, str]], *,
                       timeout: float | None = None, request: CallerRequest | None = None) -> Served:
        """Complete with the first target that answers.

        With ``request`` the caller's whole body is sent (the config applied, translated when the target's
        API differs) and ``result.raw`` is the answer in the caller's API; ``caller_messages`` is unused.

        Raises:
            ValidationFailed: the request cannot be carried to the primary's API (a field is named).
            ProviderError: the primary failed with a non-retryable error (bad_request, auth, …).
            AllProvidersFailed: every target failed or had its circuit open.
        """
        messages = _neutral_messages(resolution, caller_messages, request)
        attempts: list[Attempt] = []
        errors: list[ProviderError] = []
        checker = resolution.checker
        for target in targets(resolution):
            result = await self._run_target(target, messages, attempts, errors, timeout, stream=False,
                                            request=request, resolution=resolution)
            if isinstance(result, ChatResult):
                failed = None if checker is None else check_answer(checker, result)
                if failed is None:
                    return Served(result, target.fallback_index, attempts)
                attempts[-1] = replace(attempts[-1], error_type=failed)
                tracing.event("canaryflow.output_check_failed", {"canaryflow.check": failed,
                                                                 "gen_ai.provider.name": target.provider,
                                                                 "gen_ai.request.model": target.model})
                if checker is not None and not checker.reroutes(failed):
                    return Served(result, target.fallback_index, attempts)  # kept: see failed_check
        raise self._all_failed(attempts, errors) from (errors[-1] if errors else None)

    async def stream(self, resolution: Resolution, caller_messages: Sequence[dict[str, str]], *,
                     timeout: float | None = None, request: CallerRequest | None = None) -> StreamServed:
        """Start a stream with the first target that yields a first chunk (fallback only before it).

        Raises:
            ProviderError: as :meth:`complete`; later failures are raised while iterating ``chunks``.
        """
        messages = _neutral_messages(resolution, caller_messages, request)
        attempts: list[Attempt] = []
        errors: list[ProviderError] = []
        for target in targets(resolution):
            started = await self._run_target(target, messages, attempts, errors, timeout, stream=True,
                                             request=request, resolution=resolution)
            if isinstance(started, _Started):
                return StreamServed(self._rest(target, started), target.fallback_index, attempts)
        raise self._all_failed(attempts, errors) from (errors[-1] if errors else None)

    async def _run_target(self, target: Target, messages: list[dict[str, str]], attempts: list[Attempt],
                          errors: list[ProviderError], timeout: float | None, *,
                          stream: bool, request: CallerRequest | None = None,
                          resolution: Resolution | None = None) -> ChatResult | _Started | None:
        breaker = self.breaker
        if not breaker.allow(target.provider, target.model, target.scope):
            attempts.append(Attempt(target.provider, target.model, target.fallback_index, CIRCUIT_OPEN))
            tracing.event("canaryflow.circuit_open", {"gen_ai.provider.name": target.provider,
                                                      "gen_ai.request.model": target.model})
            return None
        req: ChatRequest | None = None
        limit = timeout if timeout is not None else self.timeout
        for try_number in range(self.retries + 1):
            began = time.monotonic()
            try:
                provider = self.provider_factory(target.provider)
                if req is None:
                    if request is None or resolution is None:
                        req = ChatRequest(target.model, messages, target.parameters, stream=stream)
                    else:
                        try:
                            req = _shaped(request, resolution, target, provider, messages, stream)
                        except ValidationFailed:
                            if target.fallback_index is None:
                                raise
                            attempts.append(Attempt(target.provider, target.model, target.fallback_index,
                                                    "bad_request"))
                            return None
                with tracing.attempt(target.provider, target.model, target.fallback_index,
                                     try_number) as span:
                    if stream:
                        iterator = provider.stream(req, timeout=limit)
                        if request is not None:
                            iterator = _reshaped(iterator, request, req.api)
                        try:
                            first: StreamChunk | None = await anext(iterator)
                        except StopAsyncIteration:
                            first = None
                        outcome: ChatResult | _Started = _Started(iterator, first)
                    else:
                        outcome = await provider.complete(req, timeout=limit)
                        span.result(outcome)
                        if request is not None and outcome.raw is not None and request.api != req.api:
                            outcome = replace(outcome, raw=shape_answer(request.api, req.api, outcome.raw),
                                              raw_bytes=None)
            except ProviderError as exc:
                errors.append(exc)
                attempts.append(Attempt(target.provider, target.model, target.fallback_index, exc.error_type,
                                        exc.status_code, time.monotonic() - began))
                breaker.record(target.provider, target.model, not exc.retryable, target.scope)
                if not exc.retryable:
                    if target.fallback_index is None:
                        raise
                    return None
                last = try_number == self.retries
                delay = exc.retry_after if exc.retry_after is not None else self.backoff_s
                if (last or delay > self.max_retry_after
                        or not breaker.allow(target.provider, target.model, target.scope)):
                    return None
                await self.sleep(delay)
                continue
            attempts.append(Attempt(target.provider, target.model, target.fallback_index, None, None,
                                    time.monotonic() - began))
            if not stream:
                breaker.record(target.provider, target.model, True, target.scope)
            return outcome
        return None

    async def _rest(self, target: Target, started: _Started) -> AsyncIterator[StreamChunk]:
        iterator = started.iterator
        ok = True
        try:
            if started.first is not None:
                yield started.first
                async for chunk in iterator:
                    yield chunk
        except ProviderError as exc:
            ok = not exc.retryable
            raise
        finally:
            self.breaker.record(target.provider, target.model, ok, target.scope)
            close = getattr(iterator, "aclose", None)
            if close is not None:
                await close()

    @staticmethod
    def _all_failed(attempts: list[Attempt], errors: Sequence[ProviderError] = ()) -> AllProvidersFailed:
        tried = [a for a in attempts if a.error_type]
        last = tried[-1] if tried else None
        summary = "; ".join(f"{a.provider} {a.model}: {a.error_type}"
                            + (f" ({a.status_code})" if a.status_code else "") for a in tried)
        error_type = last.error_type if last and last.error_type != CIRCUIT_OPEN else "server_error"
        primary = next((a.error_type for a in attempts if a.fallback_index is None and a.error_type), None)
        ending = errors[-1] if errors and last is not None and last.error_type == errors[-1].error_type \
            else None  # the last attempt's own error (its Retry-After, when it was rate limited)
        return AllProvidersFailed(f"all providers failed: {summary}", error_type=error_type or "other",
                                  primary_error_type=primary,
                                  status_code=last.status_code if last else None,
                                  provider=last.provider if last else None,
                                  model=last.model if last else None,
                                  retry_after=ending.retry_after if ending is not None else None)


def _neutral_messages(res: Resolution, caller: Sequence[dict[str, str]], request: CallerRequest | None
                      ) -> list[dict[str, str]]:
    """The config's then the caller's messages, for a request without a whole body (a pass-through request
    sends the caller's body with the config applied instead)."""
    return [] if request is not None else [*map(dict, res.messages), *map(dict, caller)]


def check_answer(checker: Checker, result: ChatResult) -> str | None:
    """The output check ``result`` fails (see :meth:`Checker.check`), or ``None``."""
    return checker.check(result.text, finish_reason=result.finish_reason, tool_calls=len(result.tool_calls),
                         refused=provider_refused(result.raw))


def _shaped(request: CallerRequest, res: Resolution, target: Target, provider: Provider,
            messages: list[dict[str, str]], stream: bool) -> ChatRequest:
    api = provider_api(request.api, str(getattr(provider, "api", provider.name)))
    decisions = Decisions(target.model, res.messages, target.parameters, res.tools, res.tool_choice,
                          res.response_format)
    body = shape_request(request.api, request.body, decisions, api, drop=res.drop)
    headers = shape_headers(request.api, request.headers, api, drop=res.drop) if request.headers else {}
    return ChatRequest(target.model, messages, target.parameters, stream, body, api, headers)


async def _reshaped(chunks: AsyncIterator[StreamChunk], request: CallerRequest, api: str
                    ) -> AsyncIterator[StreamChunk]:
    """The chunks with their events in the caller's API."""
    shaper = EventShaper(request.api, api, include_usage=wants_usage(request.api, request.body))
    try:
        async for chunk in chunks:
            events = [out for event in chunk.events for out in shaper.feed(event)]
            if chunk.usage is not None:
                events += shaper.close()
            yield replace(chunk, events=tuple(events))
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


@dataclass
class _Started:
    iterator: AsyncIterator[StreamChunk]
    first: StreamChunk | None


__all__ = ["CIRCUIT_OPEN", "Attempt", "FallbackRunner", "Served", "StreamServed", "Target", "check_answer",
           "targets"]
