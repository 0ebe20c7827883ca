"""A real traffic stack for the gateway/SDK tests: a SQLite registry, the provider simulator and the gateway,
each on a free loopback port, with the official clients' ``*_BASE_URL`` pointing at the simulator.

Each stack gets its own :class:`Metrics` so tests read exact counts.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.segments import SegmentFile
from canaryflow.gateway.server import build_gateway
from canaryflow.metrics.instruments import Metrics
from canaryflow.providers.factory import clear_cache
from canaryflow.registry import Registry
from canaryflow.serving.client import Client
from canaryflow.serving.traffic import TrafficPlane
from canaryflow.sim.engine import Simulator
from canaryflow.sim.server import SimServer, ThreadedServer

SEGMENTS = SegmentFile.model_validate({"segments": [
    {"name": "internal", "rules": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}]},
    {"name": "beta", "rules": [{"attribute": "beta", "op": "equals", "values": [True]}]},
]})


def spec(key: str = "support-bot", *, provider: str = "openai", model: str = "gpt-4o-mini",
         system: str = "You are the support assistant for {{product}}.", **extra: Any) -> ConfigSpec:
    """A config spec for tests."""
    body: dict[str, Any] = {"key": key, "provider": provider, "model": model,
                            "messages": [{"role": "system", "content": system}],
                            "parameters": {"temperature": 0.2, "max_tokens": 200}}
    body.update(extra)
    return ConfigSpec.model_validate(body)


@dataclass
class Stack:
    """What a test talks to."""

    registry: Registry
    sim: SimServer
    gateway: ThreadedServer
    plane: TrafficPlane
    metrics: Metrics

    @property
    def url(self) -> str:
        """The gateway's base URL."""
        return self.gateway.url

    @property
    def simulator(self) -> Simulator:
        """The simulator's engine (profiles, counters)."""
        return self.sim.simulator

    def count(self, name: str, **labels: str) -> float:
        """Sum of the samples ``name`` with these labels in the gateway's metrics."""
        return self.metrics.value(name, labels)


@contextlib.contextmanager
def sim_env(sim: SimServer) -> Iterator[None]:
    """Point the official clients at the simulator (restores the environment afterwards).

    Cached provider clients are dropped on both sides: their connections belong to an event loop that may be
    gone, and a later simulator may get the same port.
    """
    clear_cache()
    wanted = {"OPENAI_BASE_URL": sim.openai_base_url, "ANTHROPIC_BASE_URL": sim.anthropic_base_url,
              "OPENAI_API_KEY": "sk-test-openai", "ANTHROPIC_API_KEY": "sk-ant-test"}
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        clear_cache()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def running_stack(tmp: Path, *, configs: list[ConfigSpec] | None = None, seed: int = 1,
                  **gateway_options: Any) -> Iterator[Stack]:
    """Registry with ``configs`` pushed (first version stable) and the segments, simulator, gateway."""
    registry = Registry(f"sqlite:///{tmp / 'registry.db'}")
    registry.push_segments(SEGMENTS, by="test")
    for s in configs if configs is not None else [spec()]:
        registry.push_config(s, author="test")
    sim = SimServer(Simulator(seed=seed, latency_scale=0.0), admin=True)
    sim.start()
    metrics = Metrics()
    gateway_options.setdefault("traffic_rate", 1.0)
    try:
        with sim_env(sim):
            client = Client(registry, refresh_interval=0.05)
            app, plane = build_gateway(client=client, metrics=metrics, **gateway_options)
            client.warm()  # as the gateway command does: every served version's series exist at 0
            gateway = ThreadedServer(app)
            gateway.start()
            try:
                yield Stack(registry, sim, gateway, plane, metrics)
            finally:
                gateway.stop()
    finally:
        sim.stop()
        registry.close()


__all__ = ["SEGMENTS", "Stack", "running_stack", "sim_env", "spec"]


def asking(prompt: Callable[[int], str], attributes: Callable[[int], dict[str, str]] | None = None
           ) -> Callable[[Stack, str, threading.Event], None]:
    """Traffic for a rollout test: users ``user-1``, ``user-2``, … each sending ``prompt(n)`` (with the
    context ``attributes(n)``, if given) through the gateway with the official client, one after another as
    fast as it answers, until ``stop``; error answers (a candidate's injected failures) are part of the
    traffic, not a stop."""
    def traffic(stack: Stack, key: str, stop: threading.Event) -> None:
        client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="sk-app", max_retries=0, timeout=10)
        n = 0
        while not stop.is_set():
            n += 1
            headers = {"X-Canaryflow-User": f"user-{n}"}
            if attributes is not None:
                headers.update({f"X-Canaryflow-Attr-{k}": v for k, v in attributes(n).items()})
            with contextlib.suppress(openai.APIError):
                client.chat.completions.create(
                    model=key, messages=[{"role": "user", "content": prompt(n)}], extra_headers=headers)
    return traffic

