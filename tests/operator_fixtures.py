"""Live traffic for the operator's views (dashboard, compare, feedback): the real gateway and provider
simulator (in-process, free ports) serving a few dozen requests that the session's Prometheus scrapes.

Config ``dash-<hex>`` (unique; each test module feeds its own, so rates are fresh when it queries): v1 stable;
v2 candidate whose prompt makes the simulator fail 80 % of its calls (so some requests fall back to Anthropic,
some fail outright) and cut every answer at max_tokens. Phase 1 mirrors v2 in shadow; phase 2 exposes v2 to
the ``beta`` segment; each phase goes on until Prometheus sees every counter it must show rise. Every answer
gets feedback, every fourth request streams. The simulator is seeded and requests are sequential.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from canaryflow.domain.serving import Exposure
from tests.servers import Prometheus
from tests.traffic_stack import Stack, running_stack, spec

BAD_PROMPT = "You are the NEW assistant for {{product}}. [sim:error_rate=0.8] [sim:finish=length]"


@dataclass
class Fed:
    """A config with live traffic scraped by the session's Prometheus."""

    key: str
    stack: Stack
    prometheus: Prometheus


def _ask(http: httpx.Client, key: str, i: int, attributes: dict[str, object], *,
         stream: bool = False) -> None:
    body = {"model": key, "stream": stream,
            "messages": [{"role": "user", "content": f"Question {i}: why does my invoice show two charges?"}],
            "canaryflow": {"user": f"user-{i}", "attributes": attributes, "variables": {"product": "Acme"}}}
    if stream:
        body["stream_options"] = {"include_usage": True}
        with http.stream("POST", "/v1/chat/completions", json=body) as r:
            r.read()
            request_id = r.headers.get("x-canaryflow-request-id")
            ok = r.status_code == 200
    else:
        r = http.post("/v1/chat/completions", json=body)
        request_id, ok = r.headers.get("x-canaryflow-request-id"), r.status_code == 200
    if ok and request_id:
        sentiment = "negative" if i % 3 == 0 else "positive"
        http.post("/v1/feedback", json={"request_id": request_id, "sentiment": sentiment,
                                        "comment": "too long" if sentiment == "negative" else None})


def _all_rising(prometheus: Prometheus, selectors: list[str]) -> bool:
    """Whether Prometheus sees each of these counters increase (a series' first sample does not count)."""
    def rising(sel: str) -> bool:
        return any(float(str(r["value"][1])) > 0  # type: ignore[index]
                   for r in prometheus.query(f"sum(increase({sel}[5m]))"))
    return all(rising(sel) for sel in selectors)


def _wait_for(prometheus: Prometheus, promql: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if prometheus.query(promql):
            return
        time.sleep(0.5)
    raise TimeoutError(f"no data for {promql}")


@pytest.fixture(scope="module")
def fed(prometheus: Prometheus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fed]:
    key = f"dash-{uuid.uuid4().hex[:8]}"
    tmp: Path = tmp_path_factory.mktemp("operator")
    with running_stack(tmp, configs=[spec(key)]) as stack:
        stack.registry.push_config(spec(key, system=BAD_PROMPT,
                                        fallback=[{"provider": "anthropic", "model": "claude-haiku-4-5"}]))
        address = stack.url.removeprefix("http://")
        prometheus.add_target(address)
        prometheus.wait_scraped(address)
        regular: dict[str, object] = {"email": "someone@example.com"}
        beta: dict[str, object] = {"email": "tester@example.com", "beta": True}
        with httpx.Client(base_url=stack.url, timeout=30) as http:
            shadow = Exposure(candidate_version=2, stage="shadow", stage_kind="shadow", shadow_fraction=1.0)
            stack.registry.apply_exposure(key, shadow, by="test", reason="dashboard feed", source="test")
            time.sleep(0.3)  # the client's serving cache refreshes every 50 ms
            phase1 = [f'canaryflow_shadow_agreement_count{{config="{key}"}}',
                      f'canaryflow_requests_total{{config="{key}",variation="shadow"}}']
            for i in range(100):
                _ask(http, key, i, regular, stream=i % 4 == 0)
                time.sleep(0.25)
                if i >= 15 and _all_rising(prometheus, phase1):
                    break
            beta_stage = Exposure(candidate_version=2, stage="beta", stage_kind="segments", segments=["beta"])
            stack.registry.apply_exposure(key, beta_stage, by="test", reason="dashboard feed", source="test")
            time.sleep(0.3)
            phase2 = [f'canaryflow_requests_total{{config="{key}",variation="candidate",outcome="error"}}',
                      f'canaryflow_fallbacks_total{{config="{key}"}}',
                      f'canaryflow_feedback_total{{config="{key}",variation="candidate"}}',
                      f'gen_ai_client_operation_time_to_first_chunk_seconds_count{{config="{key}"}}']
            for i in range(200, 300):
                _ask(http, key, i, regular)
                _ask(http, key, 1000 + i, beta, stream=i % 4 == 1)
                time.sleep(0.25)
                if i >= 225 and _all_rising(prometheus, phase2):
                    break
        if stack.plane.traffic_log is not None:
            stack.plane.traffic_log.flush()
        _wait_for(prometheus, f'canaryflow_requests_total{{config="{key}",variation="candidate"}}')
        _wait_for(prometheus, f'canaryflow_shadow_agreement_count{{config="{key}"}}')
        yield Fed(key, stack, prometheus)
