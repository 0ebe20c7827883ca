"""``canaryflow.openfeature.CanaryflowProvider`` through the real OpenFeature SDK (api, client, hooks, events,
tracking), with the SDK's in-memory provider as the fallback of a multi-provider setup."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagEvaluationDetails, FlagValueType, Reason
from openfeature.hook import Hook, HookContext, HookHints
from openfeature.provider import ProviderStatus
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider
from openfeature.track import TrackingEventDetails

from canaryflow.domain.serving import Exposure
from canaryflow.errors import ValidationFailed
from canaryflow.metrics.instruments import Metrics
from canaryflow.openfeature import CanaryflowProvider
from canaryflow.registry import Registry
from canaryflow.serving.client import Client
from tests.traffic_stack import SEGMENTS, spec

VARS = {"canaryflow.variables": {"product": "Acme"}}
TOOL = {"name": "lookup_order", "description": "Find an order by id",
        "parameters": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}}
BETA = Exposure(candidate_version=2, stage="beta", stage_kind="segments", segments=["beta"], salt="s")


def _ctx(user: str, **attributes: Any) -> EvaluationContext:
    return EvaluationContext(user, {**attributes, **VARS})


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    tmp: Path = tmp_path_factory.mktemp("of")
    reg = Registry(f"sqlite:///{tmp / 'r.db'}")
    reg.push_segments(SEGMENTS, by="test")
    reg.push_config(spec("of-bot"))
    reg.push_config(spec("of-bot", model="gpt-4o", system="Be brief about {{product}}."))
    reg.push_config(spec("of-split"))
    reg.push_config(spec("of-static", tools=[TOOL], tool_choice="auto"))
    reg.push_config(spec("of-split", model="gpt-4o"))
    reg.apply_exposure("of-split", Exposure(candidate_version=2, stage="c50", stage_kind="percent",
                                            percent=50.0, salt="s"), by="t", reason="t", source="test")
    reg.apply_exposure("of-bot", BETA, by="t", reason="t", source="test")
    reg.push_config(spec("of-held"))
    reg.push_config(spec("of-held", model="gpt-4o"))
    reg.apply_exposure("of-held", Exposure(candidate_version=2, stage="beta", stage_kind="segments",
                                           segments=["beta"], holdback=0.5, salt="s"),
                       by="t", reason="t", source="test")
    yield reg
    reg.close()


@pytest.fixture(scope="module")
def provider(registry: Registry) -> Iterator[CanaryflowProvider]:
    client = Client(registry, refresh_interval=0.05)
    client.traffic(metrics=Metrics(), traffic_rate=0.0)
    prov = CanaryflowProvider(client, poll_interval=0.05)
    api.set_provider_and_wait(prov, "canaryflow-test")
    yield prov
    api.clear_providers()
    client.close()


def _client() -> Any:
    return api.get_client("canaryflow-test")


def test_object_flag_is_the_resolved_config(provider: CanaryflowProvider) -> None:
    assert _client().get_provider_status() == ProviderStatus.READY
    d = _client().get_object_details("of-bot", {}, _ctx("u-1", beta=True))
    assert d.error_code is None and d.reason == Reason.TARGETING_MATCH and d.variant == "candidate"
    v = d.value
    assert (v["config"], v["version"], v["variation"], v["segment"]) == ("of-bot", 2, "candidate", "beta")
    assert v["model"] == "gpt-4o" and v["provider"] == "openai" and v["candidate"] is True
    assert v["messages"] == [{"role": "system", "content": "Be brief about Acme."}]
    assert v["parameters"] == {"temperature": 0.2, "max_tokens": 200} and v["tools"] == []
    assert d.flag_metadata["version"] == 2 and d.flag_metadata["variation"] == "candidate"
    assert d.flag_metadata["request_id"] == v["request_id"] and len(v["request_id"]) == 32


@pytest.mark.parametrize(("flag", "user", "attrs", "reason", "variant"), [
    ("of-bot", "u-2", {}, Reason.DEFAULT, "stable"),  # a segments rollout that does not target u-2
    ("of-bot", "u-3", {"beta": True}, Reason.TARGETING_MATCH, "candidate"),
])
def test_reasons(provider: CanaryflowProvider, flag: str, user: str, attrs: dict[str, Any], reason: Reason,
                 variant: str) -> None:
    d = _client().get_object_details(flag, {}, _ctx(user, **attrs))
    assert (d.reason, d.variant) == (reason, variant)


def test_percent_split_reason_on_both_sides(provider: CanaryflowProvider) -> None:
    seen = {d.variant: d.reason for d in (_client().get_string_details("of-split.model", "x", _ctx(f"u-{i}"))
                                          for i in range(40))}
    assert seen == {"stable": Reason.SPLIT, "candidate": Reason.SPLIT}


def test_a_segments_holdback_is_a_split_inside_the_segment_and_default_outside(
        provider: CanaryflowProvider) -> None:
    seen = {d.variant: d.reason for d in (_client().get_string_details("of-held.model", "x",
                                                                       _ctx(f"u-{i}", beta=True))
                                          for i in range(40))}
    assert seen == {"stable": Reason.SPLIT, "candidate": Reason.SPLIT}
    d = _client().get_string_details("of-held.model", "x", _ctx("u-1"))
    assert (d.variant, d.reason) == ("stable", Reason.DEFAULT)


def test_static_when_no_rollout(provider: CanaryflowProvider) -> None:
    d = _client().get_string_details("of-static.model", "fallback-model", _ctx("u-1"))
    assert (d.value, d.reason, d.variant, d.flag_metadata["version"]) == ("gpt-4o-mini", Reason.STATIC,
                                                                          "stable", 1)
    value = _client().get_object_value("of-static", {}, _ctx("u-1"))
    assert value["tools"][0]["name"] == "lookup_order" and value["tool_choice"] == "auto"
    assert _client().get_string_value("of-static.tools", "x", _ctx("u-1")) == "x"  # a list is no string


def test_typed_field_evaluations(provider: CanaryflowProvider) -> None:
    c, ctx = _client(), _ctx("u-1", beta=True)
    assert c.get_string_value("of-bot.model", "x", ctx) == "gpt-4o"
    assert c.get_integer_value("of-bot.version", 0, ctx) == 2
    assert c.get_integer_value("of-bot.parameters.max_tokens", 0, ctx) == 200
    assert c.get_float_value("of-bot.parameters.temperature", 0.0, ctx) == 0.2
    assert c.get_float_value("of-bot.parameters.max_tokens", 0.0, ctx) == 200.0  # an integer widens
    assert c.get_boolean_value("of-bot.candidate", False, ctx) is True
    assert c.get_object_value("of-bot.messages", [], ctx)[0]["role"] == "system"


@pytest.mark.parametrize(("kind", "flag", "default"), [
    ("boolean", "of-bot.model", False),
    ("integer", "of-bot.parameters.temperature", 0),   # a float never serves an integer evaluation
    ("integer", "of-bot.candidate", 0),                # a boolean is not a number
    ("string", "of-bot", ""),
    ("object", "of-bot.model", {}),
])
def test_type_mismatch(provider: CanaryflowProvider, kind: str, flag: str, default: FlagValueType) -> None:
    d = getattr(_client(), f"get_{kind}_details")(flag, default, _ctx("u-1"))
    assert (d.value, d.reason, d.error_code) == (default, Reason.ERROR, ErrorCode.TYPE_MISMATCH)
    assert flag in (d.error_message or "")


async def test_async_evaluation(provider: CanaryflowProvider) -> None:
    d = await _client().get_object_details_async("of-bot", {}, _ctx("u-1", beta=True))
    assert (d.value["version"], d.reason) == (2, Reason.TARGETING_MATCH)
    assert await _client().get_float_value_async("of-bot.parameters.temperature", 0.0, _ctx("u-1")) == 0.2


def test_flag_not_found_and_parse_error(provider: CanaryflowProvider) -> None:
    c = _client()
    d = c.get_object_details("no-such-config", {"model": "safe"}, _ctx("u-1"))
    assert (d.value, d.error_code, d.reason) == ({"model": "safe"}, ErrorCode.FLAG_NOT_FOUND, Reason.ERROR)
    assert "unknown config 'no-such-config'" in (d.error_message or "")
    d = c.get_string_details("of-bot.nosuch", "x", _ctx("u-1"))
    assert d.error_code == ErrorCode.FLAG_NOT_FOUND and "no field 'nosuch'" in (d.error_message or "")
    d = c.get_object_details("of-bot", {}, EvaluationContext("u-1", {}))  # {{product}} not given
    assert d.error_code == ErrorCode.PARSE_ERROR and "'product'" in (d.error_message or "")
    d = c.get_object_details("of-bot", {}, EvaluationContext("u-1", {"canaryflow.variables": "Acme"}))
    assert d.error_code == ErrorCode.INVALID_CONTEXT and "canaryflow.variables" in (d.error_message or "")


class Recorder(Hook):
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def before(self, hook_context: HookContext, hints: HookHints) -> EvaluationContext | None:
        self.calls.append(("before", hook_context.flag_key))
        return EvaluationContext(attributes={"beta": True})  # hooks can add targeting attributes

    def after(self, hook_context: HookContext, details: FlagEvaluationDetails[FlagValueType],
              hints: HookHints) -> None:
        self.calls.append(("after", details.variant))

    def error(self, hook_context: HookContext, exception: Exception, hints: HookHints) -> None:
        self.calls.append(("error", getattr(exception, "error_code", None)))

    def finally_after(self, hook_context: HookContext, details: FlagEvaluationDetails[FlagValueType],
                      hints: HookHints) -> None:
        self.calls.append(("finally", details.reason))


def test_hooks_see_the_evaluation(provider: CanaryflowProvider) -> None:
    hook = Recorder()
    c = _client()
    c.add_hooks([hook])
    try:
        assert c.get_string_value("of-bot.model", "x", _ctx("u-9")) == "gpt-4o"  # the hook made u-9 beta
        c.get_string_value("nope.model", "x", _ctx("u-9"))
    finally:
        c.hooks.remove(hook)
    assert hook.calls == [("before", "of-bot.model"), ("after", "candidate"),
                          ("finally", Reason.TARGETING_MATCH), ("before", "nope.model"),
                          ("error", ErrorCode.FLAG_NOT_FOUND), ("finally", Reason.ERROR)]


def test_configuration_changed_event(provider: CanaryflowProvider, registry: Registry) -> None:
    got: list[EventDetails] = []
    seen = threading.Event()

    def handler(details: EventDetails) -> None:
        if "of-bot" in (details.flags_changed or []):
            got.append(details)
            seen.set()

    client = _client()
    client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, handler)
    try:
        registry.clear_exposure("of-bot", by="t", reason="t", source="test")
        assert seen.wait(10), "no PROVIDER_CONFIGURATION_CHANGED within 10 s"
    finally:
        client.remove_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, handler)
    assert got[0].provider_name == "canaryflow"
    deadline = time.monotonic() + 10
    while _client().get_integer_value("of-bot.version", 0, _ctx("u-1", beta=True)) != 1:
        assert time.monotonic() < deadline, "the change was announced but not served"
        time.sleep(0.02)
    registry.apply_exposure("of-bot", BETA, by="t", reason="t", source="test")


def test_tracking_counts_completions_and_feedback(provider: CanaryflowProvider, registry: Registry) -> None:
    metrics = provider.client.traffic().plane.metrics
    assert metrics is not None
    c = _client()
    d = c.get_object_details("of-split", {}, _ctx("u-7"))
    rid, variation = d.flag_metadata["request_id"], str(d.variant)
    labels = {"config": "of-split", "variation": variation}
    before = metrics.value("canaryflow_requests_total", labels)
    c.track("completion", _ctx("u-7"), TrackingEventDetails(0.42, {
        "request_id": rid, "finish_reason": "stop", "input_tokens": 12, "output_tokens": 30}))
    assert metrics.value("canaryflow_requests_total", {**labels, "outcome": "success"}) >= 1
    assert metrics.value("canaryflow_requests_total", labels) == before + 1
    assert metrics.value("gen_ai_client_token_usage_sum", {**labels, "gen_ai_token_type": "output"}) >= 30
    c.track("feedback", _ctx("u-7"), TrackingEventDetails(-1, {"request_id": rid, "comment": "wrong"}))
    assert metrics.value("canaryflow_feedback_total", {**labels, "sentiment": "negative"}) == 1
    with pytest.raises(ValidationFailed, match="request_id"):
        c.track("feedback", _ctx("u-7"), TrackingEventDetails(1, {"request_id": "nope"}))
    with pytest.raises(ValidationFailed, match="canaryflow tracks completion, feedback, edited"):
        c.track("clicked", _ctx("u-7"), TrackingEventDetails(1, {"request_id": rid}))


def test_tracking_maps_implicit_feedback_events(provider: CanaryflowProvider) -> None:
    metrics = provider.client.traffic().plane.metrics
    assert metrics is not None
    c = _client()
    d = c.get_object_details("of-split", {}, _ctx("u-8"))
    rid, labels = d.flag_metadata["request_id"], {"config": "of-split", "variation": str(d.variant)}
    before = metrics.value("canaryflow_implicit_feedback_total", {**labels, "event": "edited"})
    c.track("edited", _ctx("u-8"), TrackingEventDetails(17, {"request_id": rid}))
    c.track("copied", _ctx("u-8"), TrackingEventDetails(attributes={"request_id": rid}))
    assert metrics.value("canaryflow_implicit_feedback_total", {**labels, "event": "edited"}) == before + 1
    assert metrics.value("canaryflow_implicit_feedback_value_total", {**labels, "event": "edited"}) >= 17
    assert metrics.value("canaryflow_implicit_feedback_total", {**labels, "event": "copied"}) >= 1
    with pytest.raises(ValidationFailed, match="needs 'value'"):
        c.track("dwell_seconds", _ctx("u-8"), TrackingEventDetails(attributes={"request_id": rid}))


def test_in_memory_provider_as_fallback(provider: CanaryflowProvider) -> None:
    """The SDK's in-memory provider serves a safe default config when canaryflow has no such flag."""
    fallback = InMemoryProvider({"legacy-bot": InMemoryFlag("v", {"v": {"model": "gpt-4o-mini"}})})
    api.set_provider(fallback, "fallback-test")

    def resolve(flag: str) -> Any:
        d = _client().get_object_details(flag, {}, _ctx("u-1"))
        if d.error_code == ErrorCode.FLAG_NOT_FOUND:
            return api.get_client("fallback-test").get_object_value(flag, {}, _ctx("u-1"))
        return d.value

    assert resolve("legacy-bot") == {"model": "gpt-4o-mini"}
    assert resolve("of-bot")["config"] == "of-bot"
