"""FallbackRunner over the real adapters and the simulator: retry, fallback chain, circuit breaker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from canaryflow.domain.resolution import Resolution
from canaryflow.errors import AllProvidersFailed, ProviderError
from canaryflow.providers import Provider, get_provider
from canaryflow.providers.breaker import CircuitBreaker
from canaryflow.providers.fallback import CIRCUIT_OPEN, FallbackRunner
from canaryflow.sim import SimServer, Simulator
from canaryflow.sim.profiles import ModelProfile, default_profiles
from tests.servers import free_port

QUESTION = [{"role": "user", "content": "What is the capital of Japan?"}]
HAIKU = {"provider": "anthropic", "model": "claude-haiku-4-5"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    profiles = {**default_profiles(),
                "bad-500": ModelProfile(error_rate=1, latency_median_ms=0),
                "bad-429": ModelProfile(rate_limit_rate=1, retry_after_s=0.25),
                "slow-429": ModelProfile(rate_limit_rate=1, retry_after_s=30),
                "bad-400": ModelProfile(status=400),
                "flappy": ModelProfile(error_rate=1)}
    server = SimServer(Simulator(seed=1, profiles=profiles, latency_scale=0), port=free_port())
    server.start()
    yield server
    server.stop()


def factory(sim: SimServer, dead_openai: bool = False) -> Callable[[str], Provider]:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    urls = {"openai": dead if dead_openai else sim.openai_base_url, "anthropic": sim.anthropic_base_url}
    return lambda name: get_provider(name, base_url=urls[name], api_key="sk-test")


def resolution(model: str, fallback: list[dict[str, object]], provider: str = "openai") -> Resolution:
    return Resolution("support-bot", 2, "candidate", "test", provider, model,
                      ({"role": "system", "content": "[sim:quality=1]"},), {"max_tokens": 50},
                      tuple(fallback), "none", 1)


async def test_primary_serves_without_fallback(sim: SimServer) -> None:
    served = await FallbackRunner(provider_factory=factory(sim)).complete(resolution("gpt-4o-mini", [HAIKU]),
                                                                          QUESTION)
    assert served.result.text == "Tokyo" and served.result.provider == "openai"
    assert served.fallback_index is None and served.reason is None
    assert [a.error_type for a in served.attempts] == [None]


async def test_server_error_retries_once_then_falls_back(sim: SimServer) -> None:
    sleeps = Sleeps()
    runner = FallbackRunner(provider_factory=factory(sim), sleep=sleeps, backoff_s=0.05)
    result, index, attempts = await runner.complete(resolution("bad-500", [HAIKU]), QUESTION)
    assert (result.provider, result.model, result.text) == ("anthropic", "claude-haiku-4-5", "Tokyo")
    assert result.output_tokens > 0 and result.input_tokens > 0
    assert index == 0
    assert [(a.model, a.error_type, a.status_code) for a in attempts] == [
        ("bad-500", "server_error", 500), ("bad-500", "server_error", 500), ("claude-haiku-4-5", None, None)]
    assert sleeps.calls == [0.05]


async def test_connection_refused_falls_back(sim: SimServer) -> None:
    runner = FallbackRunner(provider_factory=factory(sim, dead_openai=True), sleep=Sleeps())
    served = await runner.complete(resolution("gpt-4o-mini", [HAIKU]), QUESTION)
    assert served.fallback_index == 0 and served.reason == "connection"
    assert served.result.provider == "anthropic"


async def test_rate_limit_honours_retry_after_up_to_a_cap(sim: SimServer) -> None:
    sleeps = Sleeps()
    runner = FallbackRunner(provider_factory=factory(sim), sleep=sleeps, max_retry_after=2.0)
    served = await runner.complete(resolution("bad-429", [HAIKU]), QUESTION)
    assert sleeps.calls == [0.25] and served.reason == "rate_limit" and len(served.attempts) == 3
    sleeps.calls.clear()
    served = await runner.complete(resolution("slow-429", [HAIKU]), QUESTION)
    assert sleeps.calls == [] and len(served.attempts) == 2  # retry-after 30 s > cap: straight to fallback


async def test_never_falls_back_on_bad_request(sim: SimServer) -> None:
    runner = FallbackRunner(provider_factory=factory(sim), sleep=Sleeps())
    with pytest.raises(ProviderError) as caught:
        await runner.complete(resolution("bad-400", [HAIKU]), QUESTION)
    assert caught.value.error_type == "bad_request" and caught.value.status_code == 400
    assert not isinstance(caught.value, AllProvidersFailed)


async def test_every_target_failing_raises_all_providers_failed(sim: SimServer) -> None:
    runner = FallbackRunner(provider_factory=factory(sim), sleep=Sleeps(), retries=0)
    with pytest.raises(AllProvidersFailed) as caught:
        await runner.complete(resolution("bad-500", [{"provider": "anthropic", "model": "bad-500"}]),
                              QUESTION)
    assert caught.value.error_type == "server_error"
    assert isinstance(caught.value.__cause__, ProviderError)
    assert "openai bad-500: server_error (500)" in str(caught.value)


async def test_stream_falls_back_before_the_first_chunk(sim: SimServer) -> None:
    runner = FallbackRunner(provider_factory=factory(sim), sleep=Sleeps())
    served = await runner.stream(resolution("bad-500", [HAIKU]), QUESTION)
    chunks = [chunk async for chunk in served.chunks]
    assert served.fallback_index == 0 and served.reason == "server_error"
    assert "".join(c.text for c in chunks) == "Tokyo"
    assert chunks[-1].usage is not None and chunks[-1].usage.provider == "anthropic"
    assert chunks[-1].finish_reason == "stop"


SCOPE = ("support-bot", "candidate")  # the circuits of resolution(): its config and variation


async def test_circuit_opens_skips_the_primary_then_half_opens(sim: SimServer) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=0.5, window_s=60, min_calls=3, cooldown_s=30, clock=clock)
    runner = FallbackRunner(provider_factory=factory(sim), breaker=breaker, retries=0, sleep=Sleeps())
    res = resolution("flappy", [HAIKU])
    for _ in range(3):
        served = await runner.complete(res, QUESTION)
        assert served.reason == "server_error"
    assert breaker.state("openai", "flappy", SCOPE) == "open"
    served = await runner.complete(res, QUESTION)
    assert [a.error_type for a in served.attempts] == [CIRCUIT_OPEN, None]
    assert served.reason == CIRCUIT_OPEN and served.fallback_index == 0

    clock.now += 30  # cooldown over: one probe goes to the primary, fails, the circuit opens again
    assert breaker.state("openai", "flappy", SCOPE) == "half_open"
    served = await runner.complete(res, QUESTION)
    assert [a.error_type for a in served.attempts] == ["server_error", None]
    assert breaker.state("openai", "flappy", SCOPE) == "open"

    sim.simulator.update_profile("flappy", {"error_rate": 0.0})  # the provider recovers
    clock.now += 30
    served = await runner.complete(res, QUESTION)
    assert served.fallback_index is None and breaker.state("openai", "flappy", SCOPE) == "closed"


async def test_a_candidates_failures_open_only_its_own_circuit(sim: SimServer) -> None:
    """Circuits are per config, variation, provider and model: the candidate's 5xx open its circuit to a
    model; stable's calls to the same provider/model keep going to it."""
    breaker = CircuitBreaker(failure_threshold=0.5, window_s=60, min_calls=3, cooldown_s=30,
                             clock=FakeClock())
    runner = FallbackRunner(provider_factory=factory(sim), breaker=breaker, retries=0, sleep=Sleeps())
    cand = resolution("bad-500", [HAIKU])
    for _ in range(3):
        await runner.complete(cand, QUESTION)
    assert breaker.state("openai", "bad-500", SCOPE) == "open"
    assert breaker.state("openai", "bad-500", ("support-bot", "stable")) == "closed"
    assert breaker.state("openai", "bad-500", ("other-bot", "candidate")) == "closed"
    stable = replace(cand, variation="stable")
    served = await runner.complete(stable, QUESTION)
    assert served.attempts[0].error_type == "server_error"  # tried, not skipped by the candidate's circuit
    served = await runner.complete(cand, QUESTION)
    assert served.attempts[0].error_type == CIRCUIT_OPEN


def test_breaker_window_threshold_and_single_probe() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=0.5, window_s=10, min_calls=4, cooldown_s=5, clock=clock)
    for ok in (True, False, True):
        breaker.record("p", "m", ok)
    assert breaker.state("p", "m") == "closed"  # 3 calls < min_calls
    clock.now += 11  # the window forgets them
    for ok in (False, True, True, True):
        breaker.record("p", "m", ok)
    assert breaker.state("p", "m") == "closed"  # 1/4 < 0.5
    breaker.record("p", "m", False)
    breaker.record("p", "m", False)
    assert breaker.state("p", "m") == "open"  # 3/6 >= 0.5
    assert not breaker.allow("p", "m")
    clock.now += 5
    assert breaker.allow("p", "m")  # the probe
    assert not breaker.allow("p", "m")  # only one at a time
    breaker.record("p", "m", True)
    assert breaker.state("p", "m") == "closed" and breaker.allow("p", "m")
    assert breaker.state("other", "m") == "closed"


async def test_stream_failing_after_the_first_chunk_does_not_fall_back(sim: SimServer) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(min_calls=1, failure_threshold=1.0, cooldown_s=30, clock=clock)
    runner = FallbackRunner(provider_factory=factory(sim), breaker=breaker, sleep=Sleeps())
    res = resolution("gpt-4o", [HAIKU])
    caller = [{"role": "user", "content": "story [sim:tokens=30] [sim:stream_error_after=3]"}]
    served = await runner.stream(res, caller)
    assert served.fallback_index is None
    texts: list[str] = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in served.chunks:
            texts.append(chunk.text)
    assert len(texts) == 3 and caught.value.error_type == "server_error"
    assert breaker.state("openai", "gpt-4o", SCOPE) == "open"  # the failure still counts against the circuit


async def test_a_scoped_marker_breaks_only_the_primary(sim: SimServer) -> None:
    runner = FallbackRunner(provider_factory=factory(sim), sleep=Sleeps())
    served = await runner.complete(resolution("gpt-4.1", [HAIKU]),
                                   [{"role": "user", "content": "[sim@gpt-4.1:error_rate=1] What is 2 + 2?"}])
    assert served.reason == "server_error" and served.result.text == "4"
