"""A real agent framework (pydantic-ai, from PyPI) through the gateway: a multi-turn, tool-using conversation
with a structured final output. The upstream plays the model's turns and records what the agent sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from canaryflow.gateway.server import build_gateway
from canaryflow.metrics.instruments import Metrics
from canaryflow.registry import Registry
from canaryflow.serving.client import Client
from canaryflow.sim.server import ThreadedServer
from tests.recording_upstream import Recorder, recording_upstream
from tests.traffic_stack import SEGMENTS, spec


class Report(BaseModel):
    city: str
    forecast: str


def _tool_call(name: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{call_id}",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "logprobs": None,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {"name": name, "arguments": json.dumps(args)},
                        }
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Recorder, Metrics]]:
    tmp: Path = tmp_path_factory.mktemp("agent")
    registry = Registry(f"sqlite:///{tmp / 'registry.db'}")
    registry.push_segments(SEGMENTS, by="test")
    registry.push_config(
        spec("weather-agent", system="You forecast the weather for {{product}} users."), author="t"
    )
    with recording_upstream() as (rec, _):
        metrics = Metrics()
        client = Client(registry, refresh_interval=0.05)
        app, _ = build_gateway(client=client, metrics=metrics, traffic_rate=0.0)
        server = ThreadedServer(app)
        server.start()
        try:
            yield server.url, rec, metrics
        finally:
            server.stop()
            client.close()


async def test_pydantic_ai_agent_uses_a_tool_and_returns_structured_output(
    served: tuple[str, Recorder, Metrics],
) -> None:
    url, rec, metrics = served
    rec.reset(
        answers=[
            _tool_call("get_forecast", {"city": "Paris"}, "call_1"),
            _tool_call("final_result", {"city": "Paris", "forecast": "sunny, 24°C"}, "call_2"),
        ]
    )
    oai = openai.AsyncOpenAI(
        base_url=f"{url}/v1",
        api_key="k",
        max_retries=0,
        default_headers={"X-Canaryflow-User": "u-7", "X-Canaryflow-Var-Product": "Acme"},
    )
    agent = Agent(
        OpenAIChatModel("weather-agent", provider=OpenAIProvider(openai_client=oai)),
        output_type=Report,
        instructions="Use the tools.",
    )
    looked_up: list[str] = []

    @agent.tool_plain
    def get_forecast(city: str) -> str:
        """The forecast for a city."""
        looked_up.append(city)
        return "sunny, 24°C"

    result = await agent.run("What's the weather in Paris?")
    assert result.output == Report(city="Paris", forecast="sunny, 24°C")
    assert looked_up == ["Paris"]
    first, second = (r.body for r in rec.received)
    assert first["model"] == second["model"] == "gpt-4o-mini"
    assert first["messages"][0] == {"role": "system", "content": "You forecast the weather for Acme users."}
    assert {t["function"]["name"] for t in first["tools"]} == {"get_forecast", "final_result"}
    tool_turn = second["messages"][-1]
    assert tool_turn["role"] == "tool" and tool_turn["tool_call_id"] == "call_1"
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "get_forecast"
    ok = metrics.value("canaryflow_tool_calls_total", {"config": "weather-agent", "result": "valid"})
    assert ok == 2
    assert (
        metrics.value("canaryflow_requests_total", {"config": "weather-agent", "finish_reason": "tool_calls"})
        == 2
    )


async def test_pydantic_ai_agent_against_the_simulator(tmp_path: Path) -> None:
    """The simulator calls the offered tool, then answers JSON matching the requested schema."""
    from pydantic_ai import NativeOutput

    from tests.traffic_stack import running_stack

    with running_stack(
        tmp_path, configs=[spec("weather-agent", system="You forecast for {{product}}.")]
    ) as s:
        oai = openai.AsyncOpenAI(
            base_url=f"{s.url}/v1",
            api_key="k",
            max_retries=0,
            default_headers={"X-Canaryflow-User": "u-8", "X-Canaryflow-Var-Product": "Acme"},
        )
        agent = Agent(
            OpenAIChatModel("weather-agent", provider=OpenAIProvider(openai_client=oai)),
            output_type=NativeOutput(Report),
        )
        looked_up: list[str] = []

        @agent.tool_plain
        def get_forecast(city: str) -> str:
            """The forecast for a city."""
            looked_up.append(city)
            return "sunny, 24°C"

        result = await agent.run("What's the weather in Paris?")
        assert isinstance(result.output, Report) and len(looked_up) == 1
        assert s.count("canaryflow_requests_total", config="weather-agent", outcome="success") == 2
        assert s.count("canaryflow_tool_calls_total", config="weather-agent", result="valid") == 1
