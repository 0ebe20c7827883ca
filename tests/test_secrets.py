"""Secrets never leak: provider API keys and gateway client keys with distinctive values go through the real
gateway (official clients, simulator, a provider that echoes the key back in its error), a rollout runs on
Temporal's time-skipping server against the same registry, and then the workflow history, every captured
log line and output, the error messages returned, and the registry database file (traffic log, audit) are
scanned for them."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from canaryflow.domain.rollout_status import RolloutStatus
from canaryflow.gateway.auth import KeyStore, protect
from canaryflow.sim.server import ThreadedServer
from canaryflow.temporal import ensure_search_attributes, workflow_id
from tests.rollout_fixtures import ScriptedAnalysis, drive
from tests.traffic_stack import running_stack, spec
from worker import build_worker

pytestmark = pytest.mark.temporal
TEST_SERVER = str(Path(".venv/bin/temporal-test-server").resolve())
OPENAI_SECRET = f"sk-proj-OPENAISECRET{uuid.uuid4().hex}"
ANTHROPIC_SECRET = f"sk-ant-ANTHROPICSECRET{uuid.uuid4().hex}"
WRONG_CLIENT_KEY = f"cfk_0123456789ab_WRONGCLIENTKEY{uuid.uuid4().hex}"


def echo_provider() -> Starlette:
    """A provider that refuses every key and echoes it back (as some real providers partly do)."""

    async def refuse(request: Request) -> JSONResponse:
        key = request.headers.get("x-api-key") or request.headers.get("authorization", "")
        return JSONResponse({"type": "error", "error": {"type": "authentication_error",
                                                        "message": f"invalid x-api-key {key} (key={key})"}},
                            status_code=401)

    return Starlette(routes=[Route("/v1/messages", refuse, methods=["POST"])])


@pytest.fixture
def secret_env() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")}
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


async def test_no_secret_in_histories_logs_traffic_log_or_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], secret_env: None
) -> None:
    caplog.set_level(logging.DEBUG)
    key = f"sec-{uuid.uuid4().hex[:6]}"
    configs = [spec(key), spec("echo-bot", provider="anthropic", model="claude-haiku-4-5")]
    seen: list[str] = []  # every response body and error message the callers got
    store = KeyStore(tmp_path / "keys.json")
    _, client_key = store.add("app")
    echo = ThreadedServer(echo_provider())
    echo.start()
    with running_stack(tmp_path, configs=configs, traffic_rate=1.0) as stack:
        os.environ.update({"OPENAI_API_KEY": OPENAI_SECRET, "ANTHROPIC_API_KEY": ANTHROPIC_SECRET,
                           "ANTHROPIC_BASE_URL": echo.url})
        stack.registry.push_config(spec(key, system="You are the NEW assistant for {{product}}."))
        gateway = ThreadedServer(protect(stack.gateway.app, "127.0.0.1", store))
        gateway.start()
        try:
            extra = {"canaryflow": {"user": "u-1", "attributes": {"email": "a@acme.com"},
                                    "variables": {"product": "Acme"}}}
            oai = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=client_key, max_retries=0)
            for n in range(5):
                done = oai.chat.completions.create(model=key, extra_body=extra,
                                                   messages=[{"role": "user", "content": f"question {n}"}])
                seen.append(done.model_dump_json())
            with pytest.raises(openai.APIStatusError) as failed:  # the provider echoes its key back
                oai.chat.completions.create(model="echo-bot", extra_body=extra,
                                            messages=[{"role": "user", "content": "hi"}])
            seen.append(str(failed.value) + failed.value.response.text)
            ant = anthropic.Anthropic(base_url=gateway.url, api_key=client_key, max_retries=0)
            with pytest.raises(anthropic.APIStatusError) as failed_ant:
                ant.messages.create(model="echo-bot", max_tokens=20, extra_body=extra,
                                    messages=[{"role": "user", "content": "hi"}])
            seen.append(str(failed_ant.value) + failed_ant.value.response.text)
            refused = httpx.post(f"{gateway.url}/v1/chat/completions",
                                 headers={"authorization": f"Bearer {WRONG_CLIENT_KEY}"},
                                 json={"model": key, "messages": [{"role": "user", "content": "x"}]})
            assert refused.status_code == 401
            seen.append(refused.text)
            seen.append(httpx.get(f"{gateway.url}/healthz").text)
            seen.append(httpx.get(f"{gateway.url}/metrics").text)
        finally:
            gateway.stop()
            echo.stop()
        assert stack.plane.traffic_log is not None
        stack.plane.traffic_log.flush()
        history = await run_rollout(stack.registry, key)
        with contextlib.closing(sqlite3.connect(tmp_path / "registry.db")) as db:
            dump = "\n".join(db.iterdump())  # every table: traffic log, feedback, audit, versions
    out, err = capfd.readouterr()
    haystacks = {"workflow history": history, "captured logs": caplog.text, "stdout": out, "stderr": err,
                 "responses and errors": "\n".join(seen)}
    secrets = {"OPENAI_API_KEY": OPENAI_SECRET, "ANTHROPIC_API_KEY": ANTHROPIC_SECRET,
               "gateway client key": client_key, "wrong client key": WRONG_CLIENT_KEY}
    for what, secret in secrets.items():
        core = secret[-28:-12]  # inside the random tail: catches partial echoes too
        for where, text in haystacks.items():
            assert core not in text, f"{what} leaked into {where}"
        assert core not in dump, f"{what} leaked into the registry database (traffic log/audit)"
    assert "question 0" in dump, "the traffic log recorded nothing to scan"
    assert "apply_exposure" in history, "the history has no activities to scan"


async def run_rollout(registry: Any, key: str) -> str:
    """A rollout of v2 on the time-skipping server; returns its history as JSON."""
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=TEST_SERVER,
                                                        data_converter=pydantic_data_converter)
    try:
        await ensure_search_attributes(env.client)
        queue = f"tq-{uuid.uuid4().hex[:8]}"
        plan = {"stages": [{"name": "canary-5", "kind": "percent", "percent": 5, "min_duration": "5m"},
                           {"name": "full", "kind": "full"}],
                "gates": [{"metric": "error_rate", "margin": 0.01}], "analysis_interval": "1m"}
        async with build_worker(env.client, registry, task_queue=queue,
                                activities=[ScriptedAnalysis().analyze_stage]):
            handle = await env.client.start_workflow(
                "RolloutWorkflow", {"config_key": key, "candidate_version": 2, "plan": plan,
                                    "requested_by": "carol", "reason": "secrets scan"},
                id=workflow_id(key), task_queue=queue, result_type=RolloutStatus)

            async def never(_: RolloutStatus) -> bool:
                return False

            await drive(env, handle, never, step=120)
            status = await handle.result()
            assert status.state == "promoted"
            return (await handle.fetch_history()).to_json()
    finally:
        await env.shutdown()
