"""The official ``anthropic`` client against the gateway, the way its users call it: stream helpers, tool
results, prefills, headers, errors — same API (an Anthropic config) and across APIs (an OpenAI config).

Reuses the recording upstream of :mod:`tests.test_passthrough_gateway` (its ``gw`` fixture), so each test
sees what the provider received and what the client got back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from pydantic import BaseModel

from canaryflow.domain.passthrough import Decisions, apply_config
from tests import test_passthrough_gateway as base
from tests.test_passthrough_gateway import ANT_TOOL, CTX, Gateway, _chunk
from tests.traffic_stack import Stack, running_stack, spec

gw = base.gw  # the recording upstream and gateway (module-scoped fixture)

USAGE_CHUNK: dict[str, Any] = {
    "id": "chatcmpl-s1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [],
    "usage": {"prompt_tokens": 50, "completion_tokens": 9, "total_tokens": 59},
}
TEXT_ANSWER: dict[str, Any] = {
    "id": "chatcmpl-t",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "finish_reason": "stop",
         "message": {"role": "assistant", "content": "ok", "refusal": None}}
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
}
ASKED = [{"role": "user", "content": "Weather in Rome?"}]
CALLED = {"role": "assistant", "content": [{"type": "tool_use", "id": "t0", "name": "get_weather",
                                            "input": {"city": "Rome"}}]}


def _messages(gw: Gateway, **body: Any) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/messages", json={"max_tokens": 100, **CTX, **body},
                      headers={"anthropic-version": "2023-06-01"})


def test_a_streamed_refusal_across_apis_is_a_refusal(gw: Gateway) -> None:
    """An OpenAI model refusing mid-stream: the stream helper's message holds the refusal text and
    ``stop_reason: refusal``, as the plain answer does."""
    gw.rec.reset(events=[_chunk({"role": "assistant", "content": None, "refusal": ""}),
                         _chunk({"refusal": "I can't "}), _chunk({"refusal": "help."}), _chunk({}, "stop"),
                         USAGE_CHUNK])
    with gw.ant.messages.stream(model="oa", max_tokens=100, messages=ASKED, extra_body=CTX) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "refusal"
    assert [(b.type, getattr(b, "text", None)) for b in final.content] == [("text", "I can't help.")]
    gw.rec.reset({**TEXT_ANSWER, "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": None, "refusal": "I can't help."}}]})
    plain = gw.ant.messages.create(model="oa", max_tokens=100, messages=ASKED, extra_body=CTX)
    assert plain.stop_reason == "refusal" and plain.content[0].text == "I can't help."  # type: ignore[union-attr]


def test_a_failed_tool_result_across_apis_is_refused_by_name(gw: Gateway) -> None:
    """``is_error: true`` tells Claude the tool failed; Chat Completions' tool messages cannot say so, so
    it is refused naming the field rather than sent as if the tool had succeeded."""
    gw.rec.reset(TEXT_ANSWER)
    failed = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t0", "content": "timeout",
                                           "is_error": True}]}
    r = _messages(gw, model="oa", tools=[ANT_TOOL], messages=[*ASKED, CALLED, failed])
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"].startswith("messages[2].content[0].is_error: ")
    assert not gw.rec.received
    ok = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t0", "content": "sunny",
                                       "is_error": False}]}
    r = _messages(gw, model="oa", tools=[ANT_TOOL], messages=[*ASKED, CALLED, ok])
    assert r.status_code == 200, r.text
    assert gw.rec.last.body["messages"][-1] == {"role": "tool", "tool_call_id": "t0", "content": "sunny"}


def test_an_assistant_prefill_across_apis(gw: Gateway) -> None:
    """A last assistant message is a prefill: Claude continues it. Chat Completions would answer after it
    instead, so a non-empty prefill is refused by name; an empty one means nothing and is not sent."""
    gw.rec.reset(TEXT_ANSWER)
    r = _messages(gw, model="oa", messages=[*ASKED, {"role": "assistant", "content": "{\"city\":"}])
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"].startswith("messages[1]: ")
    assert not gw.rec.received
    r = _messages(gw, model="oa", messages=[*ASKED, {"role": "assistant", "content": ""}])
    assert r.status_code == 200, r.text
    assert [m["role"] for m in gw.rec.last.body["messages"]] == ["system", "user"]
    # same API: the prefill reaches Claude as sent
    gw.rec.reset({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
                  "content": [{"type": "text", "text": "\"Rome\"}"}], "stop_reason": "end_turn",
                  "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 3}})
    prefill = {"role": "assistant", "content": "{\"city\":"}
    msg = gw.ant.messages.create(model="an", max_tokens=100, messages=[*ASKED, prefill],  # type: ignore[list-item]
                                 extra_body=CTX)
    assert gw.rec.last.body["messages"] == [*ASKED, prefill] and msg.content[0].text == "\"Rome\"}"  # type: ignore[union-attr]


ANT_TEXT: dict[str, Any] = {"id": "msg_1", "type": "message", "role": "assistant",
                            "model": "claude-haiku-4-5", "content": [{"type": "text", "text": "ok"}],
                            "stop_reason": "end_turn",
                            "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 2}}


def test_anthropic_beta_and_version_headers_reach_claude(gw: Gateway) -> None:
    """The caller's ``anthropic-beta`` (``betas=`` of the beta client, or a header) and ``anthropic-version``
    change what Claude does and how it answers: same API they travel with the body, plain and streamed."""
    gw.rec.reset(ANT_TEXT)
    gw.ant.messages.create(model="an", max_tokens=50, messages=ASKED, extra_body=CTX,
                           extra_headers={"anthropic-beta": "output-128k-2025-02-19",
                                          "anthropic-version": "2023-06-01"})
    assert gw.rec.last.headers["anthropic-beta"] == "output-128k-2025-02-19"
    assert gw.rec.last.headers["anthropic-version"] == "2023-06-01"
    gw.rec.reset(ANT_TEXT)
    msg = gw.ant.beta.messages.create(model="an", max_tokens=50, messages=ASKED, extra_body=CTX,
                                      betas=["context-management-2025-06-27", "files-api-2025-04-14"])
    assert msg.content[0].text == "ok"  # type: ignore[union-attr]
    assert gw.rec.last.headers["anthropic-beta"] == "context-management-2025-06-27,files-api-2025-04-14"
    gw.rec.reset(events=[{"type": "message_start", "message": {**ANT_TEXT, "content": []}},
                         {"type": "message_stop"}])
    with gw.ant.beta.messages.stream(model="an", max_tokens=50, messages=ASKED, extra_body=CTX,
                                     betas=["interleaved-thinking-2025-05-14"]) as stream:
        stream.until_done()
    assert gw.rec.last.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"


def test_an_anthropic_beta_across_apis_is_refused_by_name(gw: Gateway) -> None:
    gw.rec.reset(TEXT_ANSWER)
    r = httpx.post(f"{gw.url}/v1/messages", json={"model": "oa", "max_tokens": 50, "messages": ASKED, **CTX},
                   headers={"anthropic-version": "2023-06-01", "anthropic-beta": "output-128k-2025-02-19"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert r.json()["error"]["message"].startswith("anthropic-beta: ") and not gw.rec.received
    r = _messages(gw, model="oa", messages=ASKED)  # anthropic-version alone is the gateway's to honour
    assert r.status_code == 200 and "anthropic-version" not in gw.rec.last.headers


@pytest.mark.parametrize(
    ("model", "answer"),
    [
        ("an", {"type": "error", "error": {"type": "invalid_request_error",
                                           "message": "messages.1.content.0: unexpected `tool_use_id`"}}),
        ("oa", {"error": {"message": "Invalid 'messages[1].tool_call_id'", "type": "invalid_request_error",
                          "param": "messages[1].tool_call_id", "code": None}}),
    ],
)
def test_a_provider_400_reaches_the_client_in_the_provider_s_words(gw: Gateway, model: str,
                                                                   answer: dict[str, Any]) -> None:
    """Same API and across: a 400 in Anthropic's error shape whose message is the provider's own (not the
    provider client's "Error code: 400 - {...}" with the body as a Python dict)."""
    gw.rec.reset(answer, status=400)
    with pytest.raises(anthropic.BadRequestError) as err:
        gw.ant.messages.create(model=model, max_tokens=50, messages=ASKED, extra_body=CTX)
    body = err.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    provider_words = str(answer["error"]["message"])
    assert body["error"]["message"].endswith(f"bad request (400): {provider_words}"), body


@pytest.mark.parametrize("thinking", [{"type": "adaptive"}, {"type": "between_tools"}])
def test_thinking_without_a_budget_across_apis_is_refused_by_name(gw: Gateway, thinking: dict[str, Any]
                                                                  ) -> None:
    """``enabled`` with a budget becomes ``reasoning_effort``; a thinking mode with no OpenAI counterpart is
    refused naming ``thinking.type`` instead of being sent as no thinking at all."""
    gw.rec.reset(TEXT_ANSWER)
    r = _messages(gw, model="oa", messages=ASKED, thinking=thinking)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"].startswith("thinking.type: ") and not gw.rec.received
    r = _messages(gw, model="oa", messages=ASKED, thinking={"type": "disabled"})
    assert r.status_code == 200 and "reasoning_effort" not in gw.rec.last.body
    r = _messages(gw, model="oa", max_tokens=4000, messages=ASKED,
                  thinking={"type": "enabled", "budget_tokens": 3000})
    assert r.status_code == 200 and gw.rec.last.body["reasoning_effort"] == "high"



def test_a_thinking_display_openai_cannot_honour_across_apis_is_refused_by_name(gw: Gateway) -> None:
    """``display: omitted`` asks Claude to leave the thinking text out; a compatible OpenAI server shows its
    reasoning anyway, so it is refused naming ``thinking.display``; ``summarized`` (Claude's default)
    passes."""
    gw.rec.reset(TEXT_ANSWER)
    thinking = {"type": "enabled", "budget_tokens": 1024}
    r = _messages(gw, model="oa", max_tokens=4000, messages=ASKED,
                  thinking={**thinking, "display": "omitted"})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("thinking.display: "), r.text
    assert not gw.rec.received
    r = _messages(gw, model="oa", max_tokens=4000, messages=ASKED,
                  thinking={**thinking, "display": "summarized"})
    assert r.status_code == 200 and gw.rec.last.body["reasoning_effort"] == "low"


def test_a_tool_loop_with_thinking_across_apis_sends_the_assistant_turn_back(gw: Gateway) -> None:
    """The stream helper's message (thinking from ``reasoning_content``, then a tool call) goes back as the
    next request's assistant turn, as Claude's users do. Chat Completions takes no reasoning back (nor does
    Claude from earlier turns' thinking but the current tool loop's), so its thinking blocks are left out of
    the OpenAI history and the rest is carried."""
    gw.rec.reset(events=[
        _chunk({"role": "assistant", "content": None, "reasoning_content": "Rome, so call the tool."}),
        _chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]}),
        _chunk({}, "tool_calls"), USAGE_CHUNK])
    thinking = {"type": "enabled", "budget_tokens": 1024}
    with gw.ant.messages.stream(model="oa", max_tokens=2000, thinking=thinking,  # type: ignore[arg-type]
                                tools=[ANT_TOOL], messages=ASKED, extra_body=CTX) as stream:  # type: ignore[list-item]
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "tool_use"]
    gw.rec.reset(TEXT_ANSWER)
    turn = {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in final.content]}
    result = {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}
    history = [*ASKED, turn, {"role": "user", "content": [result]}]
    msg = gw.ant.messages.create(model="oa", max_tokens=2000, thinking=thinking,  # type: ignore[arg-type]
                                 tools=[ANT_TOOL], messages=history, extra_body=CTX)  # type: ignore[list-item,arg-type]
    assert msg.content[0].text == "ok"  # type: ignore[union-attr]
    assert gw.rec.last.body["messages"][1:] == [
        {"role": "user", "content": "Weather in Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather",
                                                              "arguments": '{"city": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]


def test_count_tokens_counts_the_message_the_config_would_send(gw: Gateway) -> None:
    """``client.messages.count_tokens`` names the config as its model: the provider counts the body a message
    would carry (config's model, system and tools applied), without the sampling fields counting refuses;
    the caller's headers travel as with a message, the answer comes back unchanged."""
    gw.rec.reset({"input_tokens": 42})
    raw = gw.ant.messages.with_raw_response.count_tokens(
        model="an", system="Be brief.", messages=ASKED, tools=[ANT_TOOL],  # type: ignore[list-item]
        extra_body=CTX, extra_headers={"anthropic-beta": "token-counting-2024-11-01"})
    assert raw.parse().input_tokens == 42 and raw.headers["x-canaryflow-version"] == "1"
    sent = gw.rec.last
    assert sent.path == "/v1/messages/count_tokens"
    assert sent.headers["anthropic-beta"] == "token-counting-2024-11-01"
    assert sent.body == {"model": "claude-haiku-4-5", "messages": ASKED, "tools": [ANT_TOOL],
                         "system": "You are the support assistant for Acme.\n\nBe brief."}
    gw.rec.reset({"input_tokens": 1})
    with pytest.raises(anthropic.BadRequestError) as err:
        gw.ant.messages.count_tokens(model="oa", messages=ASKED, extra_body=CTX)  # type: ignore[list-item]
    assert "no token counting endpoint" in str(err.value) and not gw.rec.received
    with pytest.raises(anthropic.NotFoundError):
        gw.ant.messages.count_tokens(model="no-such-config", messages=ASKED)  # type: ignore[list-item]


PDF = {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}


DOCUMENT_ASKED = [{"role": "user", "content": [{"type": "document", "source": PDF, "title": "Q3 report"},
                                               {"type": "text", "text": "Summarise it."}]}]


def test_a_pdf_document_across_apis_is_a_file_part(gw: Gateway) -> None:
    """A base64 PDF ``document`` block becomes Chat Completions' ``file`` part (its title the filename);
    other sources, citations and context are refused by name."""
    gw.rec.reset(TEXT_ANSWER)
    r = _messages(gw, model="oa", messages=DOCUMENT_ASKED)
    assert r.status_code == 200, r.text
    pdf = {"filename": "Q3 report.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQK"}
    assert gw.rec.last.body["messages"][1] == {"role": "user", "content": [
        {"type": "file", "file": pdf}, {"type": "text", "text": "Summarise it."}]}
    for block, field in [
        ({"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}, "source"),
        ({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}, "source"),
        ({"type": "document", "source": PDF, "citations": {"enabled": True}}, "citations"),
        ({"type": "document", "source": PDF, "context": "From the finance team"}, "context"),
    ]:
        gw.rec.reset(TEXT_ANSWER)
        r = _messages(gw, model="oa", messages=[{"role": "user", "content": [block]}])
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"].startswith(f"messages[0].content[0].{field}: ")
        assert not gw.rec.received



class Weather(BaseModel):
    city: str
    sky: str


def test_messages_parse_across_apis(gw: Gateway) -> None:
    """``client.messages.parse(output_format=Model)`` sends ``output_config.format`` (and ``effort``): across
    APIs they become ``response_format`` and ``reasoning_effort``, and the answer parses into the model."""
    gw.rec.reset({**TEXT_ANSWER, "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": '{"city": "Rome", "sky": "sunny"}', "refusal": None}}]})
    msg = gw.ant.messages.parse(model="oa", max_tokens=100, messages=ASKED,  # type: ignore[arg-type]
                                output_format=Weather, output_config={"effort": "low"}, extra_body=CTX)
    assert msg.parsed_output == Weather(city="Rome", sky="sunny")
    sent = gw.rec.last.body
    assert sent["reasoning_effort"] == "low"
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"]["required"] == ["city", "sky"]
    gw.rec.reset(TEXT_ANSWER)
    r = _messages(gw, model="oa", messages=ASKED, output_config={"effort": "max"})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("output_config.effort: ")


def test_a_config_format_goes_where_the_caller_s_output_config_is() -> None:
    """Same API: the config's output format replaces the caller's in ``output_config.format`` when the caller
    used ``output_config`` (not a second ``output_format`` beside it), and keeps the caller's effort."""
    caller_format = {"type": "json_schema", "schema": {"type": "object"}}
    body = {"model": "k", "max_tokens": 10, "messages": ASKED,
            "output_config": {"effort": "low", "format": caller_format}}
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    out = apply_config("messages", body, Decisions("claude-haiku-4-5", response_format={"schema": schema}))
    assert "output_format" not in out
    assert out["output_config"] == {"effort": "low", "format": {"type": "json_schema", "schema": schema}}



def test_tool_options_across_apis_are_carried_or_refused_by_name(gw: Gateway) -> None:
    """``strict`` is OpenAI's ``function.strict``; tool options OpenAI has no counterpart for (examples,
    deferred loading, programmatic callers) are refused naming them, not sent as a plain tool."""
    gw.rec.reset(TEXT_ANSWER)
    r = _messages(gw, model="oa", messages=ASKED, tools=[{**ANT_TOOL, "strict": True}])
    assert r.status_code == 200, r.text
    assert gw.rec.last.body["tools"][0]["function"]["strict"] is True
    for name, value in [("input_examples", [{"city": "Rome"}]), ("defer_loading", True),
                        ("allowed_callers", ["code_execution_20250825"])]:
        gw.rec.reset(TEXT_ANSWER)
        r = _messages(gw, model="oa", messages=ASKED, tools=[{**ANT_TOOL, name: value}])
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"].startswith(f"tools[0].{name}: ") and not gw.rec.received



@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"role": "user", "content": [{"type": "text", "text": "As cited:", "citations": [
            {"type": "char_location", "cited_text": "x", "document_index": 0, "start_char_index": 0,
             "end_char_index": 1}]}]}, "messages[0].content[0].citations"),
        ({"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://i/x.png"},
                                       "transformations": {"crop": "center"}}]},
         "messages[0].content[0].transformations"),
        ({"role": "user", "content": "hi", "a_future_field": 1}, "messages[0].a_future_field"),
    ],
)
def test_block_fields_without_a_counterpart_are_refused_by_name(gw: Gateway, message: dict[str, Any],
                                                               field: str) -> None:
    gw.rec.reset(TEXT_ANSWER)
    r = _messages(gw, model="oa", messages=[message])
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"].startswith(f"{field}: ") and not gw.rec.received



@pytest.mark.parametrize(("error", "caller_type"), [
    ({"type": "overloaded_error", "message": "Overloaded"}, "overloaded_error"),
    ({"type": "rate_limit_error", "message": "Number of request tokens has exceeded your rate limit"},
     "rate_limit_error"),
    ({"type": "api_error", "message": "Internal server error"}, "api_error"),
])
def test_a_mid_stream_error_keeps_its_anthropic_type(gw: Gateway, error: dict[str, str], caller_type: str
                                                     ) -> None:
    """Claude's stream can end in an ``error`` event (``overloaded_error`` most often); the caller's error
    event keeps that type, which retry logic reads, instead of turning every one into ``api_error``."""
    gw.rec.reset(events=[
        {"type": "message_start", "message": {**ANT_TEXT, "content": []}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
        {"type": "error", "error": error}])
    with (pytest.raises(anthropic.APIStatusError) as err,
          gw.ant.messages.stream(model="an", max_tokens=50, messages=ASKED, extra_body=CTX) as stream):
        stream.until_done()
    body = err.value.body
    assert isinstance(body, dict) and body["error"]["type"] == caller_type, body
    assert error["message"] in body["error"]["message"]



def test_cache_control_across_apis_is_openai_s_automatic_caching(gw: Gateway) -> None:
    """Prompt caching asked for the whole request (top-level ``cache_control``) is treated as it is on blocks
    and tools: OpenAI caches prompt prefixes by itself, so the request is served (was a 400 for the top-level
    field only) and the answer's cached tokens come back as ``cache_read_input_tokens``."""
    usage = {"prompt_tokens": 1200, "completion_tokens": 2, "total_tokens": 1202,
             "prompt_tokens_details": {"cached_tokens": 1024}}
    gw.rec.reset({**TEXT_ANSWER, "usage": usage})
    msg = gw.ant.messages.create(model="oa", max_tokens=50, messages=ASKED, extra_body=CTX,
                                 cache_control={"type": "ephemeral"})
    assert "cache_control" not in gw.rec.last.body
    assert (msg.usage.cache_read_input_tokens, msg.usage.input_tokens) == (1024, 176)



def test_tool_calls_finished_with_stop_are_tool_use(gw: Gateway) -> None:
    """OpenAI-compatible servers (Ollama, some vLLM versions) end a tool-calling answer with finish_reason
    ``stop``; the anthropic client's agent loop reads ``stop_reason == "tool_use"``, plain and streamed."""
    call = {"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}
    gw.rec.reset({**TEXT_ANSWER, "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": None, "tool_calls": [call]}}]})
    msg = gw.ant.messages.create(model="oa", max_tokens=50, messages=ASKED, tools=[ANT_TOOL],  # type: ignore[list-item]
                                 extra_body=CTX)
    assert msg.stop_reason == "tool_use" and msg.content[0].type == "tool_use"
    gw.rec.reset(events=[_chunk({"role": "assistant", "content": None, "tool_calls": [{**call, "index": 0}]}),
                         _chunk({}, "stop"), USAGE_CHUNK])
    with gw.ant.messages.stream(model="oa", max_tokens=50, messages=ASKED, tools=[ANT_TOOL],  # type: ignore[list-item]
                                extra_body=CTX) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[0].input == {"city": "Rome"}  # type: ignore[union-attr]



def test_a_thinking_budget_the_config_s_cap_leaves_no_room_for(gw: Gateway) -> None:
    """Same API: the caller's budget fits its own ``max_tokens`` but not the config's cap on it (200 here):
    a 400 naming ``thinking.budget_tokens`` and the cap, instead of Claude's 400 about a ``max_tokens`` the
    caller never sent."""
    gw.rec.reset(ANT_TEXT)
    thinking = {"type": "enabled", "budget_tokens": 1024}
    r = _messages(gw, model="an", max_tokens=3000, messages=ASKED, thinking=thinking)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    message = r.json()["error"]["message"]
    assert message.startswith("thinking.budget_tokens: ") and "caps max_tokens at 200" in message
    assert not gw.rec.received
    # the caller's own limit leaves no room: its mistake, Claude's to refuse in its own words
    r = _messages(gw, model="an", max_tokens=100, messages=ASKED, thinking=thinking)
    assert r.status_code == 200 and gw.rec.last.body["max_tokens"] == 100



@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_a_wrong_method_on_an_anthropic_path_is_a_405_in_anthropic_s_shape(gw: Gateway, path: str) -> None:
    r = httpx.get(f"{gw.url}{path}", headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error"



def test_claude_overloaded_reaches_the_anthropic_client_as_overloaded(gw: Gateway) -> None:
    """Claude's 529 ``overloaded_error`` (after the gateway's own retry) is a 529 ``overloaded_error`` for
    the anthropic client (its ``OverloadedError``, which it retries), not a 502 ``api_error``; an OpenAI
    caller of the same config gets the 502 its API knows."""
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    gw.rec.reset(overloaded, status=529)
    with pytest.raises(anthropic.OverloadedError) as err:
        gw.ant.messages.create(model="an", max_tokens=50, messages=ASKED, extra_body=CTX)
    body = err.value.body
    assert err.value.status_code == 529
    assert isinstance(body, dict) and body["error"]["type"] == "overloaded_error"
    r = httpx.post(f"{gw.url}/v1/chat/completions", json={"model": "an", "messages": ASKED, **CTX})
    assert r.status_code == 502



def test_the_stop_sequence_an_openai_compatible_server_names(gw: Gateway) -> None:
    """vLLM says which stop string ended the answer (``choices[0].stop_reason``): the anthropic client gets
    ``stop_reason: stop_sequence`` and ``stop_sequence``, plain and streamed. OpenAI does not say which, so
    its ``stop`` stays ``end_turn``."""
    gw.rec.reset({**TEXT_ANSWER, "choices": [{"index": 0, "finish_reason": "stop", "stop_reason": "END",
                                             "message": {"role": "assistant", "content": "ok"}}]})
    msg = gw.ant.messages.create(model="oa", max_tokens=50, messages=ASKED, stop_sequences=["END"],
                                 extra_body=CTX)
    assert (msg.stop_reason, msg.stop_sequence) == ("stop_sequence", "END")
    assert gw.rec.last.body["stop"] == ["END"]
    finished = {**_chunk({}, "stop"), "choices": [{"index": 0, "delta": {}, "finish_reason": "stop",
                                                   "stop_reason": "END"}]}
    gw.rec.reset(events=[_chunk({"role": "assistant", "content": "ok"}), finished, USAGE_CHUNK])
    with gw.ant.messages.stream(model="oa", max_tokens=50, messages=ASKED, stop_sequences=["END"],
                                extra_body=CTX) as stream:
        final = stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "END")
    gw.rec.reset(TEXT_ANSWER)
    plain = gw.ant.messages.create(model="oa", max_tokens=50, messages=ASKED, stop_sequences=["END"],
                                   extra_body=CTX)
    assert (plain.stop_reason, plain.stop_sequence) == ("end_turn", None)



def test_a_config_may_drop_a_nested_field_by_its_name(gw: Gateway) -> None:
    """``drop: [is_error]`` lets every failed tool result through as a plain tool message (the anthropic
    tool runner sends ``is_error`` whenever a tool raises), where a path would name one message only."""
    gw.client.registry.push_config(spec("oa-lenient", system="You are the support assistant for {{product}}.",
                                        drop=["is_error"]), author="t")
    failed = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t0", "content": "timeout",
                                           "is_error": True}]}
    deadline = time.monotonic() + 5
    while True:
        gw.rec.reset(TEXT_ANSWER)
        r = _messages(gw, model="oa-lenient", tools=[ANT_TOOL], messages=[*ASKED, CALLED, failed])
        if r.status_code != 404 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert r.status_code == 200, r.text
    assert gw.rec.last.body["messages"][-1] == {"role": "tool", "tool_call_id": "t0", "content": "timeout"}
    r = _messages(gw, model="oa", tools=[ANT_TOOL], messages=[*ASKED, CALLED, failed])
    assert r.status_code == 400  # a config that did not list it still refuses


# ── against the simulator (after the recording upstream's tests: each points the clients elsewhere) ──


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """The simulator (as strict as the real APIs) behind the gateway: an Anthropic and an OpenAI config.
    Per test: it points the provider clients at the simulator while it runs, and ``gw``'s upstream after."""
    system = "You help with {{product}}."
    configs = [spec("claude-bot", provider="anthropic", model="claude-haiku-4-5", system=system),
               spec("gpt-bot", system=system),
               spec("claude-long", provider="anthropic", model="claude-haiku-4-5", system=system,
                    parameters={"max_tokens": 4000})]
    with running_stack(tmp_path, configs=configs) as s:
        yield s


def test_count_tokens_against_the_simulator(stack: Stack) -> None:
    """The simulator counts as Claude does — a message's fields, no ``max_tokens`` — and the count is the
    input tokens the same message is then billed."""
    ant = anthropic.Anthropic(base_url=stack.url, api_key="k", max_retries=0)
    counted = ant.messages.count_tokens(model="claude-bot", messages=ASKED, tools=[ANT_TOOL],  # type: ignore[list-item]
                                        extra_body=CTX)
    msg = ant.messages.create(model="claude-bot", max_tokens=50, messages=ASKED, tools=[ANT_TOOL],  # type: ignore[list-item]
                              extra_body=CTX)
    assert counted.input_tokens == msg.usage.input_tokens + (msg.usage.cache_read_input_tokens or 0) > 0
    r = httpx.post(f"{stack.sim.url}/v1/messages/count_tokens", headers={"x-api-key": "k"},
                   json={"model": "claude-haiku-4-5", "max_tokens": 5, "messages": ASKED})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "max_tokens: Extra inputs are not permitted"


def test_the_simulator_takes_a_translated_pdf_as_openai_does(stack: Stack) -> None:
    ant = anthropic.Anthropic(base_url=stack.url, api_key="k", max_retries=0)
    msg = ant.messages.create(model="gpt-bot", max_tokens=50, messages=DOCUMENT_ASKED,  # type: ignore[arg-type]
                              extra_body=CTX)
    assert msg.content[0].type == "text" and msg.content[0].text
    part = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0xLjQK"}}
    r = httpx.post(f"{stack.sim.url}/v1/chat/completions", headers={"authorization": "Bearer k"},
                   json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [part]}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages[0].content[0].file.filename"


@pytest.mark.parametrize("choice", [{"type": "auto"}, {"type": "none"},
                                    {"type": "auto", "disable_parallel_tool_use": True}])
def test_a_tool_choice_without_tools_across_apis(stack: Stack, choice: dict[str, Any]) -> None:
    """Claude takes ``tool_choice`` auto/none without tools (frameworks send it always); OpenAI refuses
    ``tool_choice`` without ``tools``, so across APIs it is not sent when there is no tool to call."""
    ant = anthropic.Anthropic(base_url=stack.url, api_key="k", max_retries=0)
    msg = ant.messages.create(model="gpt-bot", max_tokens=50, messages=ASKED,  # type: ignore[arg-type]
                              tool_choice=choice, extra_body=CTX)  # type: ignore[arg-type]
    assert msg.content[0].type == "text" and msg.stop_reason == "end_turn"
    ant.messages.create(model="claude-bot", max_tokens=50, messages=ASKED,  # type: ignore[arg-type]
                        tool_choice=choice, extra_body=CTX)  # type: ignore[arg-type]


def test_thinking_same_api_within_the_config_s_cap(stack: Stack) -> None:
    """Thinking the config's cap leaves room for reaches Claude as sent; the stream helper's message (signed
    thinking, then text) comes back whole."""
    ant = anthropic.Anthropic(base_url=stack.url, api_key="k", max_retries=0)
    with ant.messages.stream(model="claude-long", max_tokens=3000, messages=ASKED,  # type: ignore[arg-type]
                             thinking={"type": "enabled", "budget_tokens": 1024}, extra_body=CTX) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].signature  # type: ignore[union-attr]


def test_the_provider_s_request_id_reaches_the_client(stack: Stack) -> None:
    """The provider's id of the request (what its support asks for) reaches the client as its SDK reads it
    (``message._request_id``, from ``request-id``), plain and streamed, beside the gateway's
    ``X-Canaryflow-Request-Id``; across APIs it is the OpenAI provider's ``x-request-id``."""
    ant = anthropic.Anthropic(base_url=stack.url, api_key="k", max_retries=0)
    for model in ("claude-bot", "gpt-bot"):
        raw = ant.messages.with_raw_response.create(model=model, max_tokens=20, messages=ASKED,  # type: ignore[arg-type]
                                                    extra_body=CTX)
        msg = raw.parse()
        assert msg._request_id and msg._request_id.startswith("req_"), model
        assert raw.headers["x-canaryflow-request-id"] != msg._request_id
        with ant.messages.stream(model=model, max_tokens=20, messages=ASKED, extra_body=CTX) as stream:
            streamed = stream.response.headers.get("request-id")
            stream.until_done()
        assert streamed and streamed.startswith("req_") and streamed != msg._request_id, model

