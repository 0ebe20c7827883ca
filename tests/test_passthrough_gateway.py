"""Fidelity through the gateway: the official clients → gateway → a recording upstream.

Each test asserts that the upstream received exactly the caller's fields plus the config's decisions, and
that the client received exactly the upstream's answer — same API and across APIs, plain and streamed.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from pydantic import BaseModel

from canaryflow.gateway.server import build_gateway
from canaryflow.metrics.instruments import Metrics
from canaryflow.registry import Registry
from canaryflow.serving.client import Client
from canaryflow.sim.server import ThreadedServer
from tests.recording_upstream import Recorder, recording_upstream
from tests.traffic_stack import SEGMENTS, spec

CTX = {"canaryflow": {"user": "u-1", "variables": {"product": "Acme"}}}
SYSTEM = "You are the support assistant for Acme."
IMAGE = "data:image/png;base64,iVBORw0KGgo="
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
OAI_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather in a city", "parameters": WEATHER},
}
ANT_TOOL = {"name": "get_weather", "description": "Weather in a city", "input_schema": WEATHER}


class Gateway:
    def __init__(self, url: str, rec: Recorder, metrics: Metrics, client: Client) -> None:
        self.client = client
        self.url = url
        self.rec = rec
        self.metrics = metrics
        self.oai = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
        self.ant = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp: Path = tmp_path_factory.mktemp("passthrough")
    registry = Registry(f"sqlite:///{tmp / 'registry.db'}")
    registry.push_segments(SEGMENTS, by="test")
    registry.push_config(spec("oa", system="You are the support assistant for {{product}}."), author="t")
    registry.push_config(
        spec(
            "an",
            provider="anthropic",
            model="claude-haiku-4-5",
            system="You are the support assistant for {{product}}.",
        ),
        author="t",
    )
    registry.push_config(
        spec("fb", fallback=[{"provider": "anthropic", "model": "claude-haiku-4-5"}]), author="t"
    )
    registry.push_config(
        spec("an-drop", provider="anthropic", model="claude-haiku-4-5", drop=["seed", "logprobs", "detail"]),
        author="t"
    )
    registry.push_config(
        spec(
            "tooled",
            tools=[
                {
                    "name": "lookup_order",
                    "description": "Find an order",
                    "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
                }
            ],
            tool_choice="auto",
            response_format={"type": "json_schema", "name": "answer", "schema": {"type": "object"}},
        ),
        author="t",
    )
    with recording_upstream() as (rec, _):
        metrics = Metrics()
        client = Client(registry, refresh_interval=0.05)
        app, _plane = build_gateway(
            client=client,
            metrics=metrics,
            traffic_rate=0.0,
            max_body_bytes=1_000_000,
        )
        server = ThreadedServer(app)
        server.start()
        try:
            yield Gateway(server.url, rec, metrics, client)
        finally:
            server.stop()
            client.close()


# ── answers the upstream gives ─────────────────────────────────────────────────────────────────────

CHAT_ANSWER: dict[str, Any] = {
    "id": "chatcmpl-up1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini-2024",
    "system_fingerprint": "fp_1",
    "service_tier": "default",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "annotations": [],
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            "logprobs": {
                "content": [{"token": "x", "logprob": -0.1, "bytes": [120], "top_logprobs": []}],
                "refusal": None,
            },
        },
        {
            "index": 1,
            "finish_reason": "stop",
            "logprobs": None,
            "message": {"role": "assistant", "content": None, "refusal": "I can't help with that."},
        },
    ],
    "usage": {
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 100, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 12,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "a_future_field": {"kept": True},
}

ANT_ANSWER: dict[str, Any] = {
    "id": "msg_up1",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5-20251001",
    "content": [
        {"type": "thinking", "thinking": "The user wants weather.", "signature": "sig=="},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 20,
        "output_tokens": 15,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 80,
        "service_tier": "standard",
    },
}


def _chat_body(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "oa",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image, and the weather?"},
                    {"type": "image_url", "image_url": {"url": IMAGE, "detail": "low"}},
                    {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_0",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
        ],
        "tools": [OAI_TOOL],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
        },
        "n": 2,
        "logprobs": True,
        "top_logprobs": 2,
        "seed": 7,
        "stop": ["END"],
        "user": "u-1",
        "metadata": {"team": "support"},
        "reasoning_effort": "low",
        "service_tier": "flex",
        "store": True,
        "max_completion_tokens": 1000,
        "prediction": {"type": "content", "content": "x"},
        "a_future_field": {"nested": [1, 2]},
    }
    body.update(extra)
    return body


def _expected_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The caller's body with the config's decisions: model, system message, temperature, token cap."""
    want = {k: v for k, v in copy.deepcopy(body).items() if k != "canaryflow"}
    want["model"] = "gpt-4o-mini"
    want["messages"] = [{"role": "system", "content": SYSTEM}, *want["messages"]]
    want["temperature"] = 0.2
    want["max_completion_tokens"] = min(int(body.get("max_completion_tokens") or 200), 200)
    return want


# ── same API: OpenAI chat ──────────────────────────────────────────────────────────────────────────


def test_chat_same_api_carries_every_field_and_returns_the_answer_unchanged(gw: Gateway) -> None:
    gw.rec.reset(CHAT_ANSWER)
    body = _chat_body()
    raw = gw.oai.chat.completions.with_raw_response.create(
        **{k: v for k, v in body.items() if k not in ("a_future_field", "prediction", "metadata")},
        metadata=body["metadata"],
        prediction=body["prediction"],
        extra_body={"a_future_field": body["a_future_field"], **CTX},
    )
    assert gw.rec.last.path == "/v1/chat/completions"
    assert gw.rec.last.body == _expected_chat(body)
    assert raw.http_response.json() == CHAT_ANSWER
    assert raw.headers["x-canaryflow-version"] == "1"
    done = raw.parse()
    assert done.choices[0].message.tool_calls[0].function.name == "get_weather"  # type: ignore[index,union-attr]
    assert done.choices[1].message.refusal == "I can't help with that."
    labels = {"config": "oa", "finish_reason": "tool_calls", "outcome": "success"}
    assert gw.metrics.value("canaryflow_requests_total", labels) >= 1
    assert gw.metrics.value("canaryflow_tool_calls_total", {"config": "oa", "result": "valid"}) >= 1
    assert (
        gw.metrics.value("gen_ai_client_token_usage_sum", {"config": "oa", "gen_ai_token_type": "reasoning"})
        >= 12
    )
    assert (
        gw.metrics.value(
            "gen_ai_client_token_usage_sum", {"config": "oa", "gen_ai_token_type": "cached_input"}
        )
        >= 100
    )


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-s1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "system_fingerprint": "fp",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
    }


TOOL_CHUNKS = [
    _chunk(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_9",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ],
        }
    ),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
    _chunk({}, "tool_calls"),
    {
        "id": "chatcmpl-s1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "system_fingerprint": "fp",
        "choices": [],
        "usage": {
            "prompt_tokens": 50,
            "completion_tokens": 9,
            "total_tokens": 59,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    },
]


def test_chat_streamed_tool_calls_arrive_event_for_event(gw: Gateway) -> None:
    gw.rec.reset(events=TOOL_CHUNKS)
    with gw.oai.chat.completions.with_streaming_response.create(
        model="oa",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[OAI_TOOL],  # type: ignore[list-item]
        stream=True,
        stream_options={"include_usage": True},
        extra_body=CTX,
    ) as raw:
        lines = [line for line in raw.iter_lines() if line]
    assert gw.rec.last.body["stream_options"] == {"include_usage": True}
    assert [json.loads(line[6:]) for line in lines[:-1]] == TOOL_CHUNKS
    assert lines[-1] == "data: [DONE]"


def test_chat_stream_without_usage_asked_gets_no_usage_chunk(gw: Gateway) -> None:
    gw.rec.reset(events=TOOL_CHUNKS)
    with gw.oai.chat.completions.stream(
        model="oa", messages=[{"role": "user", "content": "Oslo?"}], tools=[OAI_TOOL], extra_body=CTX
    ) as stream:  # type: ignore[list-item]
        final = stream.get_final_completion()
    assert gw.rec.last.body["stream_options"] == {"include_usage": True}  # asked for metering only
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather" and call.function.parsed_arguments is None
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    assert final.usage is None


class Answer(BaseModel):
    text: str
    confidence: float


def test_chat_parse_with_a_pydantic_model(gw: Gateway) -> None:
    content = json.dumps({"text": "Paris", "confidence": 0.9})
    gw.rec.reset(
        {
            **CHAT_ANSWER,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "logprobs": None,
                    "message": {"role": "assistant", "content": content},
                }
            ],
        }
    )
    done = gw.oai.chat.completions.parse(
        model="oa", messages=[{"role": "user", "content": "Capital?"}], response_format=Answer, extra_body=CTX
    )
    assert done.choices[0].message.parsed == Answer(text="Paris", confidence=0.9)
    sent = gw.rec.last.body["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Answer"


# ── same API: OpenAI Responses ─────────────────────────────────────────────────────────────────────

RESPONSE: dict[str, Any] = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1700000000,
    "status": "completed",
    "model": "gpt-4o-mini",
    "output": [
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
            "status": "completed",
        },
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [
                {"type": "output_text", "text": '{"text":"Paris","confidence":1}', "annotations": []}
            ],
        },
    ],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "error": None,
    "incomplete_details": None,
    "instructions": None,
    "metadata": {},
    "temperature": 0.2,
    "top_p": 1.0,
    "usage": {
        "input_tokens": 40,
        "output_tokens": 10,
        "total_tokens": 50,
        "input_tokens_details": {"cached_tokens": 8},
        "output_tokens_details": {"reasoning_tokens": 4},
    },
}


def test_responses_create_and_parse(gw: Gateway) -> None:
    gw.rec.reset(RESPONSE)
    tool = {"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": True}
    raw = gw.oai.responses.with_raw_response.create(
        model="oa",
        input="Weather in Paris?",
        tools=[tool],
        reasoning={"effort": "low"},  # type: ignore[list-item]
        max_output_tokens=500,
        extra_body=CTX,
    )
    assert raw.http_response.json() == RESPONSE
    assert gw.rec.last.path == "/v1/responses"
    assert gw.rec.last.body == {
        "model": "gpt-4o-mini",
        "tools": [tool],
        "reasoning": {"effort": "low"},
        "max_output_tokens": 200,
        "temperature": 0.2,
        "instructions": SYSTEM,
        "input": "Weather in Paris?",
    }
    parsed = gw.oai.responses.parse(model="oa", input="Capital?", text_format=Answer, extra_body=CTX)
    assert parsed.output_parsed == Answer(text="Paris", confidence=1)
    assert gw.rec.last.body["text"]["format"]["type"] == "json_schema"


def test_responses_streamed(gw: Gateway) -> None:
    events = [
        {
            "type": "response.created",
            "sequence_number": 0,
            "response": {**RESPONSE, "status": "in_progress", "output": []},
        },
        {
            "type": "response.output_text.delta",
            "sequence_number": 1,
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "delta": "Par",
            "logprobs": [],
        },
        {"type": "response.completed", "sequence_number": 2, "response": RESPONSE},
    ]
    gw.rec.reset(events=events)
    with gw.oai.responses.create(model="oa", input="Capital?", stream=True, extra_body=CTX) as stream:
        got = [e.model_dump(mode="json", exclude_unset=True) for e in stream]
    assert got == events


def test_models_list_names_the_configs(gw: Gateway) -> None:
    assert sorted(m.id for m in gw.oai.models.list()) == ["an", "an-drop", "fb", "oa", "tooled"]
    assert sorted(m.id for m in gw.ant.models.list()) == ["an", "an-drop", "fb", "oa", "tooled"]


# ── same API: Anthropic ────────────────────────────────────────────────────────────────────────────


def _ant_body(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "an",
        "max_tokens": 4000,
        "system": [{"type": "text", "text": "Long shared context.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                    },
                    {"type": "text", "text": "Weather where this was taken?"},
                ],
            },
        ],
        "tools": [ANT_TOOL],
        "tool_choice": {"type": "auto"},
        "metadata": {"user_id": "u-1"},
    }
    body.update(extra)
    return body


def test_anthropic_tool_use_loop_same_api(gw: Gateway) -> None:
    gw.rec.reset(ANT_ANSWER)
    body = _ant_body()
    raw = gw.ant.messages.with_raw_response.create(**body, extra_body={**CTX, "top_k": 5})
    assert raw.http_response.json() == ANT_ANSWER
    want = copy.deepcopy(body)
    want.update(
        model="claude-haiku-4-5",
        temperature=0.2,
        max_tokens=200,
        top_k=5,
        system=[{"type": "text", "text": SYSTEM}, *body["system"]],
    )
    assert gw.rec.last.body == want
    msg = raw.parse()
    use = next(b for b in msg.content if b.type == "tool_use")
    # second turn: the assistant's blocks (thinking included) and the tool result go back as they came
    gw.rec.reset(
        {**ANT_ANSWER, "content": [{"type": "text", "text": "Sunny in Paris."}], "stop_reason": "end_turn"}
    )
    history = [
        *body["messages"],
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
    ]
    final = gw.ant.messages.create(**{**body, "messages": history}, extra_body=CTX)
    assert final.content[0].text == "Sunny in Paris."  # type: ignore[union-attr]
    assert gw.rec.last.body["messages"] == history


ANT_EVENTS: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            **ANT_ANSWER,
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": 20, "output_tokens": 1, "cache_read_input_tokens": 80},
        },
    },
    {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "thinking", "thinking": "", "signature": ""},
    },
    {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm."}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig=="}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"city": '},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '"Oslo"}'},
    },
    {"type": "content_block_stop", "index": 1},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 22},
    },
    {"type": "message_stop"},
]


def test_anthropic_stream_same_api_event_for_event(gw: Gateway) -> None:
    gw.rec.reset(events=ANT_EVENTS)
    with gw.ant.messages.with_streaming_response.create(**_ant_body(), stream=True, extra_body=CTX) as raw:
        text = raw.read().decode()
    got = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    assert got == ANT_EVENTS
    with gw.ant.messages.stream(**_ant_body(), extra_body=CTX) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "tool_use"]
    assert final.content[1].input == {"city": "Oslo"}  # type: ignore[union-attr]


# ── across APIs ────────────────────────────────────────────────────────────────────────────────────


def test_openai_client_served_by_an_anthropic_config(gw: Gateway) -> None:
    gw.rec.reset(ANT_ANSWER)
    done = gw.oai.chat.completions.create(
        model="an",
        max_completion_tokens=3000,  # reasoning_effort: test_openai_client_probe (Anthropic needs room)
        tools=[OAI_TOOL],
        tool_choice="required",  # type: ignore[list-item]
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}},
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather here?"},
                    {"type": "image_url", "image_url": {"url": IMAGE}},
                ],
            },
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_0",
                        "type": "function",  # type: ignore[list-item]
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
        ],
        user="u-1",
        extra_body=CTX,
    )
    assert gw.rec.last.path == "/v1/messages"
    assert gw.rec.last.body == {
        "model": "claude-haiku-4-5",
        "max_tokens": 200,
        "temperature": 0.2,
        "system": SYSTEM,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather here?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "call_0", "name": "get_weather", "input": {"city": "Rome"}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "call_0", "content": "sunny"}],
            },
        ],
        "tools": [ANT_TOOL],
        "tool_choice": {"type": "any"},
        "metadata": {"user_id": "u-1"},
        "output_format": {"type": "json_schema", "schema": {"type": "object"}},
    }
    msg = done.choices[0].message
    assert done.choices[0].finish_reason == "tool_calls" and msg.content == "Let me check."
    assert msg.tool_calls[0].id == "toolu_1"  # type: ignore[index]
    assert json.loads(msg.tool_calls[0].function.arguments) == {"city": "Paris"}  # type: ignore[index,union-attr]
    assert msg.model_extra and msg.model_extra["reasoning_content"] == "The user wants weather."
    assert done.usage is not None and done.usage.prompt_tokens == 100
    assert done.usage.prompt_tokens_details and done.usage.prompt_tokens_details.cached_tokens == 80


def test_openai_client_streams_from_an_anthropic_config(gw: Gateway) -> None:
    gw.rec.reset(events=ANT_EVENTS)
    with gw.oai.chat.completions.stream(
        model="an",
        messages=[{"role": "user", "content": "Oslo?"}],
        tools=[OAI_TOOL],
        stream_options={"include_usage": True},  # type: ignore[list-item]
        extra_body=CTX,
    ) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert final.choices[0].finish_reason == "tool_calls"
    assert call.id == "toolu_2" and json.loads(call.function.arguments) == {"city": "Oslo"}
    assert final.usage is not None and final.usage.completion_tokens == 22


def test_anthropic_client_served_by_an_openai_config(gw: Gateway) -> None:
    gw.rec.reset(CHAT_ANSWER | {"choices": CHAT_ANSWER["choices"][:1]})
    msg = gw.ant.messages.create(
        model="oa",
        max_tokens=100,
        system="Be brief.",
        tools=[ANT_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[
            {"role": "user", "content": "Weather in Rome?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t0", "name": "get_weather", "input": {"city": "Rome"}}
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t0", "content": "sunny"}]},
        ],
        extra_body=CTX,
    )
    assert gw.rec.last.path == "/v1/chat/completions"
    assert gw.rec.last.body == {
        "model": "gpt-4o-mini",
        "max_completion_tokens": 100,
        "temperature": 0.2,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "t0",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "t0", "content": "sunny"},
        ],
        "tools": [OAI_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    }
    assert msg.stop_reason == "tool_use"
    assert msg.content[0].type == "tool_use" and msg.content[0].input == {"city": "Paris"}


def test_anthropic_client_streams_from_an_openai_config(gw: Gateway) -> None:
    gw.rec.reset(events=TOOL_CHUNKS)
    with gw.ant.messages.stream(
        model="oa",
        max_tokens=100,
        tools=[ANT_TOOL],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Oslo?"}],
        extra_body=CTX,
    ) as stream:
        final = stream.get_final_message()
    assert gw.rec.last.body["stream_options"] == {"include_usage": True}
    assert final.stop_reason == "tool_use" and final.content[0].input == {"city": "Oslo"}  # type: ignore[union-attr]
    assert final.usage.output_tokens == 9


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"seed": 3}, "seed"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}],
                    }
                ]
            },
            "messages[0].content[0].type",
        ),
        (
            {"messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": IMAGE, "detail": "high"}}]}]},
            "messages[0].content[1].image_url.detail",
        ),
    ],
)
def test_cross_api_refuses_what_has_no_counterpart(gw: Gateway, extra: dict[str, Any], field: str) -> None:
    gw.rec.reset(ANT_ANSWER)
    body = {"model": "an", "messages": [{"role": "user", "content": "hi"}], **CTX, **extra}
    r = httpx.post(f"{gw.url}/v1/chat/completions", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == field
    assert "no Anthropic" in r.json()["error"]["message"] and not gw.rec.received


def test_a_config_may_opt_into_dropping_what_has_no_counterpart(gw: Gateway) -> None:
    """`drop: [seed, logprobs]` in the config: those fields are removed on the way to Anthropic instead of
    refused; a field the config did not list (n) is still refused by name."""
    gw.rec.reset(ANT_ANSWER)
    body = {"model": "an-drop", "messages": [{"role": "user", "content": "hi"}], "seed": 3, "logprobs": True,
            **CTX}
    r = httpx.post(f"{gw.url}/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    sent = gw.rec.last.body
    assert "seed" not in sent and "logprobs" not in sent and sent["model"] == "claude-haiku-4-5"
    r = httpx.post(f"{gw.url}/v1/chat/completions", json={**body, "n": 2})
    assert r.status_code == 400 and r.json()["error"]["param"] == "n"


def test_an_image_s_detail_auto_crosses_and_another_detail_is_refused_unless_the_config_drops_it(
        gw: Gateway) -> None:
    def ask(model: str, detail: str) -> httpx.Response:
        gw.rec.reset(ANT_ANSWER)
        image = {"type": "image_url", "image_url": {"url": IMAGE, "detail": detail}}
        return httpx.post(f"{gw.url}/v1/chat/completions", json={
            "model": model, "messages": [{"role": "user", "content": [image]}], **CTX})

    r = ask("an", "auto")
    assert r.status_code == 200, r.text
    assert gw.rec.last.body["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]
    r = ask("an", "low")
    assert r.status_code == 400 and "Claude sizes images itself" in r.json()["error"]["message"]
    assert not gw.rec.received
    r = ask("an-drop", "high")  # `drop: [detail]`: the image is sent, its detail left behind by choice
    assert r.status_code == 200, r.text
    assert gw.rec.last.body["messages"][0]["content"][0]["source"]["data"] == "iVBORw0KGgo="


# ── bad input and unmanaged endpoints ──────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"stream": "yes"}, "stream"),
        ({"canaryflow": "u-1"}, "canaryflow"),
        ({"canaryflow": {"usr": "u-1"}}, "canaryflow.usr"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools[0].function.name"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": "object"}}]},
            "tools[0].function.parameters",
        ),
    ],
)
def test_bad_input_is_a_400_naming_the_field(gw: Gateway, body: dict[str, Any], field: str) -> None:
    gw.rec.reset(CHAT_ANSWER)
    r = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "oa", "messages": [{"role": "user", "content": "hi"}], **body},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == field, r.text
    assert not gw.rec.received


def test_a_body_over_the_limit_is_413_before_parsing(gw: Gateway) -> None:
    big = b"{" + b" " * 1_000_001 + b"}"
    r = httpx.post(f"{gw.url}/v1/chat/completions", content=big)
    assert r.status_code == 413 and "CANARYFLOW_GATEWAY_MAX_BODY_BYTES" in r.json()["error"]["message"]
    chunked = httpx.post(f"{gw.url}/v1/messages", content=iter([big[:600_000], big[600_000:]]))
    assert chunked.status_code == 413 and chunked.json()["error"]["type"] == "request_too_large"


def test_unmanaged_endpoints_404_or_proxy(gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        gw.oai.embeddings.create(model="text-embedding-3-small", input="hi")
    assert "CANARYFLOW_GATEWAY_DEFAULT_PROVIDER" in str(err.value)
    answer = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 0.25]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    }
    gw.rec.reset(answer)
    monkeypatch.setenv("CANARYFLOW_GATEWAY_DEFAULT_PROVIDER", "openai")
    emb = gw.oai.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input="hi", encoding_format="float"
    )
    assert emb.http_response.json() == answer
    assert gw.rec.last.path == "/v1/embeddings"
    assert gw.rec.last.body == {"model": "text-embedding-3-small", "input": "hi", "encoding_format": "float"}
    assert gw.rec.last.headers["authorization"] == "Bearer sk-test-openai"


def test_tool_call_errors_are_counted(gw: Gateway) -> None:
    bad = copy.deepcopy(CHAT_ANSWER)
    bad["choices"] = bad["choices"][:1]
    bad["choices"][0]["message"]["tool_calls"] = [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": 3}'}},
        {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": "{not json"}},
        {"id": "c3", "type": "function", "function": {"name": "launch", "arguments": "{}"}},
    ]
    gw.rec.reset(bad)
    before = {
        r: gw.metrics.value("canaryflow_tool_calls_total", {"config": "oa", "result": r})
        for r in ("schema_mismatch", "invalid_json", "unknown_tool")
    }
    gw.oai.chat.completions.create(
        model="oa",
        messages=[{"role": "user", "content": "hi"}],
        tools=[OAI_TOOL],  # type: ignore[list-item]
        extra_body=CTX,
    )
    for result, count in before.items():
        assert (
            gw.metrics.value("canaryflow_tool_calls_total", {"config": "oa", "result": result}) == count + 1
        )


# ── the SDK ────────────────────────────────────────────────────────────────────────────────────────


def test_sdk_sends_a_whole_body_and_returns_the_whole_answer(gw: Gateway) -> None:
    gw.rec.reset(CHAT_ANSWER)
    body = _chat_body()
    done = gw.client.complete("oa", body=body, variables={"product": "Acme"}, context={"key": "u-1"})
    assert gw.rec.last.body == _expected_chat(body)
    assert done.response == CHAT_ANSWER
    assert [c.name for c in done.tool_calls] == ["get_weather"] and done.finish_reason == "tool_calls"
    gw.rec.reset(ANT_ANSWER)
    ant = gw.client.complete("an", body=_ant_body(), api="messages", variables={"product": "Acme"})
    assert ant.response == ANT_ANSWER and gw.rec.last.path == "/v1/messages"


async def test_sdk_streams_events_whole(gw: Gateway) -> None:
    gw.rec.reset(events=TOOL_CHUNKS)
    stream = await gw.client.astream(
        "oa",
        [{"role": "user", "content": "Oslo?"}],
        variables={"product": "A"},
        body={"tools": [OAI_TOOL], "stream_options": {"include_usage": True}},
    )
    events = [e async for e in stream.events()]
    assert events == TOOL_CHUNKS
    assert stream.completion is not None and stream.completion.finish_reason == "tool_calls"


def test_a_fallback_in_the_other_api_gets_the_request_translated(gw: Gateway) -> None:
    gw.rec.reset(ANT_ANSWER)
    gw.rec.failing = {"/v1/chat/completions": 500}
    raw = gw.oai.chat.completions.with_raw_response.create(
        model="fb",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[OAI_TOOL],  # type: ignore[list-item]
        extra_body=CTX,
    )
    assert raw.headers["x-canaryflow-fallback"] == "true"
    assert [r.path for r in gw.rec.received][-1] == "/v1/messages"
    assert gw.rec.last.body["tools"] == [ANT_TOOL] and gw.rec.last.body["model"] == "claude-haiku-4-5"
    done = raw.parse()
    assert done.choices[0].message.tool_calls[0].function.name == "get_weather"  # type: ignore[index]


def test_config_tools_merge_with_the_caller_s(gw: Gateway) -> None:
    gw.rec.reset(CHAT_ANSWER)
    caller_lookup = {"type": "function", "function": {"name": "lookup_order", "parameters": {}}}
    gw.oai.chat.completions.create(
        model="tooled",
        messages=[{"role": "user", "content": "Where is order 7?"}],
        tools=[OAI_TOOL, caller_lookup],
        tool_choice="required",  # type: ignore[list-item]
        response_format={"type": "json_object"},
        extra_body=CTX,
    )
    sent = gw.rec.last.body
    assert sent["tools"] == [
        OAI_TOOL,
        {
            "type": "function",
            "function": {
                "name": "lookup_order",
                "description": "Find an order",
                "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
            },
        },
    ]
    assert sent["tool_choice"] == "auto"  # the config's
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}},
    }
    gw.rec.reset(ANT_ANSWER)
    gw.ant.messages.create(
        model="tooled", max_tokens=50, messages=[{"role": "user", "content": "Order 7?"}], extra_body=CTX
    )
    assert gw.rec.last.path == "/v1/chat/completions"  # an OpenAI config answering an Anthropic caller
    assert [t["function"]["name"] for t in gw.rec.last.body["tools"]] == ["lookup_order"]


def test_a_refused_request_logs_only_its_path_and_reason(
    gw: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    r = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "oa", "stream": "yes", "messages": [{"role": "user", "content": "my SECRET-42"}]},
    )
    assert r.status_code == 400
    assert "SECRET-42" not in caplog.text
    assert "refused /v1/chat/completions request: ValidationFailed" in caplog.text


def test_safety_identifier_reaches_anthropic_as_metadata_user_id(gw: Gateway) -> None:
    """``safety_identifier`` (the openai client's successor of ``user``) is the same end-user id Anthropic
    takes as ``metadata.user_id``; given both, the safety identifier is the one meant for abuse detection."""
    gw.rec.reset(ANT_ANSWER)
    gw.oai.chat.completions.create(model="an", messages=[{"role": "user", "content": "hi"}],
                                   safety_identifier="hash-7", extra_body=CTX)
    assert gw.rec.last.body["metadata"] == {"user_id": "hash-7"}
    gw.oai.chat.completions.create(model="an", messages=[{"role": "user", "content": "hi"}],
                                   safety_identifier="hash-7", user="u-9", extra_body=CTX)
    assert gw.rec.last.body["metadata"] == {"user_id": "hash-7"}


def test_an_answer_appended_as_history_goes_back_to_anthropic_whole(gw: Gateway) -> None:
    """The tool loop as the openai client's users write it — ``messages.append(done.choices[0].message)`` —
    across APIs: the assistant turn goes back with its thinking blocks (signatures kept: Anthropic needs
    them back before a tool result), a refusal as the assistant's text, and empty fields as nothing."""
    gw.rec.reset(ANT_ANSWER)
    history: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    done = gw.oai.chat.completions.create(model="an", messages=history, tools=[OAI_TOOL],  # type: ignore[list-item]
                                          extra_body=CTX)
    history += [done.choices[0].message,
                {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
                {"role": "assistant", "content": None, "refusal": "I can't share that.", "annotations": [],
                 "audio": None, "function_call": None},
                {"role": "user", "content": "Thanks."}]
    gw.oai.chat.completions.create(model="an", messages=history, tools=[OAI_TOOL],  # type: ignore[list-item]
                                   extra_body=CTX)
    turns = gw.rec.last.body["messages"]
    assert turns[1] == {"role": "assistant", "content": ANT_ANSWER["content"]}
    assert turns[3] == {"role": "assistant", "content": [{"type": "text", "text": "I can't share that."}]}


@pytest.mark.parametrize(("message", "field"), [
    ({"role": "user", "content": "hi", "name": "bob"}, "messages[0].name"),
    ({"role": "system", "content": "hi", "name": "ops"}, "messages[0].name"),
    ({"role": "user", "content": "hi", "some_future_field": 1}, "messages[0].some_future_field"),
])
def test_a_message_field_anthropic_cannot_take_is_refused_by_name(gw: Gateway, message: dict[str, Any],
                                                                  field: str) -> None:
    gw.rec.reset(ANT_ANSWER)
    r = httpx.post(f"{gw.url}/v1/chat/completions",
                   json={"model": "an", "messages": [message, {"role": "user", "content": "hi"}], **CTX})
    assert r.status_code == 400 and r.json()["error"]["param"] == field, r.text
    assert not gw.rec.received


def test_responses_config_system_prompt_is_instructions_so_a_chained_turn_does_not_repeat_it(gw: Gateway
                                                                                            ) -> None:
    """OpenAI keeps a response's input in the conversation that ``previous_response_id`` continues, and
    carries no ``instructions`` over: the config's system messages go in ``instructions`` (before the
    caller's), so every turn has the version's prompt exactly once instead of one more copy per turn."""
    gw.rec.reset(RESPONSE)
    first = gw.oai.responses.create(model="oa", input="Weather in Paris?", extra_body=CTX)
    assert gw.rec.last.body["instructions"] == SYSTEM and gw.rec.last.body["input"] == "Weather in Paris?"
    gw.oai.responses.create(model="oa", input=[{"role": "user", "content": "And Rome?"}],
                            previous_response_id=first.id, instructions="Answer in French.", extra_body=CTX)
    sent = gw.rec.last.body
    assert sent["instructions"] == f"{SYSTEM}\n\nAnswer in French."
    assert sent["input"] == [{"role": "user", "content": "And Rome?"}]
    assert sent["previous_response_id"] == "resp_1"


def test_a_strict_function_tool_reaches_anthropic_strict(gw: Gateway) -> None:
    gw.rec.reset(ANT_ANSWER)
    strict = {"type": "function", "function": {**OAI_TOOL["function"], "strict": True}}
    gw.oai.chat.completions.create(model="an", messages=[{"role": "user", "content": "Weather?"}],
                                   tools=[strict], extra_body=CTX)  # type: ignore[list-item]
    assert gw.rec.last.body["tools"] == [{**ANT_TOOL, "strict": True}]


@pytest.mark.parametrize("choice", [
    {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [OAI_TOOL]}},
    {"type": "custom", "custom": {"name": "get_weather"}},
])
def test_a_tool_choice_anthropic_has_no_counterpart_for_is_refused_by_name(gw: Gateway,
                                                                           choice: dict[str, Any]) -> None:
    gw.rec.reset(ANT_ANSWER)
    r = httpx.post(f"{gw.url}/v1/chat/completions", json={
        "model": "an", "messages": [{"role": "user", "content": "hi"}], "tools": [OAI_TOOL],
        "tool_choice": choice, **CTX})
    assert r.status_code == 400 and r.json()["error"]["param"] == "tool_choice", r.text
    assert not gw.rec.received


@pytest.mark.parametrize(("body", "field"), [
    ({"messages": [{"role": "system", "content": "Only a system prompt."}]}, "messages"),
    ({"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": []}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "hi"}], "user": {"id": 1}}, "user"),
    ({"messages": [{"role": "user", "content": "hi"}], "safety_identifier": 7}, "safety_identifier"),
])
def test_across_apis_what_anthropic_would_refuse_is_a_400_naming_the_caller_s_field(
        gw: Gateway, body: dict[str, Any], field: str) -> None:
    """OpenAI answers a system-only conversation; Anthropic needs a user or assistant turn, and takes no
    empty turn: the caller hears which of its fields, instead of Anthropic's words about its own body (or
    an id turned into the text of an object)."""
    gw.rec.reset(ANT_ANSWER)
    r = httpx.post(f"{gw.url}/v1/chat/completions", json={"model": "an", **body, **CTX})
    assert r.status_code == 400 and r.json()["error"]["param"] == field, r.text
    assert not gw.rec.received
