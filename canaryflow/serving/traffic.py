"""The traffic plane shared by the SDK and the gateway.

One request: resolve (the client's cached serving state, no database) → merge the caller's parameters →
call the provider through :class:`~canaryflow.providers.fallback.FallbackRunner` → :func:`record_request`
exactly once (success or error, plain or streamed) → a sampled traffic-log record (written off the request
path) → maybe a shadow mirror (in the background). The result carries the request id, version, variation and
fallback information.

Caller parameters: the config's parameters win; a caller's ``max_tokens`` can only lower the config's (it is
capped at the config's value); caller parameters the config does not set (temperature, top_p, stop, seed, …)
are passed through.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from canaryflow import tracing
from canaryflow.domain.checks import CHECK_FAILURES
from canaryflow.domain.config import ConfigSpec, render_text
from canaryflow.domain.evaluators import JUDGE_KINDS, ScorerRegistry
from canaryflow.domain.implicit import check_event
from canaryflow.domain.resolution import CompiledConfig, Resolution, resolution_for
from canaryflow.domain.tools import chat_response_format_wire
from canaryflow.errors import (
    AllProvidersFailed,
    CanaryflowError,
    Conflict,
    NotFound,
    ProviderError,
    Unauthorized,
    ValidationFailed,
)
from canaryflow.metrics.answers import record_answer_details
from canaryflow.metrics.instruments import (
    Labels,
    Metrics,
    Series,
    default_metrics,
    record_fallback,
    record_feedback,
    record_implicit,
    record_request,
)
from canaryflow.providers.base import CallerRequest, ChatRequest, ChatResult
from canaryflow.providers.factory import get_provider
from canaryflow.providers.fallback import FallbackRunner, Served
from canaryflow.providers.pricing import cost_usd
from canaryflow.registry import feedback as fb
from canaryflow.registry import implicit as implicit_rows
from canaryflow.registry import traffic as tlog
from canaryflow.serving.evaluation import OnlineEvaluation
from canaryflow.serving.judges import JudgeScorers
from canaryflow.serving.request_ids import CLIENT_KEY, RequestIds, name_hash
from canaryflow.serving.shadow import ShadowJob, ShadowMirror
from canaryflow.serving.stream import Stream, counted_error
from canaryflow.settings import get_settings

PASS_THROUGH = frozenset({"temperature", "top_p", "max_tokens", "stop", "seed", "presence_penalty",
                          "frequency_penalty", "response_format"})
SENTIMENTS = ("positive", "negative")
_BOUND_MAX = 4096  # resolutions whose label set and series are remembered (cleared when full)


class Resolver(Protocol):
    """What the traffic plane needs from :class:`canaryflow.Client`."""

    def resolve(self, key: str, context: Mapping[str, Any] | None = None,
                variables: Mapping[str, object] | None = None) -> Resolution: ...

    def spec(self, key: str, version: int) -> ConfigSpec: ...


@dataclass
class Completion:
    """A served completion and how it was served."""

    request_id: str
    text: str
    finish_reason: str
    config_key: str
    version: int
    variation: str
    segment: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost_usd: float
    duration_s: float
    fallback_index: int | None = None
    fallback_reason: str | None = None
    response_id: str | None = None
    response: dict[str, Any] | None = None
    """The provider's whole answer in the caller's API (requests sent with a whole body)."""
    reasoning_tokens: int = 0
    tool_calls: tuple[Any, ...] = ()
    """The answer's tool calls (:class:`~canaryflow.domain.answers.ToolCall`: name, arguments)."""
    response_bytes: bytes | None = None
    """``response`` as the provider's JSON bytes, when it reaches the caller unchanged."""
    provider_request_id: str | None = None
    """The provider's id of the request (its ``request-id`` / ``x-request-id`` header)."""

    @property
    def used_fallback(self) -> bool:
        """Whether a fallback provider/model served instead of the config's own."""
        return self.fallback_index is not None


def merge_parameters(config: Mapping[str, Any], caller: Mapping[str, Any] | None) -> dict[str, Any]:
    """The parameters sent to the provider (see the module docstring for the rule)."""
    merged = dict(config)
    for name, value in (caller or {}).items():
        if value is None or name not in PASS_THROUGH:
            continue
        if name == "max_tokens":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationFailed("'max_tokens' must be a positive integer", source="max_tokens")
            cap = config.get("max_tokens")
            merged[name] = min(value, int(cap)) if cap is not None else value
        elif name not in config:
            merged[name] = value
    return merged


def _labels(res: Resolution) -> Labels:
    return Labels(res.config_key, res.version, res.variation, res.segment, res.provider, res.model)


def _fallback_targets(res: Resolution) -> tuple[tuple[str, str], ...]:
    return tuple((str(f["provider"]), str(f["model"])) for f in res.fallback)


def primary_error_type(exc: ProviderError) -> str:
    """The error type of the variation's own provider/model when ``exc`` ended a request: for
    :class:`AllProvidersFailed` the primary's (not the last fallback's)."""
    if isinstance(exc, AllProvidersFailed) and exc.primary_error_type:
        return exc.primary_error_type
    return exc.error_type


class TrafficPlane:
    """Serves requests for the SDK and the gateway.

    Args:
        resolver: the :class:`canaryflow.Client` (cached resolution).
        registry: where feedback is stored (a Registry or engine; None: feedback is only counted).
        traffic_log: the sampled traffic log (None: off).
        shadow_concurrency: shadow calls in flight at most.
        shadow_queue: shadow jobs waiting at most (more are dropped and counted).
        metrics: the instruments (None: the process default).
        runner: the fallback runner (None: a default one).
        timeout: seconds per provider attempt.
        evaluation_queue: answers waiting for their online evaluators at most (more are dropped, counted).
        scorers: the evaluator plug-ins (``judge`` / ``pairwise``); default: deterministic kinds only.
    """

    def __init__(self, resolver: Resolver, *, registry: Any = None,
                 traffic_log: tlog.TrafficLog | None = None,
                 shadow_concurrency: int = 4, shadow_queue: int = 100, metrics: Metrics | None = None,
                 runner: FallbackRunner | None = None, timeout: float = 60.0,
                 remember: int = 100_000, feedback_window: float | None = None,
                 request_id_key: bytes | None = None, evaluation_queue: int = 1000,
                 scorers: ScorerRegistry | None = None) -> None:
        self.resolver = resolver
        self.registry = registry
        self.traffic_log = traffic_log
        self.metrics = metrics
        self._m = metrics or default_metrics()
        self.runner = runner or FallbackRunner()
        self.timeout = timeout
        self.shadow = ShadowMirror(self._shadow_call, max_concurrency=shadow_concurrency,
                                   max_queue=shadow_queue, metrics=metrics)
        scorers = scorers or ScorerRegistry()
        if not any(k in scorers.factories for k in JUDGE_KINDS):  # judges call through this very plane
            JudgeScorers(self).register(scorers)
        self.evaluation = OnlineEvaluation(self._m, registry=registry, scorers=scorers,
                                           max_queue=evaluation_queue)
        self._recent: OrderedDict[str, tuple[Labels, float]] = OrderedDict()
        self._remember = remember
        self.feedback_window = (get_settings().feedback_window_s if feedback_window is None
                                else feedback_window)
        self.ids = RequestIds(request_id_key or self._signing_key())
        self._names: dict[bytes, str] = {name_hash("none"): "none"}
        self._bound: dict[int, tuple[Resolution, Labels, Series, int]] = {}
        self._given: OrderedDict[str, str] = OrderedDict()  # feedback per request when there is no registry
        self._tracked: OrderedDict[tuple[str, str], float | None] = OrderedDict()  # implicit, no registry
        on_compile = getattr(resolver, "on_compile", None)
        if on_compile is not None:
            on_compile(self.prepare_series)

    def prepare_series(self, compiled: CompiledConfig) -> None:
        """Create at 0 every series the gates read for what ``compiled`` can serve (see
        :mod:`canaryflow.metrics.instruments`); the client calls it on every compile."""
        key = compiled.key
        label_sets = compiled.label_sets()
        self._m.prepare((Labels(key, ls.version, ls.variation, ls.segment, ls.provider, ls.model),
                         ls.fallbacks) for ls in label_sets)
        self._m.forget(key, {ls.version for ls in label_sets})  # versions no longer served
        self.evaluation.prepare(compiled)
        for name in {key, *(ls.segment for ls in label_sets)}:
            self._names[name_hash(name)] = name

    def _signing_key(self) -> bytes:
        """The registry's shared request-id key (a random one, for this process only, without a registry)."""
        if self.registry is not None:
            try:
                return fb.signing_key(self.registry)
            except CanaryflowError as exc:
                logging.getLogger(__name__).warning(
                    "request ids signed with a per-process key (feedback only on this process): %s", exc)
        return secrets.token_bytes(32)

    def new_request_id(self, res: Resolution) -> str:
        """A signed id for a request served now for ``res`` (carries its attribution, see
        :mod:`canaryflow.serving.request_ids`), for the current client key."""
        return self.ids.new(res.config_key, res.version, res.variation, res.segment,
                            client_key=CLIENT_KEY.get())

    async def keep_fresh(self) -> None:
        """Refresh the resolver's cache every ``refresh_interval`` seconds even without traffic, so a new
        exposure's series are created at 0 before its first request (runs until cancelled)."""
        refresh = getattr(self.resolver, "refresh", None)
        every = float(getattr(self.resolver, "refresh_interval", 0) or 0)
        if refresh is None or every <= 0:
            return
        while True:
            await asyncio.sleep(every)
            try:
                await asyncio.to_thread(refresh)
            except Exception:  # the resolver logs its own failures; keep trying
                logging.getLogger(__name__).debug("background refresh failed", exc_info=True)

    def series(self, res: Resolution) -> Series:
        """The prepared children of this resolution's label set (created at 0 on first use)."""
        return self._bound_series(res)[1]

    def _bound_series(self, res: Resolution) -> tuple[Labels, Series]:
        """``res``'s labels and prepared children, remembered per resolution object (the client reuses
        them), so a request neither builds nor hashes its label set; looked up again after the metrics
        forgot series (:attr:`Metrics.generation`)."""
        found = self._bound.get(id(res))
        generation = self._m.generation
        if found is not None and found[0] is res and found[3] == generation:
            return found[1], found[2]
        labels = _labels(res)
        series = self._m.series(labels, _fallback_targets(res))
        if len(self._bound) >= _BOUND_MAX:
            self._bound.clear()
        self._bound[id(res)] = (res, labels, series, generation)  # holds res: its id is not reused
        return labels, series

    # ── serving ────────────────────────────────────────────────────────────────────────────────────

    def prepare(self, key: str, *, context: Mapping[str, Any] | None = None,
                variables: Mapping[str, object] | None = None,
                parameters: Mapping[str, Any] | None = None) -> Resolution:
        """Resolve ``key`` for this context and apply the caller's parameters (NotFound, RenderError)."""
        res = self.resolver.resolve(key, context, variables)
        if parameters:
            res = replace(res, parameters=merge_parameters(res.parameters, parameters))
        tracing.resolved(res)
        return res

    async def aprepare(self, key: str, *, context: Mapping[str, Any] | None = None,
                       variables: Mapping[str, object] | None = None,
                       parameters: Mapping[str, Any] | None = None) -> Resolution:
        """:meth:`prepare` for the event loop: a cache refresh or first load runs in a worker thread, so a
        slow or unreachable registry never blocks the requests being served."""
        aresolve = getattr(self.resolver, "aresolve", None)
        if aresolve is None:
            return self.prepare(key, context=context, variables=variables, parameters=parameters)
        res: Resolution = await aresolve(key, context, variables)
        if parameters:
            res = replace(res, parameters=merge_parameters(res.parameters, parameters))
        tracing.resolved(res)
        return res

    async def acomplete(self, res: Resolution, messages: Sequence[Mapping[str, Any]], *,
                        variables: Mapping[str, object] | None = None,
                        request: CallerRequest | None = None) -> Completion:
        """Serve one completion for a prepared resolution; counts it once whatever happens.

        ``variables`` are the template variables of the request (used to render a shadow candidate).
        ``request`` is the caller's whole body (pass-through: ``Completion.response`` is the provider's
        answer in the caller's API); ``messages`` are then only the text used for the log and shadow.
        """
        request_id = self.new_request_id(res)
        started = time.perf_counter()
        caller = [dict(m) for m in messages]
        try:
            result, index, reason, failed = await self._run(res, caller, request, variables)
        except ProviderError as exc:
            exc.request_id = request_id
            self._count_error(res, exc, started, request_id, caller, variables)
            raise
        except BaseException as exc:
            error = counted_error(exc)
            self._count_error(res, error, started, request_id, caller, variables)
            raise
        return self._finish(res, caller, result, index, reason, started, request_id, None, variables,
                            failed_check=failed)

    async def astream(self, res: Resolution, messages: Sequence[Mapping[str, Any]], *,
                      variables: Mapping[str, object] | None = None,
                      request: CallerRequest | None = None) -> Stream:
        """Start a streamed completion; returns once the first chunk arrived (errors before it raise).

        With ``request`` each chunk's ``events`` are the provider's stream events in the caller's API."""
        stream = Stream(self, res, [dict(m) for m in messages], variables, request)
        await stream._open()
        return stream

    async def _run(self, res: Resolution, caller: list[dict[str, str]], request: CallerRequest | None = None,
                   variables: Mapping[str, object] | None = None
                   ) -> tuple[ChatResult, int | None, str | None, str | None]:
        """The answer, which fallback served (``len(res.fallback)``: the stable version, after the
        variation's answers failed their output checks), why, and a failed check of a kept answer."""
        try:
            served = await self._complete(res, caller, request)
        except AllProvidersFailed as exc:
            stable = self._stable_after_check(res, exc, variables)
            if stable is None:
                raise
            try:
                served = await self._complete(stable, caller, request)
            except ProviderError:
                raise exc from None
            result = served.result
            if served.fallback_index is None:
                result = replace(result, provider=stable.provider, model=stable.model)
            else:
                target = stable.fallback[served.fallback_index]
                result = replace(result, provider=str(target["provider"]), model=str(target["model"]))
            return result, len(res.fallback), exc.primary_error_type, None
        result = served.result
        if served.fallback_index is None:
            if result.provider != res.provider or result.model != res.model:
                result = replace(result, provider=res.provider, model=res.model)
        else:
            target = res.fallback[served.fallback_index]
            result = replace(result, provider=str(target["provider"]), model=str(target["model"]))
        return result, served.fallback_index, served.reason, served.failed_check

    async def _complete(self, res: Resolution, caller: list[dict[str, str]],
                        request: CallerRequest | None) -> Served:
        if request is None:
            return await self.runner.complete(res, caller, timeout=self.timeout)
        return await self.runner.complete(res, caller, timeout=self.timeout, request=request)

    def _stable_after_check(self, res: Resolution, exc: AllProvidersFailed,
                            variables: Mapping[str, object] | None) -> Resolution | None:
        """The stable version's resolution when the variation's primary answer failed an output check
        (and its fallbacks did not serve): the guardrail's last resort. ``None`` otherwise."""
        if res.stable_version is None or exc.primary_error_type not in CHECK_FAILURES:
            return None
        try:
            spec = self.resolver.spec(res.config_key, res.stable_version)
            return resolution_for(res, spec, res.stable_version, variables or {})
        except Exception:  # the stable spec cannot be rendered for this request: the failure stands
            logging.getLogger(__name__).debug("no stable retry", exc_info=True)
            return None

    def _count_error(self, res: Resolution, exc: ProviderError, started: float, request_id: str,
                     caller: list[dict[str, str]], variables: Mapping[str, object] | None = None, *,
                     primary_error: str | None = None) -> None:
        """Count a request nobody answered (``served_by="none"``) with the primary's error type
        (``primary_error`` when the primary failed before a fallback that then failed too)."""
        duration = time.perf_counter() - started
        error_type = primary_error or primary_error_type(exc)
        labels, series = self._bound_series(res)
        record_request(labels, outcome="error", error_type=error_type, served_by="none", series=series)
        tracing.failed(res, caller, exc, request_id)
        self._log(res, caller, variables, request_id, None, duration, error_type)

    def _finish(self, res: Resolution, caller: list[dict[str, str]], result: ChatResult, index: int | None,
                reason: str | None, started: float, request_id: str, ttfc: float | None,
                variables: Mapping[str, object] | None, *, failed_check: str | None = None) -> Completion:
        duration = time.perf_counter() - started
        cost = _cost(result)
        labels, series = self._bound_series(res)
        if index is None and failed_check is not None:  # served, but it failed a check (a kept refusal)
            record_request(labels, outcome="error", error_type=failed_check, served_by="primary",
                           duration_s=duration, ttfc_s=ttfc, input_tokens=result.input_tokens,
                           output_tokens=result.output_tokens, cost_usd=cost, series=series)
        elif index is None:
            record_request(labels, outcome="success", finish_reason=result.finish_reason, duration_s=duration,
                           ttfc_s=ttfc, input_tokens=result.input_tokens, output_tokens=result.output_tokens,
                           cost_usd=cost, series=series)
        else:  # the variation's own provider failed: its error, though a fallback answered the user
            record_request(labels, outcome="error", error_type=reason or "other", served_by="fallback",
                           answered_by=(result.provider, result.model), duration_s=duration, ttfc_s=ttfc,
                           input_tokens=result.input_tokens, output_tokens=result.output_tokens,
                           cost_usd=cost, series=series)
            record_fallback(labels, reason or "other", metrics=self._m)
        if result.cached_input_tokens or result.reasoning_tokens or result.tool_call_results:
            record_answer_details(labels, cached_input_tokens=result.cached_input_tokens,
                                  reasoning_tokens=result.reasoning_tokens,
                                  tool_call_results=result.tool_call_results,
                                  served_by="primary" if index is None else "fallback",
                                  answered_by=(result.provider, result.model), metrics=self._m,
                                  series=series)
        tracing.finished(res, caller, result, request_id, index, reason)
        self._log(res, caller, variables, request_id, result, duration, None, cost)
        if self.evaluation.wanted and index is None:  # the variation's own answer (not a fallback's)
            self.evaluation.offer(res, request_id, result, caller)
        if self.shadow.wants(res):
            self._mirror(res, caller, result.text, variables, request_id)
        return Completion(request_id, result.text, result.finish_reason, res.config_key, res.version,
                          res.variation, res.segment, result.provider, result.model, result.input_tokens,
                          result.output_tokens, result.cached_input_tokens, cost, duration, index, reason,
                          result.response_id, result.raw, result.reasoning_tokens, result.tool_calls,
                          result.raw_bytes, result.provider_request_id)

    def remember(self, request_id: str, labels: Labels, served_at: float | None = None) -> None:
        """Accept feedback on ``request_id``, an id this plane did not sign (served elsewhere, e.g. tracked
        through OpenFeature), attributed to ``labels`` and ``served_at`` (default: now)."""
        self._recent[request_id] = (labels, time.time() if served_at is None else served_at)
        if len(self._recent) > self._remember:
            self._recent.popitem(last=False)

    def _log(self, res: Resolution, caller: list[dict[str, str]], variables: Mapping[str, object] | None,
             request_id: str, result: ChatResult | None, duration: float, error_type: str | None,
             cost: float | None = None) -> None:
        log = self.traffic_log
        if log is None or not log.sampled():
            return
        response: dict[str, Any] = {"segment": res.segment}
        if result is not None:
            response.update(text=result.text, finish_reason=result.finish_reason, provider=result.provider,
                            model=result.model)
        log.add(tlog.TrafficRecord(
            request_id=request_id, config_key=res.config_key, version=res.version, variation=res.variation,
            request={"messages": caller, "variables": {k: str(v) for k, v in (variables or {}).items()},
                     "parameters": dict(res.parameters), "segment": res.segment},
            response=response, latency_ms=duration * 1000.0, error_type=error_type,
            input_tokens=result.input_tokens if result else None,
            output_tokens=result.output_tokens if result else None, cost_usd=cost,
        ))

    # ── shadow ─────────────────────────────────────────────────────────────────────────────────────

    def _mirror(self, res: Resolution, caller: list[dict[str, str]], stable_text: str,
                variables: Mapping[str, object] | None, request_id: str = "") -> None:
        assert res.shadow_version is not None
        try:
            spec = self.resolver.spec(res.config_key, res.shadow_version)
            messages = tuple({"role": m.role, "content": render_text(m.content, variables or {},
                                                                     config_key=res.config_key)}
                             for m in spec.messages)
        except Exception:
            return
        params = spec.parameters.as_kwargs()
        fmt = None if spec.response_format is None else spec.response_format.model_dump(
            mode="json", exclude_none=True, by_alias=True)
        if fmt is not None:  # the candidate's own output schema (an OpenAI-API endpoint honours it)
            params["response_format"] = chat_response_format_wire(fmt)
        cand = replace(res, version=res.shadow_version, variation="shadow", provider=spec.provider,
                       model=spec.model, messages=messages, parameters=params, fallback=(),
                       shadow_version=None, shadow_fraction=0.0, response_format=fmt)
        self.shadow.offer(ShadowJob(cand, caller, stable_text, _labels(cand), tracing.capture(), request_id))

    async def _shadow_call(self, job: ShadowJob) -> str | None:
        res = job.resolution
        started = time.perf_counter()
        try:
            provider = get_provider(res.provider)
            with tracing.shadow(job.trace, res) as span:
                result = await provider.complete(
                    ChatRequest(res.model, [*map(dict, res.messages), *map(dict, job.caller_messages)],
                                dict(res.parameters)),
                    timeout=self.timeout)
                span.result(result)
        except ProviderError as exc:
            record_request(job.labels, outcome="error", error_type=exc.error_type, served_by="none",
                           metrics=self._m)
            return None
        record_request(job.labels, outcome="success", finish_reason=result.finish_reason,
                       duration_s=time.perf_counter() - started, input_tokens=result.input_tokens,
                       output_tokens=result.output_tokens, cost_usd=_cost(result), metrics=self._m)
        if self.evaluation.wanted and job.request_id:  # scored with the mirrored request's sampling point
            self.evaluation.offer(res, job.request_id, result, job.caller_messages, source="shadow",
                                  reference=job.reference_text, trace=job.trace)
        return result.text

    # ── feedback ───────────────────────────────────────────────────────────────────────────────────

    def feedback(self, request_id: str, sentiment: str, comment: str | None = None, *,
                 client_key: str | None = None) -> Labels:
        """Count and store feedback on a served request, once per request: a later feedback on the same
        request id replaces the earlier one. It is attributed to the request's own version, variation,
        segment and serving time (carried by its signed id, so any replica sharing the registry accepts it).

        Args:
            request_id: the ``X-Canaryflow-Request-Id`` of the response.
            sentiment: ``positive`` or ``negative``.
            comment: free text (redacted before storage).
            client_key: the gateway client key id sending the feedback (default: the current request's);
                it must be the one the request was served for.

        Raises:
            ValidationFailed: ``sentiment`` is not positive/negative.
            NotFound: the request id is not one this registry's gateways or SDKs served.
            Unauthorized: the feedback comes with another client key than the request.
            Conflict: the request was served longer ago than the feedback window (409).
        """
        if sentiment not in SENTIMENTS:
            raise ValidationFailed(f"sentiment must be 'positive' or 'negative', got {sentiment!r}",
                                   source="sentiment")
        labels, served_at = self._attribution(request_id, client_key, "feedback")
        if self.registry is not None:
            replaced = fb.put_feedback(
                self.registry, request_id=request_id, config_key=labels.config, version=labels.version,
                variation=labels.variation, segment=labels.segment,
                served_at=datetime.fromtimestamp(served_at, UTC), sentiment=sentiment,
                comment=None if comment is None else tlog.default_redactor(comment))
        else:
            replaced = self._given.get(request_id)
            self._given[request_id] = sentiment
            if len(self._given) > self._remember:
                self._given.popitem(last=False)
        record_feedback(labels, sentiment, replaces=replaced, metrics=self._m)
        return labels

    def track(self, request_id: str, event: str, value: float | None = None, *,
              client_key: str | None = None) -> Labels:
        """Count and store an implicit feedback event on a served request (``edited`` with the edit
        distance, ``copied``, ``shared``, ``regenerated``, ``task_completed``, ``abandoned``,
        ``dwell_seconds`` with seconds): once per request and event (a later one replaces it), attributed
        to the request's own version, variation, segment and serving time, with the same authentication and
        window as :meth:`feedback`.

        Raises:
            ValidationFailed: an unknown event, or a value missing / not allowed / out of range.
            NotFound, Unauthorized, Conflict: as :meth:`feedback`.
        """
        event, stored = check_event(event, value)
        labels, served_at = self._attribution(request_id, client_key, f"event {event!r}")
        if self.registry is not None:
            replaced, old = implicit_rows.put_event(
                self.registry, request_id=request_id, event=event, value=stored, config_key=labels.config,
                version=labels.version, variation=labels.variation, segment=labels.segment,
                served_at=datetime.fromtimestamp(served_at, UTC))
        else:
            replaced = (request_id, event) in self._tracked
            old = self._tracked.get((request_id, event))
            self._tracked[(request_id, event)] = stored
            if len(self._tracked) > self._remember:
                self._tracked.popitem(last=False)
        record_implicit(labels, event, stored, replaced=replaced, old_value=old, metrics=self._m)
        return labels

    def _attribution(self, request_id: str, client_key: str | None, what: str) -> tuple[Labels, float]:
        """The labels and serving time of a request that ``what`` (feedback, an event) is about, checked:
        a request this registry served, the same client key (``None``: the current one), within the
        feedback window."""
        labels, served_at = self._served(request_id, CLIENT_KEY.get() if client_key is None else client_key)
        age = time.time() - served_at
        if age > self.feedback_window:
            raise Conflict(f"{what} on request {request_id!r} is refused: it was served {age:.0f} s ago, "
                           f"longer than the feedback window of {self.feedback_window:g} s "
                           "(CANARYFLOW_FEEDBACK_WINDOW_S)")
        return labels, served_at

    def _served(self, request_id: str, client_key: str) -> tuple[Labels, float]:
        att = self.ids.verify(request_id)
        if att is None:
            recent = self._recent.get(request_id)
            if recent is None:
                raise NotFound(f"unknown request id {request_id!r}: feedback must name a request served by "
                               "a gateway or SDK on this registry (its X-Canaryflow-Request-Id)")
            return recent
        if not att.client_key_matches(client_key):
            raise Unauthorized(f"feedback on request {request_id!r} must be sent with the client key that "
                               "made the request")
        config, segment = self._names.get(att.config_hash), self._names.get(att.segment_hash)
        if config is None or segment is None:
            warm = getattr(self.resolver, "warm", None)
            if warm is not None:
                warm()  # compiles every config: its names (and series) become known
            config, segment = self._names.get(att.config_hash), self._names.get(att.segment_hash)
        if config is None or segment is None:
            raise NotFound(f"request id {request_id!r} names a config or segment this registry does not have")
        spec = self.resolver.spec(config, att.version)
        return Labels(config, att.version, att.variation, segment, spec.provider, spec.model), att.served_at

    async def close(self) -> None:
        """Stop the shadow workers and the evaluation worker, and flush the traffic log."""
        await self.shadow.close()
        await self.evaluation.close()
        if self.traffic_log is not None:
            self.traffic_log.close()


def _cost(result: ChatResult) -> float:
    try:
        return float(cost_usd(result.provider, result.model, result))
    except Exception:
        return 0.0


__all__ = ["Completion", "Resolver", "Stream", "TrafficPlane", "merge_parameters"]
