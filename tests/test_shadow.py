"""Shadow stage through the gateway: stable serves, the candidate is mirrored in the background."""

from __future__ import annotations

import time
from collections.abc import Iterator

import openai
import pytest

from canaryflow.domain.serving import Exposure
from tests.traffic_stack import Stack, running_stack, spec

Q = [{"role": "user", "content": "What is the capital of Canada?"}]
CTX = {"canaryflow": {"user": "u-1", "variables": {"product": "Acme"}}}


def _shadow(stack: Stack, key: str, candidate: int, fraction: float = 1.0) -> None:
    exposure = Exposure(candidate_version=candidate, stage="shadow", stage_kind="shadow",
                        shadow_fraction=fraction)
    stack.registry.apply_exposure(key, exposure, by="test", reason="test", source="cli")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    configs = [spec("shadow-bot"), spec("slow-shadow"), spec("json-bot", system="[sim:json] {{product}}")]
    with running_stack(tmp_path_factory.mktemp("shadow"), configs=configs, shadow_concurrency=2,
                       shadow_queue=3) as s:
        s.registry.push_config(spec("shadow-bot", provider="anthropic", model="claude-haiku-4-5",
                                    system="Candidate: answer for {{product}} in one word."))
        s.registry.push_config(spec("slow-shadow", model="o3", system="Slow candidate for {{product}}."))
        s.registry.push_config(spec("json-bot", system="Plain text now for {{product}}."))
        s.simulator.update_profile("o3", {"timeout_rate": 1.0, "hang_s": 20.0})
        _shadow(s, "shadow-bot", 2)
        _shadow(s, "slow-shadow", 2)
        _shadow(s, "json-bot", 2)
        s.plane.resolver.refresh(force=True)  # type: ignore[attr-defined]
        yield s


@pytest.fixture
def oai(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key="x", max_retries=0)


def _wait_for(stack: Stack, name: str, want: float, **labels: str) -> float:
    deadline = time.monotonic() + 20
    got = stack.count(name, **labels)
    while got < want and time.monotonic() < deadline:
        time.sleep(0.05)
        got = stack.count(name, **labels)
    return got


def test_stable_serves_and_the_candidate_is_mirrored(stack: Stack, oai: openai.OpenAI) -> None:
    for _ in range(5):
        raw = oai.chat.completions.with_raw_response.create(model="shadow-bot", messages=Q, extra_body=CTX)
        assert raw.headers["x-canaryflow-version"] == "1"
        assert raw.headers["x-canaryflow-variation"] == "stable"
    assert _wait_for(stack, "canaryflow_shadow_agreement_count", 5, config="shadow-bot") == 5
    assert stack.count("canaryflow_requests_total", config="shadow-bot", version="2", variation="shadow",
                       gen_ai_provider_name="anthropic", gen_ai_request_model="claude-haiku-4-5") == 5
    assert stack.count("canaryflow_requests_total", config="shadow-bot", version="1", variation="stable") == 5
    assert stack.count("canaryflow_requests_total", config="shadow-bot", variation="candidate") == 0
    total = stack.count("canaryflow_shadow_agreement_sum", config="shadow-bot", version="2")
    assert 0.0 <= total <= 5.0


def test_json_stable_against_a_text_candidate_disagrees(stack: Stack, oai: openai.OpenAI) -> None:
    done = oai.chat.completions.create(model="json-bot", messages=Q, extra_body=CTX)
    assert (done.choices[0].message.content or "").lstrip().startswith("{")
    assert _wait_for(stack, "canaryflow_shadow_agreement_count", 1, config="json-bot") == 1
    # the stable answer is JSON, the candidate's is not: agreement 0, in the lowest bucket
    assert stack.count("canaryflow_shadow_agreement_bucket", config="json-bot", le="0.1") == 1


def test_response_not_delayed_and_overflow_dropped(stack: Stack, oai: openai.OpenAI) -> None:
    stats = stack.plane.shadow.stats
    finished = stats.completed + stats.failed
    for _ in range(10):
        raw = oai.chat.completions.with_raw_response.create(model="slow-shadow", messages=Q, extra_body=CTX)
        assert raw.status_code == 200 and raw.headers["x-canaryflow-variation"] == "stable"
    # every user answer came back while the candidate calls (hanging 20 s) were still in flight
    assert stats.completed + stats.failed == finished
    # 2 workers busy + 3 queued; the other 5 mirrors were dropped and counted
    assert stack.count("canaryflow_shadow_dropped_total", config="slow-shadow", version="2",
                       variation="shadow") == 5
    assert stack.count("canaryflow_requests_total", config="slow-shadow", variation="stable") == 10


def test_no_mirror_outside_shadow(stack: Stack, oai: openai.OpenAI) -> None:
    stack.registry.clear_exposure("shadow-bot", by="test", reason="test", source="cli")
    stack.plane.resolver.refresh(force=True)  # type: ignore[attr-defined]
    before = stack.plane.shadow.stats.offered
    oai.chat.completions.create(model="shadow-bot", messages=Q, extra_body=CTX)
    assert stack.plane.shadow.stats.offered == before
