"""OpenTelemetry traces, exported over OTLP/HTTP to an in-process receiver: gateway → provider (the simulator
sees the traceparent), fallbacks, shadow calls, SDK requests, content capture, and a rollout's activities on
the time-skipping Temporal server."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from temporalio.client import Client as TemporalClient
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from canaryflow import tracing
from canaryflow.domain.rollout_status import RolloutStatus
from canaryflow.domain.serving import Exposure
from canaryflow.errors import ValidationFailed
from canaryflow.serving.client import Client
from canaryflow.temporal import ensure_search_attributes, workflow_id
from tests.otlp_receiver import ReceivedSpan, Receiver, start_receiver
from tests.rollout_fixtures import ScriptedAnalysis, drive, make_registry, unique_key
from tests.servers import free_port
from tests.traffic_stack import Stack, running_stack, spec
from worker import build_worker

Q = [{"role": "user", "content": "Write to bob@example.com: what is the capital of Peru?"}]
CTX = {"canaryflow": {"user": "u-1", "variables": {"product": "Acme"}}}
FALLBACK = [{"provider": "anthropic", "model": "claude-haiku-4-5"}]
TEST_SERVER = str(Path(sys.executable).parent / "temporal-test-server")
CLI = str(Path(sys.executable).parent / "canaryflow")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec, server = start_receiver()
    yield rec
    server.shutdown()


def _install(receiver: Receiver, monkeypatch: pytest.MonkeyPatch, capture: bool = False) -> TracerProvider:
    """Tracing as the OTEL_* variables of a deployment would turn it on, exporting to the receiver."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "canaryflow-test")
    monkeypatch.setenv(tracing.CAPTURE_CONTENT_ENV, "true" if capture else "false")
    assert tracing.wanted()
    provider = tracing.build_provider()
    tracing.install(provider)  # not as the process's global provider: other tests stay untraced
    return provider


def _flush(provider: TracerProvider, receiver: Receiver, trace_id: str, want: int) -> list[ReceivedSpan]:
    deadline = time.monotonic() + 20
    while True:
        assert provider.force_flush(10_000)
        spans = receiver.in_trace(trace_id)
        if len(spans) >= want or time.monotonic() > deadline:
            return spans
        time.sleep(0.05)


@pytest.fixture(scope="module")
def traced(receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Stack, TracerProvider]]:
    with pytest.MonkeyPatch.context() as mp:
        provider = _install(receiver, mp)
        configs = [spec("trace-bot"), spec("trace-fb", model="gpt-4.1-nano", fallback=FALLBACK),
                   spec("trace-shadow"),
                   spec("trace-eval", evaluators=[{"name": "short", "kind": "length", "max": 5}])]
        try:
            with running_stack(tmp_path_factory.mktemp("tracing"), configs=configs) as s:
                s.simulator.update_profile("gpt-4.1-nano", {"status": 503})
                s.registry.push_config(spec("trace-shadow", model="gpt-4o", system="Candidate: {{product}}."))
                s.registry.apply_exposure("trace-shadow", Exposure(candidate_version=2, stage="shadow",
                                                                   stage_kind="shadow", shadow_fraction=1.0),
                                          by="test", reason="test", source="cli")
                s.plane.resolver.refresh(force=True)  # type: ignore[attr-defined]
                yield s, provider
        finally:
            tracing.uninstall()
            provider.shutdown()


def _caller() -> tuple[str, str, dict[str, str]]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, {"traceparent": f"00-{trace_id}-{span_id}-01"}


def test_gateway_request_and_provider_attempt(traced: tuple[Stack, TracerProvider],
                                              receiver: Receiver) -> None:
    stack, provider = traced
    trace_id, caller_span, headers = _caller()
    oai = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="x", max_retries=0)
    oai.chat.completions.create(model="trace-bot", messages=Q, extra_body=CTX,  # type: ignore[arg-type]
                                extra_headers=headers)
    spans = _flush(provider, receiver, trace_id, 2)
    (req,) = [s for s in spans if s.kind == "SERVER"]
    assert req.name == "chat trace-bot" and req.parent_id == caller_span and req.service == "canaryflow-test"
    assert req.schema_url == tracing.SEMCONV_SCHEMA_URL and req.scope == "canaryflow"
    a = req.attributes
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini" and a["gen_ai.response.model"]
    assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert (a["canaryflow.config"], a["canaryflow.version"], a["canaryflow.variation"],
            a["canaryflow.segment"], a["canaryflow.served_by"]) == ("trace-bot", 1, "stable", "none",
                                                                    "primary")
    assert (a["feature_flag.key"], a["feature_flag.result.variant"], a["feature_flag.version"],
            a["feature_flag.provider.name"]) == ("trace-bot", "stable", "1", "canaryflow")
    assert a["http.response.status_code"] == 200 and a["canaryflow.request_id"].startswith("cf1_")
    (call,) = [s for s in spans if s.kind == "CLIENT"]
    assert call.name == "chat gpt-4o-mini" and call.parent_id == req.span_id
    assert call.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert call.attributes["canaryflow.attempt"] == 1
    assert f"00-{trace_id}-{call.span_id}-01" in stack.simulator.traceparents  # the provider got the context
    text = repr([s.attributes for s in spans])
    assert "Peru" not in text and "example.com" not in text and "gen_ai.input.messages" not in text


def test_fallback_attempts_are_child_spans(traced: tuple[Stack, TracerProvider], receiver: Receiver) -> None:
    stack, provider = traced
    trace_id, _, headers = _caller()
    oai = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="x", max_retries=0)
    with oai.chat.completions.stream(model="trace-fb", messages=Q, extra_body=CTX,  # type: ignore[arg-type]
                                     extra_headers=headers) as stream:
        assert "".join(e.delta for e in stream if e.type == "content.delta")
    spans = _flush(provider, receiver, trace_id, 4)
    (req,) = [s for s in spans if s.kind == "SERVER"]
    assert req.attributes["canaryflow.served_by"] == "fallback"
    assert req.attributes["canaryflow.fallback.reason"] == "server_error"
    assert req.attributes["gen_ai.provider.name"] == "anthropic"  # who answered
    calls = sorted((s for s in spans if s.kind == "CLIENT"), key=lambda s: s.attributes["canaryflow.attempt"])
    assert {c.parent_id for c in calls} == {req.span_id}
    primary = [c for c in calls if "canaryflow.fallback.index" not in c.attributes]
    fallback = [c for c in calls if c.attributes.get("canaryflow.fallback.index") == 0]
    assert [c.name for c in primary] == ["chat gpt-4.1-nano"] * 2  # the retry is an attempt of its own
    assert all(c.attributes["error.type"] == "server_error" and c.status == 2 for c in primary)
    assert [c.name for c in fallback] == ["chat claude-haiku-4-5"]
    assert "error.type" not in fallback[0].attributes
    assert f"00-{trace_id}-{fallback[0].span_id}-01" in stack.simulator.traceparents


def test_shadow_call_is_a_child_of_the_mirrored_request(traced: tuple[Stack, TracerProvider],
                                                        receiver: Receiver) -> None:
    stack, provider = traced
    trace_id, _, headers = _caller()
    oai = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="x", max_retries=0)
    oai.chat.completions.create(model="trace-shadow", messages=Q, extra_body=CTX,  # type: ignore[arg-type]
                                extra_headers=headers)
    spans = _flush(provider, receiver, trace_id, 3)
    (req,) = [s for s in spans if s.kind == "SERVER"]
    (shadow,) = [s for s in spans if s.attributes.get("canaryflow.variation") == "shadow"]
    assert shadow.parent_id == req.span_id and shadow.name == "chat gpt-4o" and shadow.kind == "CLIENT"
    assert shadow.attributes["canaryflow.version"] == 2
    assert shadow.attributes["gen_ai.usage.output_tokens"] > 0


def test_an_online_evaluation_is_a_span_with_the_genai_evaluation_event(traced: tuple[Stack, TracerProvider],
                                                                         receiver: Receiver) -> None:
    stack, provider = traced
    trace_id, _, headers = _caller()
    oai = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="x", max_retries=0)
    raw = oai.chat.completions.with_raw_response.create(model="trace-eval", messages=Q, extra_body=CTX,  # type: ignore[arg-type]
                                                        extra_headers=headers)
    spans = _flush(provider, receiver, trace_id, 3)
    (req,) = [s for s in spans if s.kind == "SERVER"]
    (ev,) = [s for s in spans if s.name == "gen_ai.evaluation.result"]
    assert ev.parent_id == req.span_id and ev.events == ["gen_ai.evaluation.result"]
    a = ev.attributes
    assert (a["gen_ai.evaluation.name"], a["gen_ai.evaluation.score.value"],
            a["gen_ai.evaluation.score.label"], a["canaryflow.evaluation.passed"]) == (
        "short", 0.0, "length", False)
    assert a["gen_ai.evaluation.explanation"] == "length out of bounds"
    assert a["canaryflow.request_id"] == raw.headers["x-canaryflow-request-id"]
    text = repr(a)
    assert raw.parse().choices[0].message.content not in text  # never the answer


def test_an_unsampled_caller_is_not_recorded_but_propagated(traced: tuple[Stack, TracerProvider],
                                                            receiver: Receiver) -> None:
    stack, provider = traced
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    oai = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="x", max_retries=0)
    oai.chat.completions.create(model="trace-bot", messages=Q, extra_body=CTX,  # type: ignore[arg-type]
                                extra_headers={"traceparent": f"00-{trace_id}-{span_id}-00"})
    assert provider.force_flush(10_000) and receiver.in_trace(trace_id) == []  # the caller did not sample
    assert any(tp.startswith(f"00-{trace_id}-") and tp.endswith("-00") for tp in stack.simulator.traceparents)


def test_a_gateway_error_is_on_the_span(traced: tuple[Stack, TracerProvider], receiver: Receiver) -> None:
    stack, provider = traced
    trace_id, _, headers = _caller()
    oai = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="no-such-bot", messages=Q, extra_body=CTX,  # type: ignore[arg-type]
                                    extra_headers=headers)
    (req,) = _flush(provider, receiver, trace_id, 1)
    assert req.attributes["http.response.status_code"] == 404 and req.attributes["error.type"] == "404"


def test_sdk_request_continues_the_app_span_and_captures_redacted_content(
        receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = _install(receiver, monkeypatch, capture=True)
    try:
        with running_stack(tmp_path, configs=[spec("trace-sdk")]) as stack:
            client = Client(stack.registry, refresh_interval=0.05)
            app_tracer = provider.get_tracer("app")
            with app_tracer.start_as_current_span("handle-ticket") as app_span:
                done = client.complete("trace-sdk", Q, {"key": "u-2"}, {"product": "Acme"})
                streamed = "".join(client.stream("trace-sdk", Q, {"key": "u-3"}, {"product": "Acme"}))
            trace_id = format(app_span.get_span_context().trace_id, "032x")
            spans = _flush(provider, receiver, trace_id, 5)
            client.close()
    finally:
        tracing.uninstall()
        provider.shutdown()
    (app,) = [s for s in spans if s.name == "handle-ticket"]
    reqs = [s for s in spans if s.name == "chat trace-sdk"]
    assert len(reqs) == 2 and {r.parent_id for r in reqs} == {app.span_id}
    assert {r.kind for r in reqs} == {"INTERNAL"}
    assert {r.attributes["canaryflow.request_id"] for r in reqs} >= {done.request_id}
    assert all(r.attributes["gen_ai.usage.output_tokens"] > 0 for r in reqs) and streamed
    inputs = reqs[0].attributes["gen_ai.input.messages"]
    assert "Peru" in inputs and "bob@example.com" not in inputs and "[EMAIL]" in inputs  # redacted
    assert "gen_ai.output.messages" in reqs[0].attributes
    calls = [s for s in spans if s.kind == "CLIENT"]
    assert len(calls) == 2 and {c.parent_id for c in calls} == {r.span_id for r in reqs}


def _start_gateway(env: dict[str, str], tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``canaryflow gateway`` on a free port, answering its own /healthz (another process may take the port
    between the pick and the bind on a shared machine: then it exits and a new port is tried)."""
    for attempt in range(3):
        port = free_port()
        with open(tmp / f"gateway-{attempt}.log", "wb") as log:
            proc = subprocess.Popen([CLI, "gateway", "--port", str(port)], env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if "cache" in httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json():
                    return proc, port
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        if proc.poll() is None:
            proc.kill()
            log_text = (tmp / f"gateway-{attempt}.log").read_text()
            raise AssertionError(f"the gateway did not answer in 120 s: {log_text}")
    raise AssertionError("the gateway could not bind a free port three times")


def test_the_gateway_command_traces_when_the_variables_ask(receiver: Receiver, tmp_path: Path) -> None:
    """``canaryflow gateway`` as deployed: the OTEL_* variables alone turn tracing on."""
    from canaryflow.registry import Registry
    from canaryflow.sim.engine import Simulator
    from canaryflow.sim.server import SimServer

    db = f"sqlite:///{tmp_path / 'r.db'}"
    registry = Registry(db)
    registry.push_config(spec("trace-cli"))
    registry.close()
    sim = SimServer(Simulator(seed=2, latency_scale=0.0))
    sim.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"CANARYFLOW_DB_URL": db, "OPENAI_BASE_URL": sim.openai_base_url, "OPENAI_API_KEY": "sk-t",
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"})
    proc, port = _start_gateway(env, tmp_path)
    try:
        trace_id, caller_span, headers = _caller()
        r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", headers=headers, timeout=60,
                       json={"model": "trace-cli", "messages": Q, **CTX})
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 60
        # the attempt's CLIENT span may be exported in an earlier batch than the request's SERVER span
        while not any(sp.kind == "SERVER" for sp in receiver.in_trace(trace_id)) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        spans = receiver.in_trace(trace_id)
        (req,) = [sp for sp in spans if sp.kind == "SERVER"]
        assert req.name == "chat trace-cli" and req.parent_id == caller_span
        assert req.service == "canaryflow-gateway"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        finally:
            if proc.poll() is None:
                proc.kill()
            sim.stop()


@pytest.mark.parametrize(("env", "on"), [
    ({}, False),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
])
def test_off_unless_the_otel_variables_ask(env: dict[str, str], on: bool) -> None:
    assert tracing.wanted(env) is on


def test_unknown_exporter_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ValidationFailed, match="OTEL_TRACES_EXPORTER='zipkin' is not supported"):
        tracing.build_provider()


@pytest.fixture
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=TEST_SERVER,
                                                        data_converter=pydantic_data_converter)
    await ensure_search_attributes(env.client)
    yield env
    await env.shutdown()


@pytest.mark.temporal
async def test_rollout_activities_are_traced(temporal_env: WorkflowEnvironment, receiver: Receiver,
                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = _install(receiver, monkeypatch)
    try:
        config: dict[str, Any] = {**temporal_env.client.config(),
                                  "interceptors": tracing.temporal_interceptors()}
        client = TemporalClient(**config)
        key, queue = unique_key("traced"), f"tq-{uuid.uuid4().hex[:8]}"
        registry = make_registry(tmp_path / "r.db", key)
        analysis = ScriptedAnalysis()
        plan = {"stages": [{"name": "canary-5", "kind": "percent", "percent": 5, "min_duration": "2m"},
                           {"name": "full", "kind": "full", "gates": []}],
                "gates": [{"metric": "error_rate", "margin": 0.5}], "analysis_interval": "1m"}
        async with build_worker(client, registry, task_queue=queue, activities=[analysis.analyze_stage]):
            handle = await client.start_workflow(
                "RolloutWorkflow",
                {"config_key": key, "candidate_version": 2, "plan": plan, "requested_by": "t"},
                id=workflow_id(key), task_queue=queue, result_type=RolloutStatus)
            await drive(temporal_env, handle, lambda s: _false(), step=60)
            assert (await handle.result()).state == "promoted"
        registry.close()
        assert provider.force_flush(10_000)
    finally:
        tracing.uninstall()
        provider.shutdown()
    (start,) = receiver.named("StartWorkflow:RolloutWorkflow")
    spans = receiver.in_trace(start.trace_id)
    names = {s.name for s in spans}
    assert {"RunWorkflow:RolloutWorkflow", "StartActivity:apply_exposure", "RunActivity:apply_exposure",
            "RunActivity:analyze_stage", "RunActivity:promote_candidate"} <= names, names
    by_id = {s.span_id: s for s in spans}
    for run in (s for s in spans if s.name.startswith("RunActivity:")):
        assert by_id[run.parent_id].name == "StartActivity:" + run.name.split(":", 1)[1]
        assert run.attributes["temporalWorkflowID"] == workflow_id(key)


async def _false() -> bool:
    return False
