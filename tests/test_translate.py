"""OpenAI ⇄ Anthropic translation round trips, checked against the official clients' own types."""

from __future__ import annotations

from typing import Any

import anthropic.types
import openai.types.chat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from canaryflow.errors import ValidationFailed
from canaryflow.providers.base import ChatResult
from canaryflow.providers.translate import (
    AnthropicStreamToOpenAI,
    OpenAIStreamToAnthropic,
    anthropic_messages,
    anthropic_request_to_openai,
    anthropic_response_to_openai,
    openai_messages,
    openai_request_to_anthropic,
    openai_response_to_anthropic,
    result_from_anthropic,
    result_from_openai,
    to_anthropic_stop,
    to_openai_finish,
)
from canaryflow.providers.wire import (
    anthropic_message,
    anthropic_stream_events,
    openai_chunk,
    openai_completion,
)

EVENT = TypeAdapter(anthropic.types.RawMessageStreamEvent)
RESULT = ChatResult("Paris is the capital.", "stop", 120, 6, 100, "openai", "gpt-4o-mini", "chatcmpl-1")

OPENAI_REQUEST: dict[str, Any] = {
    "model": "support-bot",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                 {"role": "assistant", "content": "Hello!"},
                 {"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]}],
    "temperature": 0.3, "top_p": 0.9, "max_completion_tokens": 77, "stop": ["###"], "stream": True,
}


@pytest.mark.parametrize(("finish", "stop"), [
    ("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal"),
    ("tool_calls", "tool_use")])
def test_finish_reasons_map_both_ways(finish: str, stop: str) -> None:
    assert to_anthropic_stop(finish) == stop
    assert to_openai_finish(stop) == finish


def test_stop_sequence_and_unknown_reasons_are_stop() -> None:
    assert to_openai_finish("stop_sequence") == "stop"
    assert to_openai_finish(None) == "stop" and to_anthropic_stop(None) == "end_turn"


def test_openai_request_round_trip() -> None:
    ant = openai_request_to_anthropic(OPENAI_REQUEST)
    assert ant["system"] == "Be brief."
    assert [m["role"] for m in ant["messages"]] == ["user", "assistant", "user"]
    assert (ant["max_tokens"], ant["stop_sequences"], ant["temperature"]) == (77, ["###"], 0.3)
    assert ant["stream"] is True
    back = anthropic_request_to_openai(ant)
    assert back["messages"] == openai_messages(OPENAI_REQUEST)
    assert (back["max_completion_tokens"], back["stop"]) == (77, ["###"])
    assert (back["temperature"], back["top_p"]) == (0.3, 0.9)
    assert back["stream_options"] == {"include_usage": True}


def test_anthropic_request_round_trip() -> None:
    body = {"model": "m", "max_tokens": 20, "system": [{"type": "text", "text": "Sys."}],
            "messages": [{"role": "user", "content": "Q?"}], "stop_sequences": ["END"], "temperature": 1.0}
    oai = anthropic_request_to_openai(body)
    assert oai["messages"][0] == {"role": "system", "content": "Sys."}
    again = openai_request_to_anthropic(oai)
    assert again["system"] == "Sys." and again["messages"] == [{"role": "user", "content": "Q?"}]
    assert (again["max_tokens"], again["stop_sequences"], again["temperature"]) == (20, ["END"], 1.0)
    assert anthropic_messages(body)[1:] == again["messages"]


def test_anthropic_request_gets_a_default_max_tokens() -> None:
    ant = openai_request_to_anthropic({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert ant["max_tokens"] == 1024 and "system" not in ant


@pytest.mark.parametrize("body", [{"model": "m"}, {"model": "m", "messages": []},
                                  {"model": "m", "messages": [{"content": "no role"}]}])
def test_bad_messages_name_the_field(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed, match="messages"):
        openai_request_to_anthropic(body)


@pytest.mark.parametrize("finish", ["stop", "length", "content_filter"])
def test_response_round_trip_keeps_text_finish_and_usage(finish: str) -> None:
    result = ChatResult(RESULT.text, finish, 120, 6, 100, "openai", "gpt-4o-mini", "chatcmpl-1")
    completion = openai_completion(result)
    openai.types.chat.ChatCompletion.model_validate(completion)
    message = openai_response_to_anthropic(completion)
    parsed = anthropic.types.Message.model_validate(message)
    assert parsed.usage.input_tokens == 20 and parsed.usage.cache_read_input_tokens == 100
    assert parsed.stop_reason == to_anthropic_stop(finish)
    back = result_from_openai(anthropic_response_to_openai(message))
    assert (back.text, back.finish_reason) == (result.text, finish)
    assert (back.input_tokens, back.output_tokens, back.cached_input_tokens) == (120, 6, 100)
    assert result_from_anthropic(anthropic_message(result)).input_tokens == 120


def _openai_chunks(result: ChatResult, pieces: list[str]) -> list[dict[str, Any]]:
    chunks = [openai_chunk("c1", result.model, 1, text="", role=True, include_usage=True)]
    chunks += [openai_chunk("c1", result.model, 1, text=p, include_usage=True) for p in pieces]
    chunks.append(openai_chunk("c1", result.model, 1, finish_reason=result.finish_reason, include_usage=True))
    chunks.append(openai_chunk("c1", result.model, 1, usage=result))
    return chunks


def test_stream_round_trip_openai_to_anthropic_and_back() -> None:
    pieces = ["Paris", " is", " the", " capital."]
    to_ant = OpenAIStreamToAnthropic()
    events = [e for chunk in _openai_chunks(RESULT, pieces) for e in to_ant.feed(chunk)] + to_ant.close()
    kinds = [e["type"] for e in events]
    for event in events:  # the clients drop pings before parsing
        if event["type"] != "ping":
            EVENT.validate_python(event)
    assert kinds == ["message_start", "content_block_start", "ping", *["content_block_delta"] * 4,
                     "content_block_stop", "message_delta", "message_stop"]
    assert events[-2]["usage"]["output_tokens"] == 6
    to_oai = AnthropicStreamToOpenAI()
    chunks = [c for e in events for c in to_oai.feed(e)]
    for chunk in chunks:
        openai.types.chat.ChatCompletionChunk.model_validate(chunk)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    finishes = [c["choices"][0]["finish_reason"] for c in chunks
                if c["choices"] and c["choices"][0]["finish_reason"]]
    assert text == RESULT.text and finishes == ["stop"]
    usage = chunks[-1]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (120, 6)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 100


def test_stream_round_trip_anthropic_to_openai_and_back() -> None:
    result = ChatResult("One two", "length", 30, 2, 0, "anthropic", "claude-haiku-4-5", "msg_1")
    to_oai = AnthropicStreamToOpenAI(include_usage=True)
    chunks = [c for e in anthropic_stream_events(result, ["One", " two"]) for c in to_oai.feed(e)]
    to_ant = OpenAIStreamToAnthropic()
    events = [e for c in chunks for e in to_ant.feed(c)] + to_ant.close()
    final = events[-2]
    assert final["delta"]["stop_reason"] == "max_tokens" and final["usage"]["output_tokens"] == 2
    assert "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta") == "One two"


def test_openai_stream_without_usage_still_closes() -> None:
    to_ant = OpenAIStreamToAnthropic()
    events = [e for c in _openai_chunks(RESULT, ["x"])[:-1] for e in to_ant.feed(c)]
    assert events[-1]["type"] == "content_block_delta"
    closing = to_ant.close()
    assert [e["type"] for e in closing] == ["content_block_stop", "message_delta", "message_stop"]
    assert to_ant.close() == []


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(system=st.one_of(st.none(), TEXT),
       turns=st.lists(st.tuples(st.sampled_from(["user", "assistant"]), TEXT), min_size=1, max_size=6),
       temperature=st.one_of(st.none(), st.floats(0, 2)),
       max_tokens=st.one_of(st.none(), st.integers(1, 4096)),
       stop=st.one_of(st.none(), st.lists(TEXT, min_size=1, max_size=3)))
def test_any_openai_request_survives_the_round_trip(system: str | None, turns: list[tuple[str, str]],
                                                    temperature: float | None, max_tokens: int | None,
                                                    stop: list[str] | None) -> None:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": role, "content": text} for role, text in turns]
    body: dict[str, Any] = {"model": "m", "messages": messages}
    if temperature is not None:
        body["temperature"] = temperature
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if stop is not None:
        body["stop"] = stop
    back = anthropic_request_to_openai(openai_request_to_anthropic(body))
    assert back["messages"] == messages
    assert back.get("temperature") == temperature and back.get("stop") == stop
    assert back["max_completion_tokens"] == (max_tokens or 1024)
