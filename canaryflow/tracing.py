"""OpenTelemetry traces of the traffic plane and the rollouts (``pip install 'canaryflow[otel]'``).

Off unless the standard variables ask: ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``; ``none`` = off) or
an OTLP endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``);
``OTEL_SDK_DISABLED=true`` wins. The SDK reads the rest itself: ``OTEL_EXPORTER_OTLP_PROTOCOL``
(``http/protobuf`` by default, ``grpc`` with ``opentelemetry-exporter-otlp-proto-grpc``), headers,
``OTEL_TRACES_SAMPLER``/``_ARG``, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*``. An app
that set up its own tracer provider before the canaryflow client's first request gets canaryflow's spans in
it, with no variable.

Conventions: OpenTelemetry semantic conventions **1.37.0** (:data:`SEMCONV_SCHEMA_URL`; the GenAI names are
still in development, so they are pinned here and change only with this constant), GenAI client spans and
feature-flag attributes:

* one span per gateway / SDK request, ``chat {config}`` (SERVER at the gateway, INTERNAL in the SDK):
  ``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``, ``gen_ai.response.model``,
  ``gen_ai.response.id``, ``gen_ai.usage.input_tokens``/``output_tokens``, ``gen_ai.response.finish_reasons``,
  ``error.type`` (the error taxonomy: rate_limit, timeout, ...); ``canaryflow.config``, ``.version``,
  ``.variation``, ``.segment``, ``.served_by`` (primary | fallback | none), ``.request_id``,
  ``.fallback.index``/``.fallback.reason``; ``feature_flag.key``, ``feature_flag.result.variant``,
  ``feature_flag.version``, ``feature_flag.provider.name``;
* a CLIENT child span ``chat {model}`` per provider attempt (retries and fallbacks each get one;
  ``canaryflow.fallback.index`` marks a fallback; a stream's attempt ends at its first chunk), per shadow call
  (``canaryflow.variation=shadow``, child of the mirrored request), and an event ``canaryflow.circuit_open``
  for a target skipped by its breaker;
* a span ``gen_ai.evaluation.result`` per online evaluation (child of the evaluated request, after it ended)
  carrying the event of that name: ``gen_ai.evaluation.name``, ``.score.value``, ``.score.label``,
  ``.explanation`` (never the answer's text);
* the caller's W3C ``traceparent``/``tracestate`` is continued, and injected into every provider request;
* prompts and completions are left out unless ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``;
  then ``gen_ai.input.messages``/``gen_ai.output.messages`` are set, redacted like the traffic log;
* Temporal workflows and activities through ``temporalio.contrib.opentelemetry.TracingInterceptor``
  (:func:`temporal_interceptors`, on the client every worker and CLI command connects with).

With tracing off every hook is one attribute test: the hot path pays nothing measurable
(benchmarks/README.md).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from canaryflow.errors import ProviderError, ValidationFailed

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

    from canaryflow.domain.resolution import Resolution
    from canaryflow.providers.base import ChatResult

SEMCONV_SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
CHAT_PATHS = frozenset({"/v1/chat/completions", "/v1/messages", "/v1/responses"})


class _State:
    tracer: Tracer | None = None
    provider: TracerProvider | None = None
    owned = False
    capture = False
    redactor: Callable[[str], str] | None = None


_state = _State()


class _Req:
    """The request span the plane annotates, and whether the end of a stream ends it (SDK streams)."""

    __slots__ = ("end_with_stream", "span")

    def __init__(self, span: Span, end_with_stream: bool = False) -> None:
        self.span = span
        self.end_with_stream = end_with_stream


_current: ContextVar[_Req | None] = ContextVar("canaryflow_request_span", default=None)


def enabled() -> bool:
    """Whether canaryflow emits spans in this process."""
    return _state.tracer is not None


def wanted(env: Mapping[str, str] | None = None) -> bool:
    """Whether the OTEL_* variables ask for traces (see the module docstring)."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(exporter or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure(*, service_name: str = "canaryflow") -> bool:
    """Turn tracing on if the environment asks, or join the app's tracer provider (idempotent).

    Returns:
        Whether tracing is on.

    Raises:
        ValidationFailed: the variables ask for traces but the packages are missing or an exporter is unknown.
    """
    if _state.tracer is not None:
        return True
    if not wanted():
        trace_api = sys.modules.get("opentelemetry.trace")  # an app that configured OTel imported it
        if trace_api is not None:
            from opentelemetry.trace import ProxyTracerProvider

            global_provider = trace_api.get_tracer_provider()
            if not isinstance(global_provider, ProxyTracerProvider) and hasattr(global_provider,
                                                                                "add_span_processor"):
                _use(global_provider, owned=False)
                return True
        return False
    install(build_provider(service_name=service_name), set_global=True)
    return True


def build_provider(*, service_name: str = "canaryflow") -> TracerProvider:
    """An SDK tracer provider exporting as ``OTEL_TRACES_EXPORTER`` says (batching, sampler from env)."""
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError as exc:
        raise ValidationFailed("OTEL_* variables ask for traces but opentelemetry-sdk is not installed: "
                               "pip install 'canaryflow[otel]' (or unset OTEL_TRACES_EXPORTER)",
                               source="OTEL_TRACES_EXPORTER") from exc
    attrs = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(attrs))
    names = [n.strip().lower() for n in (os.environ.get("OTEL_TRACES_EXPORTER") or "otlp").split(",")]
    for name in filter(None, names):
        exporter: SpanExporter
        if name == "otlp":
            exporter = _otlp_exporter()
        elif name == "console":
            exporter = ConsoleSpanExporter()
        else:
            raise ValidationFailed(f"OTEL_TRACES_EXPORTER={name!r} is not supported: use otlp, console or "
                                   "none", source="OTEL_TRACES_EXPORTER")
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _otlp_exporter() -> Any:
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip().lower()
    if protocol not in ("grpc", "http/protobuf"):
        raise ValidationFailed(f"OTLP protocol {protocol!r} is not supported: use http/protobuf or grpc",
                               source="OTEL_EXPORTER_OTLP_PROTOCOL")
    kind = "grpc" if protocol == "grpc" else "http"
    try:
        module = importlib.import_module(f"opentelemetry.exporter.otlp.proto.{kind}.trace_exporter")
    except ImportError as exc:
        package = f"opentelemetry-exporter-otlp-proto-{kind}"
        raise ValidationFailed(f"OTLP {protocol} export needs {package}: pip install {package}",
                               source="OTEL_EXPORTER_OTLP_PROTOCOL") from exc
    return module.OTLPSpanExporter()


def install(provider: TracerProvider, *, set_global: bool = False,
            redactor: Callable[[str], str] | None = None) -> None:
    """Emit canaryflow's spans through ``provider`` (``set_global``: also as the process's provider, when
    none is set yet). ``redactor`` applies to captured content (default: the traffic log's)."""
    _use(provider, owned=True)
    _state.redactor = redactor
    if set_global:
        from opentelemetry import trace

        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(provider)


def _use(provider: Any, *, owned: bool) -> None:
    from canaryflow import __version__

    _state.provider = provider
    _state.owned = owned
    _state.tracer = provider.get_tracer("canaryflow", __version__, schema_url=SEMCONV_SCHEMA_URL)
    _state.capture = os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() == "true"


def uninstall() -> None:
    """Stop emitting spans (tests); the provider is left to its owner."""
    _state.tracer = None
    _state.provider = None
    _state.owned = False


def shutdown() -> None:
    """Flush and stop the provider canaryflow made (call before ``os._exit``)."""
    provider = _state.provider
    if provider is not None and _state.owned:
        provider.shutdown()
    uninstall()


# ── request spans ────────────────────────────────────────────────────────────────────────────────────

def capture() -> Any:
    """The caller's current OpenTelemetry context (to continue it on another thread); None when off."""
    if _state.tracer is None:
        return None
    from opentelemetry import context

    return context.get_current()


@contextlib.contextmanager
def request(parent: Any, *, server: bool = False, end: bool = True) -> Iterator[_Req | None]:
    """A request span under ``parent`` (a captured context), current for the block; ``end=False`` leaves it
    to the end of the stream it serves."""
    tracer = _state.tracer
    if tracer is None:
        yield None
        return
    from opentelemetry import context, trace

    span = tracer.start_span("chat", context=parent,
                             kind=trace.SpanKind.SERVER if server else trace.SpanKind.INTERNAL,
                             attributes={"gen_ai.operation.name": "chat"})
    req = _Req(span, end_with_stream=not end)
    token = context.attach(trace.set_span_in_context(span, parent))
    rtoken = _current.set(req)
    try:
        yield req
    except BaseException as exc:
        _error(span, exc)
        if req.end_with_stream:  # the stream never started (a failed stream has ended it already)
            req.end_with_stream = False
            span.end()
        raise
    finally:
        _current.reset(rtoken)
        context.detach(token)
        if end:
            span.end()


def current() -> _Req | None:
    """The request span of this context (for a stream to carry to where it ends)."""
    return _current.get()


@contextlib.contextmanager
def resume(req: _Req | None) -> Iterator[None]:
    """Make ``req`` the request span again for the block (a stream ending on another task); ends it after
    the block when it is an SDK stream's."""
    if req is None:
        yield
        return
    token = _current.set(req)
    try:
        yield
    finally:
        _current.reset(token)
        if req.end_with_stream:
            req.end_with_stream = False
            req.span.end()


def resolved(res: Resolution) -> None:
    """Name the request span after the config and record how it resolved."""
    req = _current.get()
    if req is None or not req.span.is_recording():  # off, or this request not sampled
        return
    span = req.span
    span.update_name(f"chat {res.config_key}")
    span.set_attributes({
        "gen_ai.provider.name": res.provider, "gen_ai.request.model": res.model,
        "canaryflow.config": res.config_key, "canaryflow.version": res.version,
        "canaryflow.variation": res.variation, "canaryflow.segment": res.segment or "none",
        "feature_flag.key": res.config_key, "feature_flag.result.variant": res.variation,
        "feature_flag.version": str(res.version), "feature_flag.provider.name": "canaryflow",
    })
    temperature = res.parameters.get("temperature")
    if isinstance(temperature, int | float):
        span.set_attribute("gen_ai.request.temperature", float(temperature))
    max_tokens = res.parameters.get("max_tokens")
    if isinstance(max_tokens, int):
        span.set_attribute("gen_ai.request.max_tokens", max_tokens)


def finished(res: Resolution, caller: Sequence[Mapping[str, Any]], result: ChatResult, request_id: str,
             fallback_index: int | None, fallback_reason: str | None) -> None:
    """Record the answer on the request span."""
    req = _current.get()
    if req is None or not req.span.is_recording():  # off, or this request not sampled
        return
    span = req.span
    span.set_attributes(_result_attributes(result))
    span.set_attributes({"canaryflow.request_id": request_id,
                         "canaryflow.served_by": "primary" if fallback_index is None else "fallback"})
    if fallback_index is not None:
        span.set_attributes({"canaryflow.fallback.index": fallback_index,
                             "canaryflow.fallback.reason": fallback_reason or "other"})
    if _state.capture:
        _content(span, [*res.messages, *caller], result.text, result.finish_reason)


def failed(res: Resolution, caller: Sequence[Mapping[str, Any]], exc: ProviderError, request_id: str) -> None:
    """Record that nobody answered."""
    req = _current.get()
    if req is None or not req.span.is_recording():  # off, or this request not sampled
        return
    span = req.span
    span.set_attributes({"canaryflow.request_id": request_id, "canaryflow.served_by": "none"})
    _error(span, exc)
    if _state.capture:
        _content(span, [*res.messages, *caller], None, None)


def event(name: str, attributes: Mapping[str, str | int]) -> None:
    """An event on the request span (e.g. ``canaryflow.circuit_open``)."""
    req = _current.get()
    if req is not None:
        req.span.add_event(name, dict(attributes))


def _result_attributes(result: ChatResult) -> dict[str, Any]:
    attrs: dict[str, Any] = {"gen_ai.provider.name": result.provider, "gen_ai.response.model": result.model,
                             "gen_ai.usage.input_tokens": result.input_tokens,
                             "gen_ai.usage.output_tokens": result.output_tokens,
                             "gen_ai.response.finish_reasons": (result.finish_reason,)}
    if result.cached_input_tokens:
        attrs["gen_ai.usage.cache_read.input_tokens"] = result.cached_input_tokens
    if result.response_id:
        attrs["gen_ai.response.id"] = result.response_id
    return attrs


def _error(span: Span, exc: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    error_type = exc.error_type if isinstance(exc, ProviderError) else type(exc).__name__
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))


def _content(span: Span, messages: Sequence[Mapping[str, Any]], text: str | None,
             finish_reason: str | None) -> None:
    redact = _state.redactor
    if redact is None:
        from canaryflow.registry.traffic import default_redactor

        redact = default_redactor
    inputs = [{"role": str(m.get("role", "user")),
               "parts": [{"type": "text", "content": redact(str(m.get("content", "")))}]} for m in messages]
    span.set_attribute("gen_ai.input.messages", json.dumps(inputs, ensure_ascii=False))
    if text is not None:
        out = [{"role": "assistant", "parts": [{"type": "text", "content": redact(text)}],
                "finish_reason": finish_reason or "stop"}]
        span.set_attribute("gen_ai.output.messages", json.dumps(out, ensure_ascii=False))


# ── provider attempts and shadow calls ───────────────────────────────────────────────────────────────

class _NoSpan:
    """What :func:`attempt` returns when tracing is off: does nothing."""

    __slots__ = ()

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def result(self, result: ChatResult) -> None:
        """Nothing to record."""


_NO_SPAN = _NoSpan()


class _ClientSpan:
    """A CLIENT span current for a provider call (so the request carries its ``traceparent``)."""

    __slots__ = ("span", "token")

    def __init__(self, tracer: Tracer, model: str, attributes: dict[str, Any], parent: Any) -> None:
        from opentelemetry import context, trace

        self.span = tracer.start_span(f"chat {model}", context=parent, kind=trace.SpanKind.CLIENT,
                                      attributes=attributes)
        self.token = context.attach(trace.set_span_in_context(self.span, parent))

    def __enter__(self) -> _ClientSpan:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        from opentelemetry import context

        if exc is not None:
            _error(self.span, exc)
        context.detach(self.token)
        self.span.end()

    def result(self, result: ChatResult) -> None:
        """Record the attempt's answer (usage, finish reason, response model)."""
        if self.span.is_recording():
            self.span.set_attributes(_result_attributes(result))


def attempt(provider: str, model: str, fallback_index: int | None, try_number: int) -> _ClientSpan | _NoSpan:
    """A span around one provider attempt (``with tracing.attempt(...) as span: ...; span.result(r)``)."""
    tracer = _state.tracer
    if tracer is None:
        return _NO_SPAN
    req = _current.get()
    if req is not None and not req.span.is_recording():  # an unsampled request: its context propagates
        return _NO_SPAN
    attrs: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
                             "gen_ai.request.model": model, "canaryflow.attempt": try_number + 1}
    if fallback_index is not None:
        attrs["canaryflow.fallback.index"] = fallback_index
    return _ClientSpan(tracer, model, attrs, None)


def shadow(parent: Any, res: Resolution) -> _ClientSpan | _NoSpan:
    """A span around a shadow call, child of the mirrored request's context ``parent``."""
    tracer = _state.tracer
    if tracer is None or parent is None:
        return _NO_SPAN
    from opentelemetry import trace

    if not trace.get_current_span(parent).get_span_context().trace_flags.sampled:  # (it may have ended)
        return _NO_SPAN
    return _ClientSpan(tracer, res.model, {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": res.provider,
        "gen_ai.request.model": res.model,
        "canaryflow.config": res.config_key, "canaryflow.version": res.version,
        "canaryflow.variation": "shadow", "canaryflow.segment": res.segment or "none"}, parent)


def evaluation(parent: Any, attributes: Mapping[str, str | int | float | bool]) -> None:
    """One online evaluation's result: a span ``gen_ai.evaluation.result`` (child of the evaluated request's
    context ``parent``; the request span has ended by then) carrying the event of the same name with the
    OpenTelemetry GenAI attributes (``gen_ai.evaluation.name``, ``.score.value``, ``.score.label``,
    ``.explanation``) — never the answer's text. Nothing when tracing is off or the request not sampled."""
    tracer = _state.tracer
    if tracer is None or parent is None:
        return
    from opentelemetry import trace

    if not trace.get_current_span(parent).get_span_context().trace_flags.sampled:
        return
    attrs = dict(attributes)
    span = tracer.start_span("gen_ai.evaluation.result", context=parent, attributes=attrs)
    span.add_event("gen_ai.evaluation.result", attrs)
    span.end()


# ── integrations ─────────────────────────────────────────────────────────────────────────────────────

async def _inject(request: Any) -> None:
    from opentelemetry import propagate

    propagate.inject(request.headers)


def http_event_hooks() -> dict[str, list[Callable[[Any], Awaitable[None]]]] | None:
    """httpx event hooks that put the current ``traceparent`` on provider requests; None when off."""
    return {"request": [_inject]} if _state.tracer is not None else None


def temporal_interceptors() -> list[Any]:
    """``[TracingInterceptor]`` for Temporal clients and workers when tracing is on, else ``[]``."""
    if _state.tracer is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    # Rollouts are often started outside a traced client (temporal CLI, schedules): spans anyway.
    return [TracingInterceptor(_state.tracer, always_create_workflow_spans=True)]


class TraceMiddleware:
    """ASGI middleware: a SERVER span per chat request, continuing the caller's ``traceparent``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if _state.tracer is None or scope["type"] != "http" or scope["path"] not in CHAT_PATHS:
            await self.app(scope, receive, send)
            return
        from opentelemetry import propagate

        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        status = 500

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        with request(propagate.extract(carrier), server=True) as req:
            assert req is not None
            req.span.set_attributes({"http.request.method": scope.get("method", "POST"),
                                     "url.path": scope["path"]})
            try:
                await self.app(scope, receive, send_status)
            finally:
                span = req.span
                span.set_attribute("http.response.status_code", status)
                attributes = getattr(span, "attributes", None) or {}
                if status >= 400 and "error.type" not in attributes:
                    span.set_attribute("error.type", str(status))
                    if status >= 500:
                        from opentelemetry.trace import Status, StatusCode

                        span.set_status(Status(StatusCode.ERROR))


def asgi_middleware() -> list[Any]:
    """Starlette middleware for the gateway: the tracing middleware when tracing is on, else none."""
    if _state.tracer is None:
        return []
    from starlette.middleware import Middleware

    return [Middleware(TraceMiddleware)]


__all__ = ["CAPTURE_CONTENT_ENV", "SEMCONV_SCHEMA_URL", "TraceMiddleware", "asgi_middleware", "attempt",
           "build_provider", "capture", "configure", "current", "enabled", "event", "failed", "finished",
           "http_event_hooks", "install", "request", "resolved", "resume", "shadow", "shutdown",
           "temporal_interceptors", "uninstall", "wanted"]
