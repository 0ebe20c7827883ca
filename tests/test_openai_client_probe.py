"""The official ``openai`` client against the gateway and the provider simulator, in the ways real callers
use it that the pass-through tests do not cover: ``models.retrieve``, provider rate limits, reasoning
across APIs, neutral fields across APIs, the response headers of streams."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from canaryflow.providers.breaker import CircuitBreaker
from tests.traffic_stack import Stack, running_stack, spec

H = {"X-Canaryflow-Var-product": "Acme"}
Q = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp: Path = tmp_path_factory.mktemp("probe")
    configs = [spec("oa"), spec("an", provider="anthropic", model="claude-haiku-4-5"),
               spec("an-roomy", provider="anthropic", model="claude-haiku-4-5",
                    parameters={"temperature": 0.2, "max_tokens": 8000})]
    with running_stack(tmp, configs=configs, traffic_rate=0.0) as st:
        st.plane.runner.breaker = CircuitBreaker(min_calls=10**9)  # injected failures must not open it
        yield st


@pytest.fixture(scope="module")
def oai(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key="k", max_retries=0)


def test_models_retrieve_names_a_config(stack: Stack, oai: openai.OpenAI) -> None:
    model = oai.models.retrieve("oa")
    assert (model.id, model.object, model.owned_by) == ("oa", "model", "canaryflow")
    with pytest.raises(openai.NotFoundError) as err:
        oai.models.retrieve("nope")
    assert "unknown config 'nope'" in err.value.message
    ant = anthropic.Anthropic(base_url=stack.url, api_key="k", max_retries=0)
    info = ant.models.retrieve("an")
    assert (info.id, info.type) == ("an", "model")
    with pytest.raises(anthropic.NotFoundError):
        ant.models.retrieve("nope")


def test_reasoning_effort_across_apis_gets_a_thinking_budget_with_room_to_answer(oai: openai.OpenAI) -> None:
    """Anthropic needs max_tokens above the thinking budget: with room for it the answer comes back (the
    simulator refuses a budget at or over max_tokens, as Anthropic does)."""
    done = oai.chat.completions.create(model="an-roomy", messages=Q, reasoning_effort="medium",
                                       extra_headers=H)  # type: ignore[arg-type]
    assert done.choices[0].finish_reason == "stop" and done.choices[0].message.content


@pytest.mark.parametrize(("model", "limit", "why"), [
    ("an", None, "200"),  # the config's max_tokens leaves no room for a 1024-token budget
    ("an-roomy", 100, "100"),  # nor does the caller's own limit (it is not raised behind its back)
])
def test_reasoning_effort_without_room_for_its_budget_is_refused_by_name(
        stack: Stack, oai: openai.OpenAI, model: str, limit: int | None, why: str) -> None:
    before = stack.simulator.stats["requests"]
    with pytest.raises(openai.BadRequestError) as err:
        oai.chat.completions.create(model=model, messages=Q, reasoning_effort="low",
                                    extra_headers=H,  # type: ignore[arg-type]
                                    **({} if limit is None else {"max_completion_tokens": limit}))
    body = err.value.body
    assert isinstance(body, dict) and body["param"] == "reasoning_effort", body
    assert "1024" in body["message"] and why in body["message"]
    assert stack.simulator.stats["requests"] == before  # refused before any provider call


@pytest.mark.parametrize("model", ["oa", "an"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_rate_limited_provider_is_a_429_with_its_retry_after(stack: Stack, oai: openai.OpenAI, model: str,
                                                               stream: bool) -> None:
    """The client's own retry honours Retry-After (a 502 would be retried on its backoff, sooner)."""
    ask = [{"role": "user", "content": f"hi {stream} [sim:rate_limit=1] [sim:retry_after=7]"}]
    with pytest.raises(openai.RateLimitError) as err:
        oai.chat.completions.create(model=model, messages=ask, stream=stream,  # type: ignore[call-overload]
                                    extra_headers=H)
    assert err.value.status_code == 429
    assert err.value.response.headers["retry-after"] == "7"
    assert err.value.response.headers["retry-after-ms"] == "7000"
    body = err.value.body
    assert isinstance(body, dict) and body["code"] == "rate_limit" and "429" in body["message"]
    ant = anthropic.Anthropic(base_url=stack.url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as aerr:
        ant.messages.create(model=model, max_tokens=50, messages=ask, extra_headers=H)  # type: ignore[arg-type]
    assert aerr.value.response.headers["retry-after"] == "7"
    assert aerr.value.response.json()["error"]["type"] == "rate_limit_error"


@pytest.mark.parametrize("extra", [
    {"modalities": ["text"]}, {"presence_penalty": 0}, {"frequency_penalty": 0.0}, {"logit_bias": {}},
    {"metadata": {}}, {"tool_choice": "none", "parallel_tool_calls": False},
])
def test_default_valued_fields_are_no_reason_to_refuse_across_apis(oai: openai.OpenAI,
                                                                   extra: dict[str, object]) -> None:
    """Clients and frameworks send some fields at their default values; those change nothing and have
    nothing to carry to Anthropic (the simulator refuses options on ``tool_choice: none``, as Anthropic
    does)."""
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}] if "tool_choice" in extra else None
    done = oai.chat.completions.create(model="an", messages=Q, extra_headers=H, extra_body=extra,
                                       **({"tools": tools} if tools else {}))  # type: ignore[arg-type]
    assert done.choices[0].message.content


@pytest.mark.parametrize(("model", "served_by"), [("oa", "openai/gpt-4o-mini"),
                                                  ("an", "anthropic/claude-haiku-4-5")])
def test_a_stream_says_who_served_it_as_a_json_answer_does(oai: openai.OpenAI, model: str,
                                                           served_by: str) -> None:
    plain = oai.chat.completions.with_raw_response.create(model=model, messages=Q, extra_headers=H)
    with oai.chat.completions.with_streaming_response.create(model=model, messages=Q, stream=True,
                                                             extra_headers=H) as streamed:
        assert streamed.headers["x-canaryflow-served-by"] == served_by
        assert plain.headers["x-canaryflow-served-by"] == served_by
        assert streamed.headers["x-canaryflow-version"] == plain.headers["x-canaryflow-version"] == "1"


WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.mark.parametrize("streamed", [False, True])
def test_a_tool_loop_with_reasoning_across_apis(oai: openai.OpenAI, streamed: bool) -> None:
    """``messages.append(answer.message)`` then the tool result, with reasoning_effort on an Anthropic
    config: Claude (and the simulator) require the turn's signed thinking block back before the tool
    result, from a plain answer and from the stream helper's final completion alike."""
    history: list[Any] = [{"role": "user", "content": "Weather in Oslo? [sim:tool_use_rate=1]"}]
    ask: dict[str, Any] = {"model": "an-roomy", "tools": [WEATHER_TOOL], "reasoning_effort": "low",
                           "extra_headers": H}
    if streamed:
        with oai.chat.completions.stream(messages=history, tool_choice="required", **ask) as stream:
            message: Any = stream.get_final_completion().choices[0].message
    else:
        done = oai.chat.completions.create(messages=history, tool_choice="required", **ask)
        message = done.choices[0].message
    assert message.tool_calls and message.model_extra["reasoning_content"]
    history += [message, {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "sunny"}]
    after = oai.chat.completions.create(messages=history, **ask)
    assert after.choices[0].finish_reason == "stop" and after.choices[0].message.content


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/chat/completions", b'{"model":"oa","messages":[{"role":"user","content":"hi \\ud83d"}]}'),
    ("/v1/responses", b'{"model":"oa","input":"hi \\udc00 there"}'),
    ("/v1/messages", b'{"model":"an","max_tokens":9,"messages":[{"role":"user","content":"\\uDC00"}]}'),
])
def test_a_lone_surrogate_is_a_400_not_a_provider_error(stack: Stack, path: str, body: bytes) -> None:
    """JSON can escape half a UTF-16 pair, which no UTF-8 text holds: the body is refused as OpenAI refuses
    it, instead of a 502 counted as the provider's error against the version serving it."""
    errors = stack.count("canaryflow_requests_total", outcome="error")
    r = httpx.post(stack.url + path, content=body, headers=H)
    assert r.status_code == 400, r.text
    assert "surrogate" in r.text and stack.count("canaryflow_requests_total", outcome="error") == errors
    pair = (b'{"model":"oa","messages":[{"role":"user",'
            b'"content":"What is the capital of France? \\ud83d\\ude00"}]}')
    assert httpx.post(f"{stack.url}/v1/chat/completions", content=pair, headers=H).status_code == 200


def test_service_tier_default_is_anthropic_s_standard_only(stack: Stack, oai: openai.OpenAI) -> None:
    """OpenAI's ``default`` tier (standard processing, no priority capacity) is Anthropic's
    ``standard_only``, as the other way round; a tier Anthropic has no counterpart for is refused by name."""
    done = oai.chat.completions.create(model="an", messages=Q, service_tier="default", extra_headers=H)
    assert done.choices[0].message.content
    assert oai.chat.completions.create(model="an", messages=Q, service_tier="auto", extra_headers=H).choices
    with pytest.raises(openai.BadRequestError) as err:
        oai.chat.completions.create(model="an", messages=Q, service_tier="flex", extra_headers=H)
    assert isinstance(err.value.body, dict) and err.value.body["param"] == "service_tier"
    ant = anthropic.Anthropic(base_url=stack.sim.anthropic_base_url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.BadRequestError):  # the simulator knows Anthropic's tiers
        ant.messages.create(model="claude-haiku-4-5", max_tokens=9, messages=Q,  # type: ignore[arg-type]
                            service_tier="default")  # type: ignore[arg-type]


@pytest.mark.parametrize("stream", [False, True])
def test_a_provider_error_says_which_version_and_request_it_ended(oai: openai.OpenAI, stream: bool) -> None:
    """The app logs what failed with the ids it logs for answers (X-Canaryflow-Request-Id, -Version,
    -Variation), so a candidate's errors can be told from stable's."""
    ask = [{"role": "user", "content": f"hi {stream} [sim:status=400]"}]
    with pytest.raises(openai.BadRequestError) as err:
        oai.chat.completions.create(model="oa", messages=ask, stream=stream,  # type: ignore[call-overload]
                                    extra_headers=H)
    headers = err.value.response.headers
    assert headers["x-canaryflow-version"] == "1" and headers["x-canaryflow-variation"] == "stable"
    assert headers["x-canaryflow-request-id"].startswith("cf1_")


@pytest.mark.parametrize("stream", [False, True])
def test_a_request_the_config_s_provider_cannot_take_counts_as_a_bad_request(
        stack: Stack, oai: openai.OpenAI, stream: bool) -> None:
    """A field refused by name across APIs is counted with the taxonomy's bad_request, not other."""
    before = stack.count("canaryflow_requests_total", config="an", error_type="bad_request")
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model="an", messages=Q, n=2, stream=stream,  # type: ignore[call-overload]
                                    extra_headers=H)
    assert stack.count("canaryflow_requests_total", config="an", error_type="bad_request") == before + 1
