"""The simulator speaks like the real APIs, read by the official clients: tool calls (plain and streamed, and
wrong ones by profile), structured outputs matching a JSON schema (or not, by profile), images,
`POST /v1/responses` (plain, streamed, with tools, `.parse`), and requests validated with the real 400s."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel

from canaryflow.sim import SimServer, Simulator
from canaryflow.sim.requests import CHAT_FIELDS, MESSAGES_FIELDS, RESPONSES_FIELDS
from tests.servers import free_port

ORDER = {"type": "object", "properties": {"order_id": {"type": "string"}, "express": {"type": "boolean"}},
         "required": ["order_id"], "additionalProperties": False}
CHAT_TOOLS: Any = [{"type": "function", "function": {"name": "lookup_order", "description": "Find an order",
                                                     "parameters": ORDER}}]
ANSWER = {"type": "object", "properties": {"status": {"type": "string", "enum": ["shipped", "pending"]},
                                           "answer": {"type": "string"}, "eta_days": {"type": "integer",
                                                                                      "minimum": 0}},
          "required": ["status", "answer", "eta_days"], "additionalProperties": False}
PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/"
         "PchI7wAAAABJRU5ErkJggg==")


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    server = SimServer(Simulator(seed=3, latency_scale=0.0), port=free_port())
    server.start()
    yield server
    server.stop()


def oai(sim: SimServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.openai_base_url, api_key="sk-test", max_retries=0, timeout=10)


def ant(sim: SimServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sim.anthropic_base_url, api_key="sk-ant-test", max_retries=0,
                               timeout=10)


def ask(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


# ── Chat Completions ───────────────────────────────────────────────────────────────────────────────────

def test_chat_tool_call_then_answer_after_the_tool_result(sim: SimServer) -> None:
    client = oai(sim)
    first = client.chat.completions.create(model="gpt-4o-mini", messages=ask("Where is order A-1?"),
                                           tools=CHAT_TOOLS)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "lookup_order" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), ORDER)
    history: list[Any] = [*ask("Where is order A-1?"), choice.message.model_dump(exclude_none=True),
                          {"role": "tool", "tool_call_id": call.id, "content": '{"status": "shipped"}'}]
    second = client.chat.completions.create(model="gpt-4o-mini", messages=history, tools=CHAT_TOOLS)
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content
    forced = client.chat.completions.create(model="gpt-4o-mini", messages=history, tools=CHAT_TOOLS,
                                            tool_choice={"type": "function",
                                                         "function": {"name": "lookup_order"}})
    assert forced.choices[0].finish_reason == "tool_calls"  # a named tool is called whatever came before
    none = client.chat.completions.create(model="gpt-4o-mini", messages=ask("hi"), tools=CHAT_TOOLS,
                                          tool_choice="none")
    assert none.choices[0].message.tool_calls is None


def test_chat_streamed_tool_call_accumulates_in_the_sdk(sim: SimServer) -> None:
    with oai(sim).chat.completions.stream(model="gpt-4o-mini", messages=ask("Where is order A-1?"),
                                          tools=CHAT_TOOLS, stream_options={"include_usage": True}) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.delta" in events and "tool_calls.function.arguments.done" in events
    [call] = final.choices[0].message.tool_calls or []
    assert final.choices[0].finish_reason == "tool_calls" and call.function.name == "lookup_order"
    jsonschema.validate(json.loads(call.function.arguments), ORDER)
    assert final.usage is not None and final.usage.completion_tokens > 0
    raw = httpx.post(f"{sim.openai_base_url}/chat/completions", headers={"authorization": "Bearer k"},
                     json={"model": "m", "messages": ask("x"), "tools": CHAT_TOOLS, "stream": True}).text
    chunks = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: {")]
    first_call = chunks[1]["choices"][0]["delta"]["tool_calls"][0]
    assert set(first_call) == {"index", "id", "type", "function"}
    assert first_call["function"]["arguments"] == ""
    assert set(chunks[2]["choices"][0]["delta"]["tool_calls"][0]) == {"index", "function"}
    two = oai(sim).chat.completions.create(model="gpt-4o", messages=ask("hi"), n=2, stream=True)
    assert {c.choices[0].index for c in two if c.choices} == {0, 1}
    assert len(oai(sim).chat.completions.create(model="gpt-4o", messages=ask("hi"), n=3).choices) == 3


@pytest.mark.parametrize("kind", ["invalid_json", "unknown_tool", "bad_arguments"])
def test_chat_wrong_tool_calls_by_profile(sim: SimServer, kind: str) -> None:
    out = oai(sim).chat.completions.create(model="gpt-4o-mini", tools=CHAT_TOOLS,
                                           messages=ask(f"Where is A-1? [sim:tool_error={kind}]"))
    [call] = out.choices[0].message.tool_calls or []
    if kind == "invalid_json":
        with pytest.raises(json.JSONDecodeError):
            json.loads(call.function.arguments)
    elif kind == "unknown_tool":
        assert call.function.name not in ("lookup_order",) and call.function.name.startswith("lookup_order")
    else:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(json.loads(call.function.arguments), ORDER)


def test_chat_tool_error_rate_is_the_share_of_wrong_calls(sim: SimServer) -> None:
    client = oai(sim)
    wrong = 0
    for i in range(60):
        out = client.chat.completions.create(model="gpt-4o-mini", tools=CHAT_TOOLS,
                                             messages=ask(f"order {i} [sim:tool_error_rate=0.5]"))
        [call] = out.choices[0].message.tool_calls or []
        try:
            jsonschema.validate(json.loads(call.function.arguments), ORDER)
            wrong += call.function.name != "lookup_order"
        except (json.JSONDecodeError, jsonschema.ValidationError):
            wrong += 1
    assert 15 <= wrong <= 45


class Answer(BaseModel):
    status: str
    answer: str
    eta_days: int


def test_chat_structured_output_matches_the_schema_or_not_by_profile(sim: SimServer) -> None:
    client = oai(sim)
    parsed = client.chat.completions.parse(model="gpt-4o", response_format=Answer,
                                           messages=ask("What is the capital of France? [sim:quality=1]"))
    answer = parsed.choices[0].message.parsed
    assert isinstance(answer, Answer) and answer.answer == "Paris"
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "answer", "schema": ANSWER, "strict": True}}
    good = client.chat.completions.create(model="gpt-4o", messages=ask("hello"), response_format=fmt)
    jsonschema.validate(json.loads(good.choices[0].message.content or ""), ANSWER)
    bad = client.chat.completions.create(model="gpt-4o", messages=ask("hello [sim:schema_error_rate=1]"),
                                         response_format=fmt)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(bad.choices[0].message.content or ""), ANSWER)
    mode = client.chat.completions.create(model="gpt-4o", messages=ask("Answer in JSON: hi"),
                                          response_format={"type": "json_object"})
    assert isinstance(json.loads(mode.choices[0].message.content or ""), dict)


def test_images_are_accepted_and_counted(sim: SimServer) -> None:
    plain = oai(sim).chat.completions.create(model="gpt-4o", messages=ask("What is in the picture?"))
    image: Any = [{"role": "user", "content": [{"type": "text", "text": "What is in the picture?"},
                                               {"type": "image_url", "image_url": {"url": PIXEL}}]}]
    seen = oai(sim).chat.completions.create(model="gpt-4o", messages=image)
    assert seen.usage is not None and plain.usage is not None
    assert seen.usage.prompt_tokens == plain.usage.prompt_tokens + 85
    block: Any = [{"role": "user", "content": [
        {"type": "image",
         "source": {"type": "base64", "media_type": "image/png", "data": PIXEL.split(",")[1]}},
        {"type": "text", "text": "Describe it."}]}]
    assert ant(sim).messages.create(model="claude-haiku-4-5", max_tokens=50, messages=block).content
    part: Any = [{"role": "user", "content": [{"type": "input_text", "text": "Describe it."},
                                              {"type": "input_image", "image_url": PIXEL}]}]
    assert oai(sim).responses.create(model="gpt-4o", input=part).output_text


# ── Anthropic Messages ─────────────────────────────────────────────────────────────────────────────────

ANT_TOOLS: Any = [{"name": "lookup_order", "description": "Find an order", "input_schema": ORDER}]


def test_anthropic_tool_use_loop_and_streamed_input_json(sim: SimServer) -> None:
    client = ant(sim)
    first = client.messages.create(model="claude-haiku-4-5", max_tokens=200, tools=ANT_TOOLS,
                                   messages=ask("Where is A-1?"))
    assert first.stop_reason == "tool_use"
    [use] = [b for b in first.content if b.type == "tool_use"]
    jsonschema.validate(use.input, ORDER)
    history: Any = [*ask("Where is A-1?"), {"role": "assistant", "content": [use.model_dump()]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                                  "content": "shipped"}]}]
    second = client.messages.create(model="claude-haiku-4-5", max_tokens=200, tools=ANT_TOOLS,
                                    messages=history)
    assert second.stop_reason == "end_turn" and second.content[0].type == "text"
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=200, tools=ANT_TOOLS,
                                messages=ask("Where is B-2?")) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert "input_json" in kinds and final.stop_reason == "tool_use"
    [streamed] = [b for b in final.content if b.type == "tool_use"]
    jsonschema.validate(streamed.input, ORDER)
    wrong = client.messages.create(model="claude-haiku-4-5", max_tokens=200, tools=ANT_TOOLS,
                                   messages=ask("Where is A-1? [sim:tool_error=invalid_json]"))
    [bad] = [b for b in wrong.content if b.type == "tool_use"]  # Anthropic input is always an object
    assert bad.name != "lookup_order" or not _valid(bad.input, ORDER)


def _valid(value: Any, schema: dict[str, Any]) -> bool:
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return False
    return True


def test_anthropic_structured_output(sim: SimServer) -> None:
    out = ant(sim).messages.create(model="claude-sonnet-4-5", max_tokens=200, messages=ask("hello"),
                                   output_config={"format": {"type": "json_schema", "schema": ANSWER}})
    assert out.content[0].type == "text"
    jsonschema.validate(json.loads(out.content[0].text), ANSWER)


# ── Responses ──────────────────────────────────────────────────────────────────────────────────────────

RESP_TOOLS: Any = [{"type": "function", "name": "lookup_order", "description": "Find an order",
                    "parameters": ORDER, "strict": True}]


def test_responses_plain_tools_and_function_call_output(sim: SimServer) -> None:
    client = oai(sim)
    plain = client.responses.create(model="gpt-4o", input="What is the capital of France? [sim:quality=1]",
                                    instructions="Be brief.")
    assert plain.output_text == "Paris" and plain.status == "completed" and plain.instructions == "Be brief."
    assert plain.usage is not None and plain.usage.input_tokens > 0
    called = client.responses.create(model="gpt-4o", input="Where is A-1?", tools=RESP_TOOLS)
    [call] = [item for item in called.output if item.type == "function_call"]
    jsonschema.validate(json.loads(call.arguments), ORDER)
    follow: Any = [{"role": "user", "content": "Where is A-1?"}, call.model_dump(exclude_none=True),
                   {"type": "function_call_output", "call_id": call.call_id, "output": "shipped"}]
    answered = client.responses.create(model="gpt-4o", input=follow, tools=RESP_TOOLS)
    assert answered.output_text and answered.output[0].type == "message"
    short = client.responses.create(model="gpt-4o", input="Tell me a story [sim:tokens=300]",
                                    max_output_tokens=20)
    assert short.status == "incomplete" and short.incomplete_details is not None


def test_responses_stream_event_names_and_parse(sim: SimServer) -> None:
    client = oai(sim)
    with client.responses.stream(model="gpt-4o", input="Where is A-1?", tools=RESP_TOOLS) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert "response.function_call_arguments.delta" in kinds and kinds[-1] == "response.completed"
    assert kinds[-3:-1] == ["response.function_call_arguments.done", "response.output_item.done"]
    assert final.output[0].type == "function_call"
    text = list(client.responses.create(model="gpt-4o", input="hello there", stream=True))
    names = [e.type for e in text]
    assert names[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert names[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in text] == list(range(len(text)))
    parsed = client.responses.parse(model="gpt-4o", input="What is the capital of France? [sim:quality=1]",
                                    text_format=Answer)
    assert isinstance(parsed.output_parsed, Answer) and parsed.output_parsed.answer == "Paris"


# ── validation ─────────────────────────────────────────────────────────────────────────────────────────

CHAT = {"model": "gpt-4o", "messages": ask("hi")}
TOOL_TURN = [*ask("x"), {"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "lookup_order", "arguments": "{}"}}]}]
ANT = {"model": "claude-haiku-4-5", "max_tokens": 50, "messages": ask("hi")}
RESP = {"model": "gpt-4o", "input": "hi"}

INVALID = [
    ("chat", {**CHAT, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "invalid_value",
     "Invalid value for 'messages[0].role': 'robot'. Supported values are: 'system', 'assistant', 'user', "
     "'function', 'tool', and 'developer'."),
    ("chat", {**CHAT, "temperature": 2.5}, "temperature", "decimal_above_max_value",
     "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 2.5 instead."),
    ("chat", {**CHAT, "temperature": "hot"}, "temperature", "invalid_type",
     "Invalid type for 'temperature': expected a decimal, but got a string instead."),
    ("chat", {**CHAT, "stream": "yes"}, "stream", "invalid_type",
     "Invalid type for 'stream': expected a boolean, but got a string instead."),
    ("chat", {**CHAT, "n": 0}, "n", "integer_below_min_value", None),
    ("chat", {**CHAT, "colour": "blue"}, None, None, "Unrecognized request argument supplied: colour"),
    ("chat", {"model": "gpt-4o"}, "messages", "missing_required_parameter",
     "Missing required parameter: 'messages'."),
    ("chat", {**CHAT, "messages": [*ask("x"), {"role": "tool", "tool_call_id": "c9", "content": "r"}]},
     "messages.[1].role", None, "Invalid parameter: messages with role 'tool' must be a response to a "
                                "preceeding message with 'tool_calls'."),
    ("chat", {**CHAT, "messages": [*TOOL_TURN, *ask("and?")]}, "messages.[1].role", None, None),
    ("chat", {**CHAT, "messages": [{"role": "user", "content": [{"type": "image", "url": "x"}]}]},
     "messages[0].content[0].type", "invalid_value", None),
    ("chat", {**CHAT, "tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "required": "x"}}}]}, "tools[0].function.parameters", "invalid_function_parameters",
     None),
    ("chat", {**CHAT, "response_format": {"type": "json_object"}}, "messages", None, None),
    ("chat", {**CHAT, "tool_choice": "auto"}, "tool_choice", None, None),
    ("messages", {k: v for k, v in ANT.items() if k != "max_tokens"}, None, None,
     "max_tokens: Field required"),
    ("messages", {**ANT, "temperature": 1.5}, None, None,
     "temperature: Input should be less than or equal to 1"),
    ("messages", {**ANT, "messages": [{"role": "system", "content": "x"}, *ask("y")]}, None, None,
     'messages: Unexpected role "system". The Messages API accepts a top-level `system` parameter, not '
     '"system" as an input message role.'),
    ("messages", {**ANT, "colour": "blue"}, None, None, "colour: Extra inputs are not permitted"),
    ("messages", {**ANT, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_9", "content": "r"}]}]}, None, None,
     "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_9. Each "
     "`tool_result` block must have a corresponding `tool_use` block in the previous message."),
    ("messages", {**ANT, "tools": [{"name": "f", "input_schema": {"type": "string"}}]}, None, None,
     "tools.0.custom.input_schema.type: Input should be 'object'"),
    ("messages", {**ANT, "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}, None,
     None, "messages: text content blocks must be non-empty"),
    ("messages", {**ANT, "messages": [{"role": "user", "content": ""}]}, None, None,
     "messages.0: all messages must have non-empty content except for the optional final assistant message"),
    ("messages", {**ANT, "system": [{"type": "text", "text": ""}]}, None, None,
     "system: text content blocks must be non-empty"),
    ("responses", {**RESP, "colour": "blue"}, "colour", "unknown_parameter", "Unknown parameter: 'colour'."),
    ("responses", {**RESP, "max_output_tokens": 5}, "max_output_tokens", "integer_below_min_value", None),
    ("responses", {**RESP, "input": [{"type": "function_call_output", "call_id": "c1", "output": "x"}]},
     "input", None, "No tool call found for function call output with call_id c1."),
    ("responses", {**RESP, "input": [{"role": "robot", "content": "x"}]}, "input[0].role", "invalid_value",
     None),
]


@pytest.mark.parametrize(("api", "body", "param", "code", "message"), INVALID,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(INVALID)])
def test_requests_are_validated_with_the_real_400_shapes(sim: SimServer, api: str, body: dict[str, Any],
                                                         param: str | None, code: str | None,
                                                         message: str | None) -> None:
    path = {"chat": "/v1/chat/completions", "messages": "/v1/messages", "responses": "/v1/responses"}[api]
    r = httpx.post(f"{sim.url}{path}", json=body, headers={"authorization": "Bearer k", "x-api-key": "k"})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    if api == "messages":
        assert r.json()["type"] == "error" and set(error) == {"type", "message"}
    else:
        assert (error["param"], error["code"]) == (param, code)
    if message is not None:
        assert error["message"] == message


def test_every_field_the_official_clients_send_is_known() -> None:
    from anthropic.types import message_create_params
    from openai.types.chat import completion_create_params
    from openai.types.responses import response_create_params

    assert set(completion_create_params.CompletionCreateParamsBase.__annotations__) <= CHAT_FIELDS
    assert set(message_create_params.MessageCreateParamsBase.__annotations__) <= MESSAGES_FIELDS
    assert set(response_create_params.ResponseCreateParamsBase.__annotations__) <= RESPONSES_FIELDS
