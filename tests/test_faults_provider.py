"""Provider outage: the simulator switched (through its admin endpoint) to 100 % errors, or to hanging.
Every user request through the gateway is answered by the fallback chain or refused with a clean 502/504
within the configured timeout; and a rollout whose candidate runs on the failed provider is rolled back by
its error-rate gate, measured by the real analysis activity on real Prometheus."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.analysis import analyze_stage
from canaryflow.domain.rollout_status import RolloutStatus
from canaryflow.temporal import ensure_search_attributes, workflow_id
from tests.servers import Prometheus
from tests.traffic_stack import Stack, running_stack, spec
from worker import build_worker

TEST_SERVER = str(Path(".venv/bin/temporal-test-server").resolve())
TIMEOUT = 1.0  # the gateway's seconds per provider attempt
HANG = 30.0  # how long the simulator hangs
CTX = {"variables": {"product": "Acme"}}
FALLBACK = [{"provider": "anthropic", "model": "claude-haiku-4-5"}]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    configs = [spec("chain-bot", fallback=FALLBACK), spec("solo-bot")]
    with running_stack(tmp_path, configs=configs, timeout=TIMEOUT) as s:
        yield s


def set_profile(stack: Stack, model: str, **profile: Any) -> None:
    r = httpx.post(f"{stack.sim.url}/admin/profiles", json={"model": model, "profile": profile})
    assert r.status_code == 200, r.text


async def burst(stack: Stack, config: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=stack.url, timeout=HANG * 2) as http:
        return await asyncio.gather(*(http.post("/v1/chat/completions", json={
            "model": config, "messages": [{"role": "user", "content": f"q{i}"}],
            "canaryflow": {**CTX, "user": f"u-{i}"}}) for i in range(n)))


def clean_refusal(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"] and "Traceback" not in r.text
    assert err["type"] in ("upstream_error", "timeout")


async def test_errors_everywhere_fallback_or_clean_502(stack: Stack) -> None:
    set_profile(stack, "gpt-4o-mini", error_rate=1.0)
    chained = await burst(stack, "chain-bot", 40)
    assert all(r.status_code == 200 for r in chained), [r.text for r in chained if r.status_code != 200][:2]
    assert all(r.headers["x-canaryflow-fallback"] == "true" for r in chained)
    assert all(r.json()["choices"][0]["message"]["content"] for r in chained)
    for r in await burst(stack, "solo-bot", 20):
        clean_refusal(r, 502)
    set_profile(stack, "claude-haiku-4-5", error_rate=1.0)  # the whole chain down
    for r in await burst(stack, "chain-bot", 10):
        clean_refusal(r, 502)
    assert stack.count("canaryflow_requests_total", config="chain-bot") == 50
    assert stack.count("canaryflow_requests_total", config="solo-bot") == 20


async def test_a_hanging_provider_is_cut_at_the_timeout(stack: Stack) -> None:
    set_profile(stack, "gpt-4o-mini", timeout_rate=1.0, hang_s=HANG)
    started = time.monotonic()
    solo, chained = await asyncio.gather(burst(stack, "solo-bot", 10), burst(stack, "chain-bot", 10))
    elapsed = time.monotonic() - started
    for r in solo:
        clean_refusal(r, 504)
    assert all(r.status_code == 200 and r.headers["x-canaryflow-fallback"] == "true" for r in chained)
    assert elapsed < HANG, "the gateway waited for the hanging provider instead of its own timeout"


@pytest.mark.temporal
@pytest.mark.prometheus
async def test_a_candidate_on_the_failed_provider_is_rolled_back(
        tmp_path: Path, prometheus: Prometheus, monkeypatch: pytest.MonkeyPatch) -> None:
    key = f"cand-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("CANARYFLOW_PROMETHEUS_URL", prometheus.url)
    with running_stack(tmp_path, configs=[spec(key)], timeout=TIMEOUT) as stack:
        stack.registry.push_config(spec(key, provider="anthropic", model="claude-sonnet-4-5"))
        set_profile(stack, "claude-sonnet-4-5", error_rate=1.0)  # the candidate's provider is down
        address = stack.url.removeprefix("http://")
        prometheus.add_target(address)
        prometheus.wait_scraped(address)
        plan = {"stages": [{"name": "canary-50", "kind": "percent", "percent": 50, "min_duration": "10m"},
                           {"name": "full", "kind": "full"}],
                "gates": [{"metric": "error_rate", "margin": 0.02}], "analysis_interval": "3s"}
        env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=TEST_SERVER,
                                                            data_converter=pydantic_data_converter)
        stop = asyncio.Event()

        async def traffic() -> None:
            async with httpx.AsyncClient(base_url=stack.url, timeout=10) as http:
                n = 0
                while not stop.is_set():
                    await asyncio.gather(*(http.post("/v1/chat/completions", json={
                        "model": key, "messages": [{"role": "user", "content": "hi"}],
                        "canaryflow": {**CTX, "user": f"u-{n + i}"}}) for i in range(10)))
                    n += 10
                    await asyncio.sleep(0.1)

        try:
            await ensure_search_attributes(env.client)
            queue = f"tq-{uuid.uuid4().hex[:8]}"
            async with build_worker(env.client, stack.registry, task_queue=queue, activities=[analyze_stage]):
                loader = asyncio.create_task(traffic())
                with env.auto_time_skipping_disabled():  # real time: Prometheus measures real traffic
                    handle = await env.client.start_workflow(
                        "RolloutWorkflow", {"config_key": key, "candidate_version": 2, "plan": plan,
                                            "requested_by": "t"},
                        id=workflow_id(key), task_queue=queue, result_type=RolloutStatus)
                    with pytest.raises(WorkflowFailureError) as failed:
                        await asyncio.wait_for(handle.result(), 120)
                stop.set()
                await loader
                status = await handle.query("status", result_type=RolloutStatus)
        finally:
            stop.set()
            await env.shutdown()
        assert status.state == "rolled_back" and status.stage == "canary-50"
        assert "gate failed" in str(failed.value.cause) and "error_rate" in str(failed.value.cause)
        state = stack.registry.serving_state(key)
        assert state.stable_version == 1 and state.exposure.stage_kind == "none"
        candidate_errors = stack.count("canaryflow_requests_total", config=key, version="2", outcome="error")
        assert candidate_errors > 0
