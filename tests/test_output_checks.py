"""Guardrail fallback: a config's output checks on each answer, through the gateway and the simulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from pydantic import ValidationError

from canaryflow.domain.checks import Checker, OutputChecks
from tests.traffic_stack import Stack, running_stack, spec

SCHEMA = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"],
          "additionalProperties": False}
FORMAT = {"type": "json_schema", "name": "order_status", "schema": SCHEMA}
FALLBACK = [{"provider": "anthropic", "model": "claude-haiku-4-5"}]
Q = [{"role": "user", "content": "Where is order A-1?"}]


@pytest.mark.parametrize(("checks", "text", "finish", "expected"), [
    ({"valid_json": True}, '{"a": 1}', "stop", None),
    ({"valid_json": True}, '{"a": 1', "stop", "invalid_json"),
    ({"match_schema": True}, '{"status": "shipped"}', "stop", None),
    ({"match_schema": True}, '{"status": 12345}', "stop", "schema_mismatch"),
    ({"match_schema": True}, 'shipped', "stop", "invalid_json"),
    ({"non_empty": True}, "  \n", "stop", "empty"),
    ({"non_empty": True}, "", "tool_calls", None),
    ({"refusal": True}, "I'm sorry, but I can't help with that.", "stop", "refusal"),
    ({"refusal": True}, "I can't find order A-1; it may not exist yet.", "stop", None),
    ({"refusal": True}, "", "content_filter", "refusal"),
    ({"regex": r"^\{"}, '{"a": 1}', "stop", None),
    ({"regex": r"^\{"}, 'Sure: {"a": 1}', "stop", "pattern"),
    ({"contains": ["status"]}, "no such word", "stop", "pattern"),
    ({"not_contains": ["TODO"]}, "TODO: answer", "stop", "pattern"),
    ({"min_length": 5}, "abc", "stop", "length"),
    ({"max_length": 5}, "abcdefgh", "stop", "length"),
    ({}, "", "content_filter", None),
])
def test_each_check_names_its_reason(checks: dict[str, Any], text: str, finish: str,
                                     expected: str | None) -> None:
    checker = Checker(OutputChecks.model_validate(checks), SCHEMA)
    assert checker.check(text, finish_reason=finish) == expected


def test_a_provider_refusal_is_rerouted_only_when_the_config_says_so() -> None:
    assert not Checker(OutputChecks(refusal=True)).reroutes("refusal")
    assert Checker(OutputChecks(refusal=True, route_refusals=True)).reroutes("refusal")
    assert Checker(OutputChecks(valid_json=True)).reroutes("invalid_json")


@pytest.mark.parametrize(("extra", "field", "words"), [
    ({"output_checks": {"regex": "([a-z"}}, "output_checks.regex", "does not compile"),
    ({"output_checks": {"match_schema": True}}, "output_checks", "set response_format"),
    ({"output_checks": {"min_length": 9, "max_length": 3}}, "output_checks", "above max_length"),
    ({"output_checks": {"valid_jsn": True}}, "output_checks.valid_jsn", "Extra inputs"),
])
def test_bad_checks_are_refused_at_push_naming_the_field(extra: dict[str, Any], field: str,
                                                         words: str) -> None:
    with pytest.raises(ValidationError) as info:
        spec("bad-checks", **extra)
    errors = info.value.errors()
    assert any(".".join(map(str, e["loc"])) == field and words in e["msg"] for e in errors), errors


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # the scoped markers make only the primary model misbehave; the fallback (another model) answers well
    configs = [
        spec("gr-schema", system="Answer with the order status. [sim@gpt-4o-mini:schema_error_rate=1]",
             response_format=FORMAT, output_checks={"match_schema": True}, fallback=FALLBACK),
        spec("gr-refusal", system="Answer. [sim@gpt-4o-mini:finish=content_filter]",
             output_checks={"refusal": True}, fallback=FALLBACK),
        spec("gr-routed", system="Answer. [sim@gpt-4o-mini:finish=content_filter]",
             output_checks={"refusal": True, "route_refusals": True}, fallback=FALLBACK),
        spec("gr-all-bad", system="Answer. [sim:schema_error_rate=1]", response_format=FORMAT,
             output_checks={"match_schema": True}, fallback=FALLBACK),
    ]
    with running_stack(tmp_path_factory.mktemp("checks"), configs=configs) as s:
        yield s


@pytest.fixture
def oai(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key="x", max_retries=0)


def test_an_answer_off_its_schema_is_served_by_the_fallback_and_counted_against_the_variation(
        stack: Stack, oai: openai.OpenAI) -> None:
    for n in range(3):
        raw = oai.chat.completions.with_raw_response.create(model="gr-schema", messages=Q,
                                                            user=f"u-{n}")
        answer = json.loads(raw.parse().choices[0].message.content or "")
        assert isinstance(answer["status"], str)
        assert raw.headers["x-canaryflow-fallback-reason"] == "schema_mismatch"
        assert raw.headers["x-canaryflow-served-by"] == "anthropic/claude-haiku-4-5"
    assert stack.count("canaryflow_requests_total", config="gr-schema", outcome="error",
                       error_type="schema_mismatch", served_by="fallback",
                       gen_ai_request_model="gpt-4o-mini") == 3
    assert stack.count("canaryflow_fallbacks_total", config="gr-schema", reason="schema_mismatch") == 3
    # the series exist at 0 before a first failure of each kind (the gates' increase() sees the first one)
    assert "error_type=\"invalid_json\"" in stack.metrics.exposition().decode()


def test_a_safety_refusal_is_recorded_not_routed_around(stack: Stack, oai: openai.OpenAI) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="gr-refusal", messages=Q)
    assert raw.parse().choices[0].finish_reason == "content_filter"
    assert raw.headers["x-canaryflow-fallback"] == "false"
    assert stack.count("canaryflow_requests_total", config="gr-refusal", outcome="error",
                       error_type="refusal", served_by="primary") == 1
    assert stack.count("canaryflow_fallbacks_total", config="gr-refusal") == 0


def test_a_refusal_is_routed_when_the_config_says_so(stack: Stack, oai: openai.OpenAI) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="gr-routed", messages=Q)
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-canaryflow-fallback-reason"] == "refusal"
    assert stack.count("canaryflow_requests_total", config="gr-routed", error_type="refusal",
                       served_by="fallback") == 1


def test_when_every_answer_fails_its_checks_the_user_gets_an_error_saying_which(
        stack: Stack, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        oai.chat.completions.create(model="gr-all-bad", messages=Q)
    assert info.value.status_code == 502
    assert "schema_mismatch" in str(info.value.response.json())
    assert stack.count("canaryflow_requests_total", config="gr-all-bad", outcome="error",
                       error_type="schema_mismatch", served_by="none") == 1


def test_a_stream_is_checked_at_its_end_and_only_recorded(stack: Stack, oai: openai.OpenAI) -> None:
    before = stack.count("canaryflow_fallbacks_total", config="gr-schema")
    chunks = oai.chat.completions.create(model="gr-schema", messages=Q, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text  # the primary's answer reached the user as it streamed
    assert stack.count("canaryflow_requests_total", config="gr-schema", outcome="error",
                       error_type="schema_mismatch", served_by="primary") == 1
    assert stack.count("canaryflow_fallbacks_total", config="gr-schema") == before
