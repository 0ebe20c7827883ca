"""The pure functions of the traffic plane: apply a config, translate across APIs, meter answers."""

from __future__ import annotations

from typing import Any

import pytest

from canaryflow.domain.answers import StreamMeter, ToolCall, check_tool_call, declared_tools, meter
from canaryflow.domain.crossapi import Untranslatable, anthropic_to_openai, openai_to_anthropic
from canaryflow.domain.errors import ValidationFailed
from canaryflow.domain.passthrough import Decisions, apply_config
from canaryflow.domain.requests import check_request
from canaryflow.domain.shaping import EventShaper, shape_request

SCHEMA = {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}
CONFIG_TOOL = {"name": "lookup_order", "description": "Find an order", "parameters": SCHEMA}
D = Decisions(
    "gpt-4o-mini", ({"role": "system", "content": "Be kind."},), {"temperature": 0.2, "max_tokens": 100}
)


def test_same_api_changes_only_the_config_decisions() -> None:
    body = {
        "model": "bot",
        "messages": [{"role": "user", "content": "hi"}],
        "n": 3,
        "x_future": [1],
        "canaryflow": {"user": "u"},
        "max_tokens": 500,
        "temperature": 1.5,
    }
    assert apply_config("chat", body, D) == {
        "model": "gpt-4o-mini",
        "n": 3,
        "x_future": [1],
        "max_tokens": 100,
        "temperature": 0.2,
        "messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "hi"}],
    }
    assert body["model"] == "bot" and "canaryflow" in body  # the caller's body is not modified


@pytest.mark.parametrize(
    ("api", "caller", "config", "want"),
    [
        ("chat", {"max_completion_tokens": 50}, 100, {"max_completion_tokens": 50}),
        ("chat", {"max_tokens": 500}, 100, {"max_tokens": 100}),
        ("chat", {}, 100, {"max_completion_tokens": 100}),
        ("chat", {"max_tokens": 70}, None, {"max_tokens": 70}),
        ("messages", {"max_tokens": 4000}, 100, {"max_tokens": 100}),
        ("messages", {}, None, {"max_tokens": 1024}),
        ("responses", {"max_output_tokens": 30}, 100, {"max_output_tokens": 30}),
        # both chat limits sent: each is capped (a server may read either)
        ("chat", {"max_completion_tokens": 50, "max_tokens": 5000}, 100,
         {"max_completion_tokens": 50, "max_tokens": 100}),
    ],
)
def test_a_caller_token_limit_can_only_lower_the_config_s(
    api: Any, caller: dict[str, Any], config: int | None, want: dict[str, Any]
) -> None:
    body = {"model": "bot", "messages": [{"role": "user", "content": "hi"}], "input": "hi", **caller}
    out = apply_config(api, body, Decisions("m", parameters={"max_tokens": config} if config else {}))
    assert {k: v for k, v in out.items() if "max" in k} == want


@pytest.mark.parametrize("limit", ["100", 12.5, True, [100]])
def test_a_caller_token_limit_that_is_not_an_integer_is_refused_not_replaced(limit: Any) -> None:
    body = {"model": "bot", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": limit}
    with pytest.raises(ValidationFailed) as err:
        apply_config("chat", body, Decisions("m", parameters={"max_tokens": 100}))
    assert err.value.source == "max_completion_tokens"


def test_across_apis_a_null_max_completion_tokens_leaves_max_tokens_the_limit() -> None:
    body = {"model": "an", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": None,
            "max_tokens": 300}
    assert openai_to_anthropic(body)["max_tokens"] == 300


def test_tool_merge_rule_config_tools_after_the_caller_s_and_replacing_same_names() -> None:
    caller_tools = [
        {"type": "function", "function": {"name": "lookup_order", "parameters": {}}},
        {"type": "function", "function": {"name": "weather"}},
        {"type": "web_search"},
    ]
    body = {
        "model": "b",
        "messages": [{"role": "user", "content": "x"}],
        "tools": caller_tools,
        "tool_choice": "auto",
    }
    out = apply_config("chat", body, Decisions("m", tools=(CONFIG_TOOL,), tool_choice="lookup_order"))
    assert out["tools"] == [
        caller_tools[1],
        caller_tools[2],
        {
            "type": "function",
            "function": {"name": "lookup_order", "parameters": SCHEMA, "description": "Find an order"},
        },
    ]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "lookup_order"}}
    ant = apply_config(
        "messages",
        {"model": "b", "messages": []},
        Decisions("m", tools=(CONFIG_TOOL,), tool_choice="required"),
    )
    assert ant["tools"] == [{"name": "lookup_order", "input_schema": SCHEMA, "description": "Find an order"}]
    assert ant["tool_choice"] == {"type": "any"}


def test_config_response_format_wins_per_api() -> None:
    fmt = {"type": "json_schema", "name": "answer", "schema": SCHEMA, "strict": True}
    chat = apply_config(
        "chat",
        {"model": "b", "messages": [], "response_format": {"type": "text"}},
        Decisions("m", response_format=fmt),
    )
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True},
    }
    resp = apply_config(
        "responses",
        {"model": "b", "input": "x", "text": {"verbosity": "low"}},
        Decisions("m", response_format=fmt),
    )
    assert resp["text"] == {
        "verbosity": "low",
        "format": {"type": "json_schema", "name": "answer", "schema": SCHEMA, "strict": True},
    }
    ant = apply_config("messages", {"model": "b", "messages": []}, Decisions("m", response_format=fmt))
    assert ant["output_format"] == {"type": "json_schema", "schema": SCHEMA}


def test_anthropic_system_blocks_keep_their_cache_markers() -> None:
    blocks = [{"type": "text", "text": "ctx", "cache_control": {"type": "ephemeral"}}]
    out = apply_config("messages", {"model": "b", "messages": [], "system": blocks}, D)
    assert out["system"] == [{"type": "text", "text": "Be kind."}, *blocks]
    assert (
        apply_config("messages", {"model": "b", "messages": [], "system": "Mine."}, D)["system"]
        == "Be kind.\n\nMine."
    )


def test_openai_to_anthropic_refuses_or_drops_fields_without_counterpart() -> None:
    body = {"model": "b", "messages": [{"role": "user", "content": "hi"}], "logit_bias": {"1": 2}}
    with pytest.raises(Untranslatable) as err:
        openai_to_anthropic(body)
    assert err.value.source == "logit_bias" and "no Anthropic" in str(err.value)
    assert "logit_bias" not in openai_to_anthropic(body, drop=("logit_bias",))
    assert openai_to_anthropic({**body, "logit_bias": None, "n": 1, "logprobs": False})["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    ]


def test_anthropic_to_openai_maps_thinking_and_tools() -> None:
    out = anthropic_to_openai(
        {
            "model": "b",
            "max_tokens": 9000,
            "thinking": {"type": "enabled", "budget_tokens": 8000},
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
            "tools": [{"name": "f", "input_schema": SCHEMA}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": {"type": "url", "url": "http://i"}},
                        {"type": "text", "text": "what?"},
                    ],
                }
            ],
        }
    )
    assert out["reasoning_effort"] == "high" and out["parallel_tool_calls"] is False
    assert out["tools"] == [{"type": "function", "function": {"name": "f", "parameters": SCHEMA}}]
    assert out["messages"][0]["content"][0] == {"type": "image_url", "image_url": {"url": "http://i"}}
    with pytest.raises(Untranslatable) as err:
        anthropic_to_openai(
            {
                "model": "b",
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "document", "source": {"type": "base64", "data": "x"}}],
                    }
                ],
            }
        )
    assert err.value.source == "messages[0].content[0].source"


def test_malformed_fields_are_400s_not_crashes() -> None:
    with pytest.raises(ValidationFailed) as err:
        shape_request(
            "messages",
            {"model": "b", "messages": [{"role": "user", "content": "x"}], "stop_sequences": True},
            D,
            "chat",
        )
    assert err.value.source == "stop_sequences"
    with pytest.raises(ValidationFailed):
        shape_request(
            "chat",
            {
                "model": "b",
                "messages": [{"role": "user", "content": "x"}],
                "max_tokens": "lots",
                "reasoning_effort": "high",
            },
            D,
            "messages",
        )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": 3, "messages": [{"role": "user"}]}, "model"),
        ({"model": "b", "messages": []}, "messages"),
        ({"model": "b", "messages": [{"role": "user"}], "stream": 1}, "stream"),
        (
            {"model": "b", "messages": [{"role": "user"}], "canaryflow": {"variables": []}},
            "canaryflow.variables",
        ),
        ({"model": "b", "messages": [{"role": "user"}], "tools": {}}, "tools"),
    ],
)
def test_check_request_names_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        check_request("chat", body)
    assert err.value.source == field


@pytest.mark.parametrize(
    ("call", "result"),
    [
        (ToolCall("lookup_order", '{"id": "A1"}'), "valid"),
        (ToolCall("lookup_order", {"id": "A1"}), "valid"),
        (ToolCall("lookup_order", '{"id": 5}'), "schema_mismatch"),
        (ToolCall("lookup_order", "{}"), "schema_mismatch"),
        (ToolCall("lookup_order", "{oops"), "invalid_json"),
        (ToolCall("lookup_order", "[1]"), "invalid_json"),
        (ToolCall("cancel_order", "{}"), "unknown_tool"),
    ],
)
def test_tool_calls_are_checked_against_the_request_s_tools(call: ToolCall, result: str) -> None:
    tools = declared_tools(
        "chat", {"tools": [{"type": "function", "function": {"name": "lookup_order", "parameters": SCHEMA}}]}
    )
    assert tools is not None and check_tool_call(call, tools) == result


def test_meter_reads_cached_and_reasoning_tokens_per_api() -> None:
    chat = meter(
        "chat",
        {
            "choices": [
                {
                    "finish_reason": "tool_calls",
                    "message": {"tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]},
                }
            ],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 4},
                "completion_tokens_details": {"reasoning_tokens": 2},
            },
        },
    )
    assert (chat.input_tokens, chat.cached_input_tokens, chat.reasoning_tokens, chat.finish_reason) == (
        10,
        4,
        2,
        "tool_calls",
    )
    ant = meter(
        "messages",
        {
            "stop_reason": "tool_use",
            "content": [{"type": "tool_use", "name": "f", "input": {}}],
            "usage": {"input_tokens": 3, "cache_read_input_tokens": 7, "output_tokens": 1},
        },
    )
    assert (ant.input_tokens, ant.cached_input_tokens, ant.finish_reason, len(ant.tool_calls)) == (
        10,
        7,
        "tool_calls",
        1,
    )


def test_stream_meter_assembles_streamed_tool_calls() -> None:
    acc = StreamMeter("chat")
    for args in ('{"id":', ' "A1"}'):
        acc.feed(
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {
                            "tool_calls": [
                                {
                                    "index": 0,
                                    "function": {
                                        "name": "lookup_order" if args.startswith("{") else None,
                                        "arguments": args,
                                    },
                                }
                            ]
                        },
                    }
                ]
            }
        )
    acc.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    got = acc.result()
    assert got.tool_calls == [ToolCall("lookup_order", '{"id": "A1"}')] and got.finish_reason == "tool_calls"


def test_event_shaper_hides_the_usage_a_chat_caller_did_not_ask_for() -> None:
    shaper = EventShaper("chat", "chat", include_usage=False)
    assert shaper.feed({"choices": [], "usage": {"prompt_tokens": 1}}) == []
    assert shaper.feed({"choices": [{"delta": {}}], "usage": None}) == [{"choices": [{"delta": {}}]}]


@pytest.mark.parametrize(("caller_api", "api"), [("chat", "messages"), ("messages", "messages")])
def test_a_config_tool_choice_keeps_the_caller_s_parallel_setting(caller_api: str, api: str) -> None:
    """The config decides which tool may be called; the caller's ``parallel_tool_calls: false`` (Anthropic
    ``disable_parallel_tool_use``) still holds."""
    tool = {"name": "f", "parameters": {"type": "object", "properties": {}}}
    body: dict[str, Any] = {"model": "b", "messages": [{"role": "user", "content": "x"}], "max_tokens": 50}
    if caller_api == "chat":
        body.update(tools=[{"type": "function", "function": tool}], parallel_tool_calls=False)
    else:
        body.update(tools=[{"name": "f", "input_schema": tool["parameters"]}],
                    tool_choice={"type": "auto", "disable_parallel_tool_use": True})
    out = shape_request(caller_api, body, Decisions("m", tool_choice="required"), api)
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
