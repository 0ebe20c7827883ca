"""The provider simulator over HTTP, read by the official openai and anthropic clients."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from canaryflow.sim import SimServer, Simulator, is_correct, sample_question
from canaryflow.sim.engine import sample_latency
from canaryflow.sim.profiles import ModelProfile
from tests.servers import free_port, wait_port

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


def user(content: str) -> dict[str, str]:
    return {"role": "user", "content": content}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    server = SimServer(Simulator(seed=11, latency_scale=0.0), port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin_sim() -> Iterator[SimServer]:
    server = SimServer(Simulator(seed=5, latency_scale=0.0), admin=True, port=free_port())
    server.start()
    yield server
    server.stop()


def oai(server: SimServer, timeout: float = 10.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0, timeout=timeout)


def ant(server: SimServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="sk-ant-test", max_retries=0)


def test_openai_plain_answers_known_question_with_usage(sim: SimServer) -> None:
    resp = oai(sim).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "system", "content": "[sim:quality=1]"}, *FRANCE])
    assert resp.choices[0].message.content == "Paris"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens == 1
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + 1
    assert resp.model == "gpt-4o-mini" and resp.id.startswith("chatcmpl-")


def test_openai_stream_with_usage(sim: SimServer) -> None:
    stream = oai(sim).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Tell me about rollouts."}], stream=True,
        stream_options={"include_usage": True}, max_completion_tokens=500)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert finish == ["stop"]
    assert len(text.split()) >= 10
    assert usage.completion_tokens >= 10 and usage.prompt_tokens > 0


def test_openai_max_tokens_cuts_with_length(sim: SimServer) -> None:
    resp = oai(sim).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Write an essay. [sim:tokens=300]"}],
        max_tokens=7)
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage is not None and resp.usage.completion_tokens == 7


def test_anthropic_plain_with_usage(sim: SimServer) -> None:
    msg = ant(sim).messages.create(model="claude-haiku-4-5", max_tokens=50, system="[sim:quality=1]",
                                   messages=[{"role": "user", "content": "What is 17 + 25?"}])
    assert msg.content[0].type == "text" and msg.content[0].text == "42"
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens == 1


def test_anthropic_stream_event_sequence_and_usage(sim: SimServer) -> None:
    client = ant(sim)
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=5,
                                messages=[{"role": "user", "content": "Tell me a long story"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 5 and final.usage.input_tokens > 0
    assert final.content[0].type == "text" and final.content[0].text == text
    body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
            "messages": [{"role": "user", "content": "hi [sim:tokens=3]"}]}
    raw = httpx.post(f"{sim.url}/v1/messages", json=body, headers={"x-api-key": "k"})
    assert raw.headers["content-type"].startswith("text/event-stream")
    kinds = [line.removeprefix("event: ") for line in raw.text.splitlines() if line.startswith("event: ")]
    deltas = kinds.count("content_block_delta")
    assert deltas >= 2
    assert kinds == ["message_start", "content_block_start", "ping", *["content_block_delta"] * deltas,
                     "content_block_stop", "message_delta", "message_stop"]


def test_missing_key_is_401_in_each_shape(sim: SimServer) -> None:
    body = {"model": "gpt-4o", "messages": FRANCE, "max_tokens": 10}
    r = httpx.post(f"{sim.openai_base_url}/chat/completions", json=body)
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(f"{sim.url}/v1/messages", json=body)
    assert r.status_code == 401
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "authentication_error"
    r = httpx.post(f"{sim.url}/v1/messages", json=body, headers={"x-api-key": "k"})
    assert r.status_code == 200


def test_bad_requests_in_each_shape(sim: SimServer) -> None:
    r = httpx.post(f"{sim.url}/v1/messages", json={"model": "claude-haiku-4-5", "messages": FRANCE},
                   headers={"x-api-key": "k"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in r.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError):
        oai(sim).chat.completions.create(model="gpt-4o", messages=[])
    with pytest.raises(anthropic.BadRequestError):
        ant(sim).messages.create(model="x", max_tokens=5, messages=[user("[sim:status=400]")])


def test_markers_drive_errors_quality_and_json(sim: SimServer) -> None:
    client = oai(sim)
    with pytest.raises(openai.RateLimitError) as rate:
        client.chat.completions.create(model="gpt-4o", messages=[user("a [sim:rate_limit=1]")])
    assert rate.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=[user("b [sim:error_rate=1]")])
    with pytest.raises(anthropic.InternalServerError) as ant_err:
        ant(sim).messages.create(model="m", max_tokens=5, system="[sim:error_rate=1]", messages=FRANCE)
    assert ant_err.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    wrong = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "system", "content": "[sim:quality=0]"}, *FRANCE])
    assert wrong.choices[0].message.content in ("Lyon", "Marseille", "Nice")
    as_json = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "system", "content": "[sim:json] [sim:quality=1]"}, *FRANCE])
    assert json.loads(as_json.choices[0].message.content or "") == {"answer": "Paris"}


def test_timeout_marker_hangs_until_the_client_gives_up(sim: SimServer) -> None:
    with pytest.raises(openai.APITimeoutError):
        oai(sim, timeout=0.5).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "c [sim:timeout_rate=1]"}])
    with pytest.raises(openai.InternalServerError) as short_hang:
        oai(sim).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "d [sim:timeout_rate=1] [sim:hang_ms=50]"}])
    assert short_hang.value.status_code == 504


def _error_mix(server: SimServer, n: int) -> Counter[str]:
    client = oai(server)
    seen: Counter[str] = Counter()
    for i in range(n):
        try:
            client.chat.completions.create(model="flaky", messages=[{"role": "user", "content": f"q{i % 7}"}])
            seen["ok"] += 1
        except openai.RateLimitError:
            seen["429"] += 1
        except openai.InternalServerError:
            seen["500"] += 1
    return seen


def test_admin_is_off_by_default(sim: SimServer) -> None:
    assert httpx.get(f"{sim.url}/admin/profiles").status_code == 404
    assert httpx.post(f"{sim.url}/admin/reset").status_code == 404


def test_admin_profiles_change_at_runtime_and_the_seed_repeats_the_error_mix(admin_sim: SimServer) -> None:
    r = httpx.post(f"{admin_sim.url}/admin/profiles",
                   json={"model": "flaky", "profile": {"error_rate": 0.3, "rate_limit_rate": 0.1}})
    assert r.status_code == 200 and r.json()["profiles"]["flaky"]["error_rate"] == 0.3
    first = _error_mix(admin_sim, 200)
    assert 30 <= first["500"] <= 90 and 5 <= first["429"] <= 40 and first["ok"] >= 90
    stats = httpx.get(f"{admin_sim.url}/admin/profiles").json()["stats"]
    assert stats["requests"] == 200 and stats["server_error"] == first["500"]
    httpx.post(f"{admin_sim.url}/admin/reset")
    assert _error_mix(admin_sim, 200) == Counter({"ok": 200})  # reset: built-in default profile again
    httpx.post(f"{admin_sim.url}/admin/reset")
    httpx.post(f"{admin_sim.url}/admin/profiles",
               json={"profiles": {"flaky": {"error_rate": 0.3, "rate_limit_rate": 0.1}}})
    assert _error_mix(admin_sim, 200) == first
    bad = httpx.post(f"{admin_sim.url}/admin/profiles", json={"model": "x", "profile": {"error_rate": 5}})
    assert bad.status_code == 400 and "error_rate" in bad.json()["error"]


def test_quality_is_the_share_of_right_answers() -> None:
    import random

    sim = Simulator(seed=3, profiles={"default": ModelProfile(quality=0.8)}, latency_scale=0)
    rng = random.Random(1)
    right = 0
    for _ in range(1000):
        q = sample_question(rng)
        out = sim.plan("m", [{"role": "user", "content": q.prompt}])
        right += bool(is_correct(q.prompt, out.text))
    assert 740 <= right <= 860


def test_latency_follows_median_and_p95() -> None:
    import random

    rng = random.Random(2)
    draws = sorted(sample_latency(rng, 400, 1200) for _ in range(4000))
    assert 0.37 <= draws[2000] <= 0.43
    assert 1.05 <= draws[3800] <= 1.35


def test_cli_serves_with_a_profiles_file(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text("gpt-4o-mini: {quality: 0.0, latency_median_ms: 0}\n")
    port = free_port()
    exe = str(Path(sys.executable).parent / "canaryflow")
    proc = subprocess.Popen([exe, "sim", "--port", str(port), "--seed", "3", "--profiles", str(profiles),
                             "--latency-scale", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
        resp = client.chat.completions.create(model="gpt-4o-mini", messages=FRANCE)
        assert resp.choices[0].message.content in ("Lyon", "Marseille", "Nice")
        assert httpx.get(f"http://127.0.0.1:{port}/admin/profiles").status_code == 404
    finally:
        proc.terminate()
        proc.wait(10)


def test_cli_rejects_a_bad_profiles_file(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text("gpt-4o-mini: {quality: 3}\n")
    exe = str(Path(sys.executable).parent / "canaryflow")
    done = subprocess.run([exe, "sim", "--port", str(free_port()), "--profiles", str(profiles)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {profiles}: gpt-4o-mini.quality: Input should be less than or equal to 1"]


@pytest.mark.parametrize(("marker", "problem"), [
    ("[sim:quality=2]", "quality"), ("[sim:status=99]", "status"),
    ("[sim:latency_ms=fast]", "needs a number"), ("[sim:finish=maybe]", "finish")])
def test_bad_markers_are_400s_naming_the_marker(sim: SimServer, marker: str, problem: str) -> None:
    with pytest.raises(openai.BadRequestError, match=problem):
        oai(sim).chat.completions.create(model="gpt-4o", messages=[user(f"hi {marker}")])
