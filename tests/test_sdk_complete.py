"""``canaryflow.Client`` complete / acomplete / stream / astream / feedback against the simulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from canaryflow.errors import NotFound, ProviderError, ValidationFailed
from canaryflow.metrics.instruments import Metrics
from canaryflow.registry import Registry
from canaryflow.registry import traffic as tlog
from canaryflow.serving.client import Client
from canaryflow.sim.server import run_simulator
from tests.traffic_stack import SEGMENTS, sim_env, spec

Q = [{"role": "user", "content": "What is the capital of Italy?"}]
VARS = {"product": "Acme"}


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Metrics]]:
    tmp: Path = tmp_path_factory.mktemp("sdk")
    registry = Registry(f"sqlite:///{tmp / 'r.db'}")
    registry.push_segments(SEGMENTS, by="test")
    registry.push_config(spec("sdk-bot"))
    registry.push_config(spec("sdk-broken", system="[sim:status=500] {{product}}"))
    with run_simulator(seed=3) as sim, sim_env(sim):
        client = Client(registry, refresh_interval=0.05)
        metrics = Metrics()
        client.traffic(metrics=metrics, traffic_rate=1.0)
        yield client, metrics
        client.close()


def _count(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.value(name, labels)


def test_complete(sdk: tuple[Client, Metrics]) -> None:
    client, metrics = sdk
    before = _count(metrics, "canaryflow_requests_total", config="sdk-bot")
    done = client.complete("sdk-bot", Q, {"key": "u-1"}, VARS)
    assert done.text and done.version == 1 and done.variation == "stable"
    assert done.request_id.startswith("cf1_")
    assert done.provider == "openai" and done.model == "gpt-4o-mini" and not done.used_fallback
    assert done.input_tokens > 0 and done.output_tokens > 0 and done.cost_usd > 0
    assert _count(metrics, "canaryflow_requests_total", config="sdk-bot") == before + 1


def test_caller_max_tokens_is_capped_by_the_config(sdk: tuple[Client, Metrics]) -> None:
    client, _ = sdk
    res = client.traffic().plane.prepare("sdk-bot", variables=VARS, parameters={"max_tokens": 5000,
                                                                               "seed": 4})
    assert res.parameters["max_tokens"] == 200 and res.parameters["seed"] == 4
    assert res.parameters["temperature"] == 0.2
    lower = client.traffic().plane.prepare("sdk-bot", variables=VARS,
                                           parameters={"max_tokens": 10, "temperature": 1.5})
    assert lower.parameters["max_tokens"] == 10 and lower.parameters["temperature"] == 0.2


async def test_acomplete(sdk: tuple[Client, Metrics]) -> None:
    client, metrics = sdk
    before = _count(metrics, "canaryflow_requests_total", config="sdk-bot", outcome="success")
    done = await client.acomplete("sdk-bot", Q, {"key": "u-2"}, VARS)
    assert done.text and done.version == 1
    assert _count(metrics, "canaryflow_requests_total", config="sdk-bot", outcome="success") == before + 1


def test_stream(sdk: tuple[Client, Metrics]) -> None:
    client, metrics = sdk
    before = _count(metrics, "canaryflow_requests_total", config="sdk-bot")
    ttfc = _count(metrics, "gen_ai_client_operation_time_to_first_chunk_seconds_count", config="sdk-bot")
    stream = client.stream("sdk-bot", Q, {"key": "u-3"}, VARS)
    assert stream.version == 1 and stream.variation == "stable" and stream.completion is None
    text = "".join(stream)
    assert text and stream.completion is not None and stream.completion.text == text
    assert stream.completion.output_tokens > 0
    assert _count(metrics, "canaryflow_requests_total", config="sdk-bot") == before + 1
    assert _count(metrics, "gen_ai_client_operation_time_to_first_chunk_seconds_count",
                  config="sdk-bot") == ttfc + 1


async def test_astream(sdk: tuple[Client, Metrics]) -> None:
    client, metrics = sdk
    before = _count(metrics, "canaryflow_requests_total", config="sdk-bot")
    stream = await client.astream("sdk-bot", Q, {"key": "u-4"}, VARS)
    pieces = [piece async for piece in stream]
    assert len(pieces) > 1 and stream.completion is not None
    assert stream.completion.text == "".join(pieces)
    assert _count(metrics, "canaryflow_requests_total", config="sdk-bot") == before + 1


def test_feedback(sdk: tuple[Client, Metrics]) -> None:
    client, metrics = sdk
    done = client.complete("sdk-bot", Q, {"key": "u-5"}, VARS)
    client.feedback(done.request_id, "positive")
    client.feedback(done.request_id, "negative", comment="reach me at bob@example.com")
    assert _count(metrics, "canaryflow_feedback_total", config="sdk-bot", version="1", variation="stable",
                  sentiment="positive") >= 1
    stored = [f for f in tlog.feedback(client.registry, "sdk-bot") if f.request_id == done.request_id]
    assert [f.sentiment for f in stored] == ["negative"]  # the later feedback replaced the earlier one
    assert [f.comment for f in stored if f.comment] == ["reach me at [EMAIL]"]
    assert _count(metrics, "canaryflow_feedback_retracted_total", config="sdk-bot", sentiment="positive") >= 1
    with pytest.raises(NotFound):
        client.feedback("no-such-request", "positive")
    with pytest.raises(ValidationFailed, match="sentiment"):
        client.feedback(done.request_id, "great")


def test_provider_failure_raises_and_is_counted(sdk: tuple[Client, Metrics]) -> None:
    client, metrics = sdk
    with pytest.raises(ProviderError) as err:
        client.complete("sdk-broken", Q, {"key": "u-6"}, VARS)
    assert err.value.error_type == "server_error"
    with pytest.raises(ProviderError):
        client.stream("sdk-broken", Q, {"key": "u-6"}, VARS)
    assert _count(metrics, "canaryflow_requests_total", config="sdk-broken", outcome="error",
                  error_type="server_error") == 2
