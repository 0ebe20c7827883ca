"""Provider failures through the gateway: the fallback chain serves, says so, and is counted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from tests.traffic_stack import Stack, running_stack, spec

Q = [{"role": "user", "content": "What is the chemical symbol for gold?"}]
CTX = {"canaryflow": {"user": "u-1", "variables": {"product": "Acme"}}}
FALLBACK = [{"provider": "anthropic", "model": "claude-haiku-4-5"}]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    configs = [
        spec("fb-5xx", model="gpt-4.1-nano", fallback=FALLBACK),
        spec("fb-429", model="gpt-4.1-mini", fallback=FALLBACK),
        spec("fb-400", model="gpt-4o", fallback=FALLBACK),
        spec("fb-circuit", model="o4-mini", fallback=FALLBACK),
    ]
    with running_stack(tmp_path_factory.mktemp("fallback"), configs=configs) as s:
        s.simulator.update_profile("gpt-4.1-nano", {"status": 503})
        s.simulator.update_profile("gpt-4.1-mini", {"rate_limit_rate": 1.0, "retry_after_s": 30.0})
        s.simulator.update_profile("gpt-4o", {"status": 400})
        s.simulator.update_profile("o4-mini", {"status": 500})
        yield s


@pytest.fixture
def oai(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key="x", max_retries=0)


def test_server_error_falls_back_and_says_so(stack: Stack, oai: openai.OpenAI) -> None:
    for _ in range(3):
        raw = oai.chat.completions.with_raw_response.create(model="fb-5xx", messages=Q, extra_body=CTX)
        assert raw.parse().choices[0].message.content
        assert raw.headers["x-canaryflow-fallback"] == "true"
        assert raw.headers["x-canaryflow-fallback-index"] == "0"
        assert raw.headers["x-canaryflow-fallback-reason"] == "server_error"
        assert raw.headers["x-canaryflow-served-by"] == "anthropic/claude-haiku-4-5"
        assert raw.headers["x-canaryflow-variation"] == "stable"
    assert stack.count("canaryflow_fallbacks_total", config="fb-5xx", reason="server_error",
                       gen_ai_provider_name="openai", gen_ai_request_model="gpt-4.1-nano") == 3
    # the variation's own model failed: its error (with its error type), though the fallback answered
    assert stack.count("canaryflow_requests_total", config="fb-5xx", outcome="error",
                       error_type="server_error", served_by="fallback", gen_ai_provider_name="openai",
                       gen_ai_request_model="gpt-4.1-nano") == 3
    assert stack.count("canaryflow_requests_total", config="fb-5xx") == 3
    # latency, tokens and cost of what users got are kept apart, labelled with the model that answered
    for name in ("gen_ai_client_operation_duration_seconds_count", "gen_ai_client_token_usage_count"):
        assert stack.count(name, config="fb-5xx", served_by="primary") == 0
    assert stack.count("gen_ai_client_operation_duration_seconds_count", config="fb-5xx",
                       served_by="fallback", gen_ai_provider_name="anthropic",
                       gen_ai_request_model="claude-haiku-4-5") == 3


def test_streams_fall_back_before_the_first_chunk(stack: Stack) -> None:
    ant = anthropic.Anthropic(base_url=stack.url, api_key="x", max_retries=0)
    before = stack.count("canaryflow_fallbacks_total", config="fb-5xx")
    with ant.messages.stream(model="fb-5xx", max_tokens=50, messages=Q, extra_body=CTX) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        assert stream.response.headers["x-canaryflow-fallback"] == "true"
    assert text
    assert stack.count("canaryflow_fallbacks_total", config="fb-5xx") == before + 1


def test_rate_limit_falls_back(stack: Stack, oai: openai.OpenAI) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="fb-429", messages=Q, extra_body=CTX)
    assert raw.headers["x-canaryflow-fallback-reason"] == "rate_limit"
    assert stack.count("canaryflow_fallbacks_total", config="fb-429", reason="rate_limit") == 1


def test_bad_request_never_falls_back(stack: Stack, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model="fb-400", messages=Q, extra_body=CTX)
    assert stack.count("canaryflow_fallbacks_total", config="fb-400") == 0
    assert stack.count("canaryflow_requests_total", config="fb-400", outcome="error",
                       error_type="bad_request") == 1


def test_open_circuit_skips_the_primary(stack: Stack, oai: openai.OpenAI) -> None:
    reasons = []
    for _ in range(12):
        raw = oai.chat.completions.with_raw_response.create(model="fb-circuit", messages=Q, extra_body=CTX)
        reasons.append(raw.headers["x-canaryflow-fallback-reason"])
    assert set(reasons) == {"server_error", "circuit_open"} and reasons[-1] == "circuit_open"
    assert stack.count("canaryflow_fallbacks_total", config="fb-circuit") == 12
    assert stack.count("canaryflow_fallbacks_total", config="fb-circuit", reason="circuit_open") == \
        reasons.count("circuit_open")
    assert stack.count("canaryflow_requests_total", config="fb-circuit", outcome="error",
                       served_by="fallback") == 12
    assert stack.count("canaryflow_requests_total", config="fb-circuit", error_type="circuit_open") == \
        reasons.count("circuit_open")


def test_timeout_after_fallbacks_is_504_in_both_shapes(tmp_path: Path) -> None:
    configs = [spec("slow", model="o3", fallback=[{"provider": "openai", "model": "o3"}])]
    with running_stack(tmp_path, configs=configs, timeout=0.3) as s:
        s.simulator.update_profile("o3", {"timeout_rate": 1.0, "hang_s": 5.0})
        oai = openai.OpenAI(base_url=f"{s.url}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError) as err:
            oai.chat.completions.create(model="slow", messages=Q, extra_body=CTX)
        assert err.value.status_code == 504
        assert err.value.response.json()["error"]["code"] == "timeout"
        ant = anthropic.Anthropic(base_url=s.url, api_key="x", max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as aerr:
            ant.messages.create(model="slow", max_tokens=20, messages=Q, extra_body=CTX)  # type: ignore[arg-type]
        assert aerr.value.status_code == 504
        assert aerr.value.response.json()["error"]["type"] == "timeout_error"
        assert s.count("canaryflow_requests_total", config="slow", outcome="error", error_type="timeout") == 2
