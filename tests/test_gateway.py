"""The gateway with the official openai and anthropic clients, the simulator standing in for providers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from canaryflow.domain.serving import Exposure
from tests.traffic_stack import Stack, running_stack, spec

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    configs = [spec(), spec("claude-bot", provider="anthropic", model="claude-haiku-4-5",
                            system="You help with {{product}}.")]
    with running_stack(tmp_path_factory.mktemp("gw"), configs=configs) as s:
        s.registry.push_config(spec(system="You are the NEW support assistant for {{product}}."))
        s.registry.pin("support-bot", "internal", 2, by="test", reason="dogfood")
        yield s


@pytest.fixture
def oai(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key="anything", max_retries=0)


@pytest.fixture
def ant(stack: Stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.url, api_key="anything", max_retries=0)


PRODUCT = {"canaryflow": {"user": "u-1", "variables": {"product": "Acme"}}}


def test_openai_plain(oai: openai.OpenAI) -> None:
    raw = oai.chat.completions.with_raw_response.create(
        model="support-bot", messages=[{"role": "user", "content": QUESTION}], extra_body=PRODUCT)
    done = raw.parse()
    assert done.choices[0].message.content
    assert done.model == "gpt-4o-mini"  # the provider's answer, unchanged
    assert raw.headers["x-canaryflow-served-by"] == "openai/gpt-4o-mini"
    assert done.usage is not None and done.usage.prompt_tokens > 0 and done.usage.completion_tokens > 0
    assert raw.headers["x-canaryflow-version"] == "1"
    assert raw.headers["x-canaryflow-variation"] == "stable"
    assert raw.headers["x-canaryflow-fallback"] == "false"
    assert raw.headers["x-canaryflow-request-id"].startswith("cf1_")  # signed: carries its attribution


def test_openai_streaming(oai: openai.OpenAI) -> None:
    with oai.chat.completions.with_streaming_response.create(
            model="support-bot", messages=[{"role": "user", "content": QUESTION}], stream=True,
            stream_options={"include_usage": True}, extra_body=PRODUCT) as raw:
        assert raw.headers["x-canaryflow-version"] == "1"
        chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text and finish == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_anthropic_plain(ant: anthropic.Anthropic) -> None:
    raw = ant.messages.with_raw_response.create(
        model="claude-bot", max_tokens=100, messages=[{"role": "user", "content": QUESTION}],
        system="Answer briefly.", extra_body=PRODUCT)
    msg = raw.parse()
    assert msg.content[0].type == "text" and msg.content[0].text
    assert msg.stop_reason == "end_turn"
    assert msg.usage.output_tokens > 0
    assert raw.headers["x-canaryflow-version"] == "1"
    assert raw.headers["x-canaryflow-variation"] == "stable"


def test_anthropic_streaming(ant: anthropic.Anthropic) -> None:
    with ant.messages.stream(model="claude-bot", max_tokens=100, extra_body=PRODUCT,
                             messages=[{"role": "user", "content": QUESTION}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_openai_client_against_an_anthropic_config(oai: openai.OpenAI) -> None:
    done = oai.chat.completions.create(model="claude-bot", messages=[{"role": "user", "content": QUESTION}],
                                       extra_body=PRODUCT)
    assert done.choices[0].message.content


def test_headers_carry_the_context(stack: Stack) -> None:
    headers = {"X-Canaryflow-User": "emp-1", "X-Canaryflow-Attr-Email": "emp-1@acme.com",
               "X-Canaryflow-Var-Product": "Acme"}
    r = httpx.post(f"{stack.url}/v1/chat/completions", headers=headers, json={
        "model": "support-bot", "messages": [{"role": "user", "content": QUESTION}]})
    assert r.status_code == 200, r.text
    assert r.headers["x-canaryflow-version"] == "2"
    assert r.headers["x-canaryflow-variation"] == "pinned"
    assert "canaryflow" not in r.json()  # the answer is the provider's; the facts are in the headers


def test_extra_body_context_wins_over_headers(oai: openai.OpenAI) -> None:
    raw = oai.chat.completions.with_raw_response.create(
        model="support-bot", messages=[{"role": "user", "content": QUESTION}],
        extra_headers={"X-Canaryflow-Attr-Email": "someone@example.com"},
        extra_body={"canaryflow": {"user": "emp-2", "attributes": {"email": "emp-2@acme.com"},
                                   "variables": {"product": "Acme"}}})
    assert raw.headers["x-canaryflow-variation"] == "pinned"
    assert raw.headers["x-canaryflow-version"] == "2"


def test_candidate_exposure_reaches_the_gateway(stack: Stack, oai: openai.OpenAI) -> None:
    stack.registry.push_config(spec("claude-bot", provider="anthropic", model="claude-haiku-4-5",
                                    system="You help with {{product}}, briefly."))
    stack.registry.apply_exposure("claude-bot", Exposure(candidate_version=2, stage="x", stage_kind="full"),
                                  by="test", reason="test", source="cli")
    raw = oai.chat.completions.with_raw_response.create(
        model="claude-bot", messages=[{"role": "user", "content": QUESTION}], extra_body=PRODUCT)
    # refresh_interval is 50 ms: the first request after the change may still see stable
    variations = {raw.headers["x-canaryflow-variation"]}
    for _ in range(50):
        raw = oai.chat.completions.with_raw_response.create(
            model="claude-bot", messages=[{"role": "user", "content": QUESTION}], extra_body=PRODUCT)
        variations.add(raw.headers["x-canaryflow-variation"])
        if "candidate" in variations:
            break
    assert "candidate" in variations
    stack.registry.clear_exposure("claude-bot", by="test", reason="test", source="cli")


def test_bad_body_openai_shape(stack: Stack, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oai.chat.completions.create(model="support-bot", messages=[], extra_body=PRODUCT)
    body = err.value.body
    assert isinstance(body, dict) and body["param"] == "messages"  # openai puts error{} in .body
    r = httpx.post(f"{stack.url}/v1/chat/completions", content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["param"] == "body"


def test_missing_variable_is_a_400_naming_it(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oai.chat.completions.create(model="support-bot", messages=[{"role": "user", "content": "hi"}])
    assert "product" in str(err.value)


def test_unknown_config_404_in_both_shapes(stack: Stack, oai: openai.OpenAI,
                                           ant: anthropic.Anthropic) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        oai.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert "nope" in str(err.value)
    with pytest.raises(anthropic.NotFoundError) as aerr:
        ant.messages.create(model="nope", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    body = aerr.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    assert "nope" in body["error"]["message"]
    r = httpx.post(f"{stack.url}/v1/messages", json={"model": "claude-bot", "max_tokens": 5})
    assert r.status_code == 400
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error"


def test_provider_failure_is_502_in_both_shapes(stack: Stack, oai: openai.OpenAI,
                                                ant: anthropic.Anthropic) -> None:
    stack.registry.push_config(spec("broken", system="[sim:status=500] Help with {{product}}."))
    stack.registry.push_config(spec("broken-a", provider="anthropic", model="claude-haiku-4-5",
                                    system="[sim:status=503] Help with {{product}}."))
    with pytest.raises(openai.InternalServerError) as err:
        oai.chat.completions.create(model="broken", messages=[{"role": "user", "content": "hi"}],
                                    extra_body=PRODUCT)
    assert err.value.status_code == 502
    assert err.value.response.json()["error"]["code"] == "server_error"
    with pytest.raises(anthropic.InternalServerError) as aerr:
        ant.messages.create(model="broken-a", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
                            extra_body=PRODUCT)
    assert aerr.value.status_code == 502
    assert aerr.value.response.json()["type"] == "error"


def test_resolve_feedback_metrics_healthz(stack: Stack, oai: openai.OpenAI) -> None:
    r = httpx.post(f"{stack.url}/v1/resolve", json={"config": "support-bot", "user": "emp-3",
                                                     "attributes": {"email": "e@acme.com"},
                                                     "variables": {"product": "Acme"}})
    assert r.status_code == 200 and r.json()["version"] == 2 and r.json()["segment"] == "internal"
    assert "Acme" in r.json()["messages"][0]["content"]
    raw = oai.chat.completions.with_raw_response.create(
        model="support-bot", messages=[{"role": "user", "content": QUESTION}], extra_body=PRODUCT)
    rid = raw.headers["x-canaryflow-request-id"]
    before = stack.count("canaryflow_feedback_total", config="support-bot", sentiment="negative")
    r = httpx.post(f"{stack.url}/v1/feedback", json={"request_id": rid, "sentiment": "negative",
                                                      "comment": "wrong, mail me at x@y.com"})
    assert r.status_code == 200 and r.json()["version"] == 1
    assert stack.count("canaryflow_feedback_total", config="support-bot", sentiment="negative") == before + 1
    assert httpx.post(f"{stack.url}/v1/feedback", json={"request_id": "nope", "sentiment": "positive"}
                      ).status_code == 404
    bad = httpx.post(f"{stack.url}/v1/feedback", json={"request_id": rid, "sentiment": "meh"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "sentiment"
    text = httpx.get(f"{stack.url}/metrics").text
    assert 'canaryflow_requests_total{config="support-bot"' in text
    health = httpx.get(f"{stack.url}/healthz")
    assert health.status_code == 200 and health.json()["ok"] is True and health.json()["registry"] == "ok"


def test_healthz_reports_an_unreachable_registry(tmp_path: Path) -> None:
    with running_stack(tmp_path) as s:
        assert httpx.get(f"{s.url}/healthz").json()["ok"] is True
        s.registry.engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            (tmp_path / f"registry.db{suffix}").unlink(missing_ok=True)
        (tmp_path / "registry.db").mkdir()  # the database path is now a directory: unreachable
        r = httpx.get(f"{s.url}/healthz")
        assert r.status_code == 503 and r.json()["registry"].startswith("unreachable")


async def test_loadgen_sends_feedback_by_correctness(stack: Stack) -> None:
    from canaryflow.sim.loadgen import run_loadgen

    before = stack.count("canaryflow_feedback_total", config="support-bot")
    summary = await run_loadgen(stack.url, "support-bot", rate=40, duration=0.5, concurrency=4, users=50,
                                variables={"product": "Acme"})
    assert summary.sent == 20 and summary.ok == 20 and not summary.errors
    assert sum(summary.by_variation.values()) == 20
    sent = summary.feedback_sent["positive"] + summary.feedback_sent["negative"]
    assert sent == 20  # every simulator question has a known answer
    assert summary.feedback_sent["positive"] == sum(summary.correct.values())
    assert stack.count("canaryflow_feedback_total", config="support-bot") == before + sent
    assert {"v1 stable", "v2 pinned"} >= set(summary.by_variation)
