"""N requests through the gateway → exactly N counted, errors and streams included; Prometheus sees them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import anthropic
import openai
import pytest

from canaryflow.domain.serving import Exposure
from tests.servers import Prometheus
from tests.traffic_stack import Stack, running_stack, spec

Q = [{"role": "user", "content": "What is the capital of Japan?"}]
CTX = {"canaryflow": {"variables": {"product": "Acme"}}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    configs = [spec("metrics-bot"), spec("metrics-broken", system="[sim:status=500] {{product}}")]
    with running_stack(tmp_path_factory.mktemp("metrics"), configs=configs) as s:
        s.registry.push_config(spec("metrics-bot", system="Candidate prompt for {{product}}."))
        half = Exposure(candidate_version=2, stage="canary", stage_kind="percent", percent=50, salt="s")
        s.registry.apply_exposure("metrics-bot", half, by="test", reason="test", source="cli")
        yield s


def _send_mix(stack: Stack) -> dict[tuple[str, str], int]:
    """Plain and streamed calls on both APIs; returns how many were served per (version, variation)."""
    oai = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="x", max_retries=0)
    ant = anthropic.Anthropic(base_url=stack.url, api_key="x", max_retries=0)
    sent: dict[tuple[str, str], int] = {}

    def seen(headers: object) -> None:
        h = headers  # httpx.Headers
        key = (h["x-canaryflow-version"], h["x-canaryflow-variation"])  # type: ignore[index]
        sent[key] = sent.get(key, 0) + 1

    for i in range(6):
        body = {"canaryflow": {"user": f"user-{i}", "variables": {"product": "Acme"}}}
        raw = oai.chat.completions.with_raw_response.create(model="metrics-bot", messages=Q, extra_body=body)
        seen(raw.headers)
        with oai.chat.completions.with_streaming_response.create(
                model="metrics-bot", messages=Q, stream=True, extra_body=body) as sraw:
            list(sraw.parse())
            seen(sraw.headers)
        araw = ant.messages.with_raw_response.create(model="metrics-bot", max_tokens=50, messages=Q,  # type: ignore[arg-type]
                                                     extra_body=body)
        seen(araw.headers)
        with ant.messages.stream(model="metrics-bot", max_tokens=50, messages=Q, extra_body=body) as st:  # type: ignore[arg-type]
            st.get_final_message()
            seen(st.response.headers)
    return sent


def test_every_request_is_counted_exactly_once(stack: Stack, prometheus: Prometheus) -> None:
    addr = f"127.0.0.1:{stack.gateway.port}"
    prometheus.add_target(addr)
    sent = _send_mix(stack)
    assert sum(sent.values()) == 24 and len(sent) == 2  # stable and candidate both served
    oai = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="x", max_retries=0)
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            oai.chat.completions.create(model="metrics-broken", messages=Q, extra_body=CTX)
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="metrics-broken", messages=Q, extra_body=CTX, stream=True)

    for (version, variation), n in sent.items():
        assert stack.count("canaryflow_requests_total", config="metrics-bot", version=version,
                           variation=variation) == n
        assert stack.count("gen_ai_client_operation_duration_seconds_count", config="metrics-bot",
                           version=version, variation=variation) == n
        assert stack.count("gen_ai_client_token_usage_count", config="metrics-bot", version=version,
                           variation=variation, gen_ai_token_type="output") == n
    assert stack.count("canaryflow_requests_total", config="metrics-bot", outcome="success",
                       error_type="none", finish_reason="stop") == 24
    ttfc = "gen_ai_client_operation_time_to_first_chunk_seconds_count"
    assert stack.count(ttfc, config="metrics-bot") == 12
    assert stack.count("canaryflow_cost_usd_total", config="metrics-bot") > 0
    assert stack.count("canaryflow_requests_total", config="metrics-broken") == 4
    assert stack.count("canaryflow_requests_total", config="metrics-broken", outcome="error",
                       error_type="server_error", finish_reason="error", served_by="none") == 4

    prometheus.wait_scraped(addr)
    want = {(v, var): float(n) for (v, var), n in sent.items()}
    want[("2", "shadow")] = 0.0  # the candidate's series exist at 0 for every variation it may serve as
    deadline = time.monotonic() + 30
    got: dict[tuple[str, str], float] = {}
    while time.monotonic() < deadline:
        rows = prometheus.query(f'sum by (version, variation) '
                                f'(canaryflow_requests_total{{config="metrics-bot",instance="{addr}"}})')
        got = {(str(r["metric"]["version"]), str(r["metric"]["variation"])): float(r["value"][1])  # type: ignore[index]
               for r in rows}
        if got == want:
            break
        time.sleep(0.3)
    assert got == want
    errors = prometheus.query(f'sum(canaryflow_requests_total{{config="metrics-broken",outcome="error",'
                              f'instance="{addr}"}})')
    assert float(errors[0]["value"][1]) == 4.0  # type: ignore[index]
