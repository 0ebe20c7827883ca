"""The openai and anthropic adapters, through the official clients, against the simulator over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from canaryflow.errors import ProviderError
from canaryflow.providers import ChatRequest, Provider, get_provider
from canaryflow.providers.errors import parse_retry_after, redact
from canaryflow.providers.factory import clear_cache
from canaryflow.sim import SimServer, Simulator
from tests.servers import free_port

SECRET = "sk-test-very-secret-0123456789"
PROVIDERS = ["openai", "anthropic"]
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    server = SimServer(Simulator(seed=4, latency_scale=0), port=free_port())
    server.start()
    yield server
    server.stop()


def provider(sim: SimServer, name: str, base_url: str | None = None) -> Provider:
    url = base_url or (sim.openai_base_url if name == "openai" else sim.anthropic_base_url)
    return get_provider(name, base_url=url, api_key=SECRET)


def request(name: str, text: str, **params: object) -> ChatRequest:
    messages = [{"role": "system", "content": "Answer briefly. [sim:quality=1]"},
                {"role": "user", "content": text}]
    return ChatRequest(MODELS[name], messages, dict(params))


@pytest.mark.parametrize("name", PROVIDERS)
async def test_complete_with_usage(sim: SimServer, name: str) -> None:
    req = request(name, "What is the capital of Italy?", temperature=0.2, top_p=0.9, stop=["###"])
    result = await provider(sim, name).complete(req, timeout=10)
    assert result.text == "Rome" and result.finish_reason == "stop"
    assert result.provider == name and result.model == MODELS[name]
    assert result.input_tokens > 5 and result.output_tokens == 1 and result.cached_input_tokens == 0
    assert result.response_id


@pytest.mark.parametrize("name", PROVIDERS)
async def test_cached_tokens_and_length_finish(sim: SimServer, name: str) -> None:
    result = await provider(sim, name).complete(
        request(name, "Explain canaries at length [sim:tokens=200] [sim:cached_fraction=0.5]", max_tokens=9),
        timeout=10)
    assert result.finish_reason == "length" and result.output_tokens == 9
    assert result.cached_input_tokens == result.input_tokens // 2 > 0


@pytest.mark.parametrize("name", PROVIDERS)
async def test_stream_yields_text_then_usage(sim: SimServer, name: str) -> None:
    req = request(name, "Tell me about deploys [sim:tokens=12]")
    chunks = [c async for c in provider(sim, name).stream(req, timeout=10)]
    *body, last = chunks
    assert len(body) >= 3 and all(c.text and c.usage is None for c in body)
    assert last.usage is not None and last.finish_reason == "stop"
    assert last.usage.text == "".join(c.text for c in body)
    assert last.usage.output_tokens >= 3 and last.usage.input_tokens > 5
    assert last.usage.provider == name and last.usage.response_id


CASES = [
    ("[sim:rate_limit=1] [sim:retry_after=3]", "rate_limit", 429, 3.0),
    ("[sim:error_rate=1]", "server_error", 500, None),
    ("[sim:status=400]", "bad_request", 400, None),
    ("[sim:status=401]", "auth", 401, None),
    ("[sim:status=529]", "server_error", 529, None),
]


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize(("marker", "error_type", "status", "retry_after"), CASES)
async def test_status_errors_are_mapped(sim: SimServer, name: str, marker: str, error_type: str, status: int,
                                        retry_after: float | None) -> None:
    with pytest.raises(ProviderError) as caught:
        await provider(sim, name).complete(request(name, f"hello {marker}"), timeout=10)
    err = caught.value
    assert (err.error_type, err.status_code, err.retry_after) == (error_type, status, retry_after)
    assert (err.provider, err.model) == (name, MODELS[name])
    assert err.__cause__ is not None and SECRET not in str(err)
    assert err.retryable == (error_type in ("rate_limit", "server_error"))


@pytest.mark.parametrize("name", PROVIDERS)
async def test_stream_errors_are_mapped(sim: SimServer, name: str) -> None:
    with pytest.raises(ProviderError) as caught:
        async for _ in provider(sim, name).stream(request(name, "x [sim:error_rate=1]"), timeout=10):
            pass
    assert caught.value.error_type == "server_error" and caught.value.status_code == 500


@pytest.mark.parametrize("name", PROVIDERS)
async def test_timeout_is_mapped(sim: SimServer, name: str) -> None:
    with pytest.raises(ProviderError) as caught:
        await provider(sim, name).complete(request(name, "wait [sim:timeout_rate=1]"), timeout=0.3)
    assert caught.value.error_type == "timeout" and caught.value.status_code is None


@pytest.mark.parametrize("name", PROVIDERS)
async def test_connection_refused_is_mapped(sim: SimServer, name: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}" + ("/v1" if name == "openai" else "")
    with pytest.raises(ProviderError) as caught:
        await provider(sim, name, base_url=dead).complete(request(name, "hi"), timeout=5)
    assert caught.value.error_type == "connection" and caught.value.retryable


def test_factory_reads_env_and_caches_per_endpoint(sim: SimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_cache()
    monkeypatch.setenv("OPENAI_BASE_URL", sim.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "k1")
    first = get_provider("openai")
    assert get_provider("openai") is first
    monkeypatch.setenv("OPENAI_API_KEY", "k2")
    assert get_provider("openai") is not first
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ProviderError, match="ANTHROPIC_API_KEY") as caught:
        get_provider("anthropic")
    assert caught.value.error_type == "auth"
    with pytest.raises(ProviderError, match="unknown provider 'mistral'") as unknown:
        get_provider("mistral")
    assert unknown.value.error_type == "bad_request"


def test_secrets_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "plainsecretvalue")
    text = redact("Incorrect API key provided: sk-proj-abcdef123456 and plainsecretvalue, Bearer xyz.123")
    assert "abcdef" not in text and "plainsecretvalue" not in text and "xyz.123" not in text


@pytest.mark.parametrize(("headers", "expected"), [
    ({"retry-after-ms": "1500"}, 1.5),
    ({"retry-after": "2"}, 2.0),
    ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
    ({"retry-after": "soon"}, None),
    ({}, None),
])
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


@pytest.mark.parametrize("name", PROVIDERS)
async def test_error_in_the_middle_of_a_stream_is_mapped(sim: SimServer, name: str) -> None:
    got: list[str] = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in provider(sim, name).stream(
                request(name, "go [sim:tokens=20] [sim:stream_error_after=2]"), timeout=10):
            got.append(chunk.text)
    assert len(got) == 2
    assert caught.value.error_type == "server_error" and caught.value.status_code is None
    assert caught.value.retryable
