"""End to end: a candidate with a raised error rate, served through the gateway from the simulator, scraped
by a real Prometheus, judged by the real ``analyze_stage`` activity inside a rollout on the Temporal dev
server — rolled back, with the evidence in the workflow's failure message."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter

from canaryflow.domain.plan import RolloutInput
from canaryflow.domain.rollout_status import RolloutStatus
from canaryflow.registry import Registry, evaluations
from canaryflow.sim import QUESTIONS
from canaryflow.temporal import DevServer, start_dev_server, workflow_id
from tests.servers import Prometheus, free_port
from tests.traffic_stack import Stack, asking, running_stack, spec
from worker import build_worker

pytestmark = [pytest.mark.temporal, pytest.mark.prometheus]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    d = tmp_path_factory.mktemp("devserver")
    srv = start_dev_server(port=free_port(), ui_port=None, db_file=d / "temporal.db",
                           log_file=d / "server.log")
    yield srv
    srv.stop()


_traffic = asking(lambda n: "What is the capital of France?")  # many users asking one question


async def _rollout(server: DevServer, prometheus: Prometheus, stack: Stack, key: str, plan: dict[str, Any],
                   traffic: Callable[..., None], *args: Any, timeout: float = 120.0) -> RolloutStatus:
    """Roll out v2 of ``key`` with ``plan`` while ``traffic(stack, key, stop, *args)`` sends requests;
    returns the promoted rollout's status (a rolled-back one raises ``WorkflowFailureError``)."""
    address = stack.url.removeprefix("http://")
    prometheus.add_target(address)
    prometheus.wait_scraped(address)
    stop = threading.Event()
    sender = threading.Thread(target=traffic, args=(stack, key, stop, *args), daemon=True)
    sender.start()
    client = await Client.connect(server.address, data_converter=pydantic_data_converter)
    queue = f"e2e-{uuid.uuid4().hex[:8]}"
    try:
        async with build_worker(client, Registry(stack.registry.url), task_queue=queue):
            inp = RolloutInput.model_validate(
                {"config_key": key, "candidate_version": 2, "plan": plan, "requested_by": "alice"})
            handle = await client.start_workflow("RolloutWorkflow", inp, id=workflow_id(key),
                                                 task_queue=queue)
            return RolloutStatus.model_validate(await asyncio.wait_for(handle.result(), timeout))
    finally:
        stop.set()
        sender.join(30)


async def _rolled_back(server: DevServer, prometheus: Prometheus, stack: Stack, key: str,
                       plan: dict[str, Any], traffic: Callable[..., None], *args: Any) -> str:
    """:func:`_rollout`, which must roll back: returns its failure message."""
    with pytest.raises(WorkflowFailureError) as info:
        await _rollout(server, prometheus, stack, key, plan, traffic, *args)
    return str(info.value.cause)


async def test_raised_error_rate_is_rolled_back_with_evidence(
    server: DevServer, prometheus: Prometheus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = f"e2e-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CANARYFLOW_PROMETHEUS_URL", prometheus.url)
    bad = "You are helpful. [sim:error_rate=0.3]"
    configs = [spec(key, system="You are helpful."), spec(key, system=bad)]
    plan = {
        "stages": [{"name": "canary-50", "kind": "percent", "percent": 50, "min_duration": "10m"},
                   {"name": "full", "kind": "full"}],
        "gates": [{"metric": "error_rate", "margin": 0.5}],
        "analysis_interval": "2s",
    }
    with running_stack(tmp_path, configs=configs) as stack:
        message = await _rolled_back(server, prometheus, stack, key, plan, _traffic)
        assert "canary-50" in message and "error_rate FAIL" in message, message
        assert "candidate 0." in message and "vs stable" in message
        assert "interval [" in message and "margin 0.5 relative" in message
        # compensation restored stable
        state = stack.registry.serving_state(key)
        assert state.stable_version == 1 and state.exposure.candidate_version is None


def _employee_traffic(served: list[tuple[float, str]]) -> Callable[[Stack, str, threading.Event], None]:
    """Employees (the ``internal`` segment) asking one question; ``served`` gets (time, variation) of each
    answer, errors included (their ``X-Canaryflow-Variation`` says who failed)."""
    def traffic(stack: Stack, key: str, stop: threading.Event) -> None:
        client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="sk-app", max_retries=0, timeout=10)
        n = 0
        while not stop.is_set():
            n += 1
            headers = {"X-Canaryflow-User": f"user-{n}", "X-Canaryflow-Attr-Email": f"e{n}@acme.com"}
            try:
                raw = client.chat.completions.with_raw_response.create(
                    model=key, messages=[{"role": "user", "content": "What is the capital of France?"}],
                    extra_headers=headers)
                variation = raw.headers.get("x-canaryflow-variation", "")
            except openai.APIStatusError as exc:
                variation = exc.response.headers.get("x-canaryflow-variation", "")
            served.append((time.time(), variation))
    return traffic


async def test_a_segments_stage_with_a_holdback_is_decided_by_its_gates_within_the_segment(
    server: DevServer, prometheus: Prometheus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a holdback every employee is on the candidate and stable serves none of them, so no gate can
    compare; with 30 % of them held back on stable, error_rate compares like with like and rolls back."""
    key = f"seg-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CANARYFLOW_PROMETHEUS_URL", prometheus.url)
    configs = [spec(key, system="You are helpful."),
               spec(key, system="You are helpful. [sim:error_rate=0.3]")]
    plan = {
        "stages": [{"name": "internal", "kind": "segments", "segments": ["internal"], "holdback": 0.3,
                    "min_duration": "10m"},
                   {"name": "full", "kind": "full"}],
        "gates": [{"metric": "error_rate", "margin": 0.5}],
        "analysis_interval": "2s",
    }
    served: list[tuple[float, str]] = []
    with running_stack(tmp_path, configs=configs) as stack:
        message = await _rolled_back(server, prometheus, stack, key, plan, _employee_traffic(served))
        assert "internal" in message and "error_rate FAIL" in message, message
        # while the stage was applied (from its exposure to the restore), 30 % of employees got stable
        events = {e.action: e.at.timestamp() for e in stack.registry.audit(key)}
        start, end = events["apply_exposure"], events["clear_exposure"]
        during = [v for t, v in served if start + 0.5 < t < end - 0.5]  # the gateway's refresh: 0.05 s
        held, exposed = during.count("stable"), during.count("candidate")
        assert held + exposed == len(during) and exposed > 50, (held, exposed)
        assert 0.15 < held / len(during) < 0.45, (held, exposed)
        state = stack.registry.serving_state(key)
        assert state.stable_version == 1 and state.exposure.candidate_version is None


LOOKUP = {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"],
          "additionalProperties": False}


#: an app sending no tools of its own: the config's tools reach the provider
_agent_traffic = asking(lambda n: f"Where is order A-{n}?")


async def test_a_tool_description_and_schema_change_that_breaks_tool_calls_is_rolled_back(
    server: DevServer, prometheus: Prometheus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = f"tools-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CANARYFLOW_PROMETHEUS_URL", prometheus.url)
    answer = {"type": "json_schema", "name": "order_answer",
              "schema": {"type": "object", "properties": {"status": {"type": "string"}}}}
    stable = spec(key, system="You look orders up before answering.",
                  tools=[{"name": "lookup_order", "description": "Find an order by its id.",
                          "parameters": LOOKUP}], response_format=answer)
    # the candidate: a terser tool description and an extra answer field; the simulator's profile for it
    # (the marker its prompt carries) makes half its tool calls wrong
    candidate = spec(key, system="You look orders up before answering. [sim:tool_error_rate=0.5]",
                     tools=[{"name": "lookup_order", "description": "Order lookup.", "parameters": LOOKUP}],
                     response_format={**answer, "schema": {**answer["schema"], "required": ["status"]}})
    assert stable.content_hash() != candidate.content_hash()
    plan = {
        "stages": [{"name": "canary-50", "kind": "percent", "percent": 50, "min_duration": "10m"},
                   {"name": "full", "kind": "full"}],
        "gates": [{"metric": "tool_call_error_rate", "margin": 0.5}],
        "analysis_interval": "2s",
    }
    with running_stack(tmp_path, configs=[stable, candidate]) as stack:
        message = await _rolled_back(server, prometheus, stack, key, plan, _agent_traffic)
        assert "canary-50" in message and "tool_call_error_rate FAIL" in message, message
        valid = stack.count("canaryflow_tool_calls_total", config=key, variation="stable", result="valid")
        wrong = sum(stack.count("canaryflow_tool_calls_total", config=key, variation="candidate", result=r)
                    for r in ("invalid_json", "schema_mismatch", "unknown_tool"))
        assert valid > 0 and wrong > 0
        assert stack.count("canaryflow_tool_calls_total", config=key, variation="stable",
                           result="unknown_tool") == 0
        state = stack.registry.serving_state(key)
        assert state.stable_version == 1 and state.exposure.candidate_version is None


STATUS = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"],
          "additionalProperties": False}


def _structured_traffic(stack: Stack, key: str, stop: threading.Event, seen: dict[str, int]) -> None:
    """Requests from many users; counts the answers users got that are off the schema, and how many of the
    candidate's users the stable version served."""
    client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="sk-app", max_retries=0, timeout=10)
    n = 0
    while not stop.is_set():
        n += 1
        try:
            raw = client.chat.completions.with_raw_response.create(
                model=key, messages=[{"role": "user", "content": f"Where is order A-{n}?"}],
                extra_headers={"X-Canaryflow-User": f"user-{n}"})
        except openai.APIConnectionError:  # the client's own timeout on a loaded machine: no answer to judge
            continue
        except openai.APIStatusError as exc:
            seen["errors"] += 1
            print("gateway error:", exc.status_code, exc.response.text)
            continue
        try:
            ok = isinstance(json.loads(raw.parse().choices[0].message.content or "")["status"], str)
        except (ValueError, KeyError, TypeError):
            ok = False
        seen["off_schema"] += not ok
        if raw.headers["x-canaryflow-variation"] == "candidate":
            seen["candidate"] += 1
            seen["candidate_by_stable"] += raw.headers["x-canaryflow-fallback-reason"] == "schema_mismatch"


async def test_a_candidate_off_its_schema_is_guarded_by_stable_and_rolled_back(
    server: DevServer, prometheus: Prometheus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = f"guard-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CANARYFLOW_PROMETHEUS_URL", prometheus.url)
    answer = {"type": "json_schema", "name": "order_status", "schema": STATUS}
    checks = {"match_schema": True}
    stable = spec(key, system="Answer with the order status.", response_format=answer, output_checks=checks)
    # the candidate's prompt makes every structured answer of the simulator miss the schema; it has no
    # fallback of its own, so the guardrail's last resort, stable, serves its users
    candidate = spec(key, system="Answer with the order status, tersely. [sim:schema_error_rate=1]",
                     response_format=answer, output_checks=checks)
    plan = {
        "stages": [{"name": "canary-50", "kind": "percent", "percent": 50, "min_duration": "10m"},
                   {"name": "full", "kind": "full"}],
        "gates": [{"metric": "error_rate", "margin": 0.5}, {"metric": "fallback_rate", "margin": 0.5}],
        "analysis_interval": "2s",
    }
    seen = {"errors": 0, "off_schema": 0, "candidate": 0, "candidate_by_stable": 0}
    with running_stack(tmp_path, configs=[stable, candidate]) as stack:
        message = await _rolled_back(server, prometheus, stack, key, plan, _structured_traffic, seen)
        assert "canary-50" in message and ("error_rate FAIL" in message or "fallback_rate FAIL" in message), \
            message
        # users never saw an answer off the schema: the candidate's were replaced by stable's
        assert seen["errors"] == 0 and seen["off_schema"] == 0, seen
        assert seen["candidate"] > 0 and seen["candidate_by_stable"] == seen["candidate"], seen
        assert stack.count("canaryflow_requests_total", config=key, variation="candidate",
                           error_type="schema_mismatch", served_by="fallback") == seen["candidate"]
        assert stack.count("canaryflow_requests_total", config=key, variation="stable",
                           outcome="error") == 0
        state = stack.registry.serving_state(key)
        assert state.stable_version == 1 and state.exposure.candidate_version is None


def _rescued_traffic(stack: Stack, key: str, stop: threading.Event, seen: dict[str, int]) -> None:
    """Users of both versions; counts what they got: answers, error responses, answers a fallback gave."""
    client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="sk-app", max_retries=0, timeout=10)
    n = 0
    while not stop.is_set():
        n += 1
        try:
            raw = client.chat.completions.with_raw_response.create(
                model=key, messages=[{"role": "user", "content": "What is the capital of France?"}],
                extra_headers={"X-Canaryflow-User": f"user-{n}"})
        except openai.APITimeoutError:  # the loaded test machine, not an answer (counted apart)
            seen["client timeouts"] = seen.get("client timeouts", 0) + 1
            continue
        except openai.APIError:
            seen["errors"] += 1
            continue
        variation = raw.headers["x-canaryflow-variation"]
        seen[variation] = seen.get(variation, 0) + 1
        if raw.headers["x-canaryflow-fallback"] == "true":
            seen[f"{variation} by fallback"] = seen.get(f"{variation} by fallback", 0) + 1


async def test_a_candidate_rescued_by_its_fallback_is_rolled_back_for_its_own_failures(
    server: DevServer, prometheus: Prometheus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The candidate's own model fails every call and its fallback answers every user: users see no error,
    yet the candidate is rolled back, its evidence naming its own failures (error type) and the fallback
    that served those users (served_by="fallback")."""
    key = f"rescued-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CANARYFLOW_PROMETHEUS_URL", prometheus.url)
    fallback = [{"provider": "anthropic", "model": "claude-haiku-4-5"}]
    configs = [spec(key, system="You are helpful.", fallback=fallback),
               spec(key, model="gpt-4.1", system="You are helpful. [sim@gpt-4.1:error_rate=1]",
                    fallback=fallback)]
    plan = {
        "stages": [{"name": "canary-50", "kind": "percent", "percent": 50, "min_duration": "10m"},
                   {"name": "full", "kind": "full"}],
        "gates": [{"metric": "error_rate", "margin": 0.05, "mode": "absolute"}],
        "analysis_interval": "2s",
    }
    seen: dict[str, int] = {"errors": 0}
    with running_stack(tmp_path, configs=configs) as stack:
        message = await _rolled_back(server, prometheus, stack, key, plan, _rescued_traffic, seen)
        assert "canary-50" in message and "error_rate FAIL" in message, message
        assert "candidate's own errors: " in message and "server_error" in message, message
        assert "(served by fallback " in message, message
        # users never saw the candidate's failures: a fallback answered each of them
        assert seen["errors"] == 0 and seen.get("candidate", 0) > 0, seen
        assert seen["candidate by fallback"] == seen["candidate"] and "stable by fallback" not in seen, seen
        labels = {"config": key, "version": "2", "variation": "candidate"}
        rescued = stack.count("canaryflow_requests_total", **labels, served_by="fallback", outcome="error")
        assert seen["candidate"] <= rescued <= seen["candidate"] + seen.get("client timeouts", 0)
        assert stack.count("canaryflow_requests_total", **labels, served_by="primary") == 0
        assert stack.count("gen_ai_client_operation_duration_seconds_count", **labels,
                           served_by="primary") == 0
        state = stack.registry.serving_state(key)
        assert state.stable_version == 1 and state.exposure.candidate_version is None


# ── answer quality in shadow: LLM-as-judge and pairwise win rate, before any user sees the candidate ────

GRADED = {"type": "object", "required": ["score", "reason"], "properties": {
    "score": {"type": "number", "minimum": 0, "maximum": 1}, "reason": {"type": "string"}}}
PREFERRED = {"type": "object", "required": ["winner", "reason"], "properties": {
    "winner": {"type": "string", "enum": ["A", "B", "tie"]}, "reason": {"type": "string"}}}
QUALITY_EVALUATORS = [{"name": "grade", "kind": "judge", "judge": "answer-judge", "sample": 0.5},
                      {"name": "pref", "kind": "pairwise", "judge": "pair-judge"}]


def _judges() -> list[Any]:
    def judge(key: str, schema: dict[str, Any], rubric: str) -> Any:
        return spec(key, model="sim-judge", system=rubric,
                    response_format={"type": "json_schema", "name": "verdict", "schema": schema})
    return [judge("answer-judge", GRADED, "Grade the answer: 1 if right, 0 if wrong."),
            judge("pair-judge", PREFERRED, "Which answer is right? [sim:judge_bias=0.3]")]


_questions = asking(lambda n: QUESTIONS[n % len(QUESTIONS)].prompt)  # the simulator's known questions


def _quality_stack(tmp_path: Path, key: str, candidate_system: str) -> Any:
    stable = spec(key, system="Answer in one word. [sim:quality=0.95]", evaluators=QUALITY_EVALUATORS[:1])
    candidate = spec(key, system=candidate_system, evaluators=QUALITY_EVALUATORS)
    return running_stack(tmp_path, configs=[*_judges(), stable, candidate])


async def test_worse_answers_are_rolled_back_in_shadow_by_the_judges_before_exposure(
    server: DevServer, prometheus: Prometheus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same errors and latency, wrong answers: the pairwise judge's win rate fails the shadow stage."""
    key = f"quality-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CANARYFLOW_PROMETHEUS_URL", prometheus.url)
    plan = {"stages": [{"name": "shadow", "kind": "shadow", "shadow_fraction": 1.0, "min_duration": "10m",
                        "gates": [{"metric": "win_rate", "evaluator": "pref", "floor": 0.45},
                                  {"metric": "eval_score", "evaluator": "grade", "margin": 0.1},
                                  {"metric": "error_rate", "margin": 0.5}]},
                       {"name": "full", "kind": "full"}],
            "analysis_interval": "2s"}
    with _quality_stack(tmp_path, key, "Answer in one word. [sim:quality=0.1]") as stack:
        message = await _rolled_back(server, prometheus, stack, key, plan, _questions)
        assert "shadow" in message and "pref_win_rate FAIL" in message, message
        assert "win rate 0." in message and "vs floor 0.45" in message and "interval [" in message, message
        assert "worst: cf1_" in message, message  # request ids of pairs the candidate lost
        worst = message.split("worst: ")[1].split(" |")[0].split("; ")[0].split(", ")
        rows = [r for w in worst for r in evaluations.for_request(stack.registry, w.strip().rstrip(";"))]
        assert rows and all(r.evaluator != "pref" or r.label == "loss" for r in rows), rows
        assert "error_rate FAIL" not in message
        # never exposed: no user got the candidate; the judges' calls are their own configs' traffic
        assert stack.count("canaryflow_requests_total", config=key, variation="candidate") == 0
        assert stack.count("canaryflow_requests_total", config="pair-judge", outcome="success") > 0
        state = stack.registry.serving_state(key)
        assert state.stable_version == 1 and state.exposure.candidate_version is None


async def test_a_candidate_answering_as_well_passes_its_quality_gates_in_shadow(
    server: DevServer, prometheus: Prometheus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = f"quality-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CANARYFLOW_PROMETHEUS_URL", prometheus.url)
    plan = {"stages": [{"name": "shadow", "kind": "shadow", "shadow_fraction": 1.0, "max_duration": "2m",
                        "gates": [{"metric": "win_rate", "evaluator": "pref", "floor": 0.35}]},
                       {"name": "full", "kind": "full"}],
            "analysis_interval": "1s", "on_inconclusive": "rollback"}
    with _quality_stack(tmp_path, key, "Answer in a single word. [sim:quality=0.95]") as stack:
        await _rollout(server, prometheus, stack, key, plan, _questions, timeout=150)
        assert stack.registry.serving_state(key).stable_version == 2
        wins = stack.count("canaryflow_eval_score_sum", config=key, version="2", variation="shadow",
                           evaluator="pref")
        pairs = stack.count("canaryflow_eval_score_count", config=key, version="2", variation="shadow",
                            evaluator="pref")
        assert pairs >= 30 and wins / pairs > 0.35  # enough pairs judged, about even with stable


def _steady_traffic(stack: Stack, key: str, stop: threading.Event, seen: dict[str, int]) -> None:
    """Requests from many users on a few keep-alive connections at once, as fast as the gateway answers;
    counts the answers of each variation and anything that was not an answer."""
    body = {"model": key, "messages": [{"role": "user", "content": "What is the capital of France?"}]}

    def one_connection(offset: int) -> None:
        with httpx.Client(base_url=stack.url, timeout=30,
                          headers={"Authorization": "Bearer sk-app"}) as client:
            n = offset
            while not stop.is_set():
                n += 4
                try:
                    r = client.post("/v1/chat/completions", json=body,
                                    headers={"X-Canaryflow-User": f"user-{n}"})
                except httpx.HTTPError as exc:
                    seen[type(exc).__name__] = seen.get(type(exc).__name__, 0) + 1
                    continue
                what = r.headers.get("x-canaryflow-variation", "?") if r.status_code == 200 else str(
                    r.status_code)
                seen[what] = seen.get(what, 0) + 1

    connections = [threading.Thread(target=one_connection, args=(i,), daemon=True) for i in range(4)]
    for t in connections:
        t.start()
    for t in connections:
        t.join()


async def test_a_good_candidate_passes_every_default_gate_and_is_promoted(
    server: DevServer, prometheus: Prometheus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A candidate as good as stable (the same prompt and model at another temperature) is judged by the
    default gates at their default margins and floors — error_rate, fallback_rate, latency_p95,
    cost_per_request — and promoted by them: margins a good candidate can PASS, with no human decision.

    With no errors on either side, error_rate's PASS is the floor's: the always-valid upper bound of the
    candidate's rate must fall below 0.1 %, which takes ≈ 5,000 candidate requests — so this stage sends
    80 % of its traffic to the candidate, and it passes only when every gate does (or fails at its cap)."""
    key = f"good-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CANARYFLOW_PROMETHEUS_URL", prometheus.url)
    # as good as stable in every way a gate reads: the same prompt and tokens, only the temperature differs
    # (a longer prompt would cost more and answer a little slower: not "as good", and the gates see it)
    configs = [spec(key, system="You are helpful."),
               spec(key, system="You are helpful.", parameters={"temperature": 0.3, "max_tokens": 200})]
    plan = {
        "stages": [{"name": "canary-80", "kind": "percent", "percent": 80, "min_duration": "4s",
                    "max_duration": "4m"},
                   {"name": "full", "kind": "full"}],
        "analysis_interval": "2s",
        "on_inconclusive": "rollback",
    }
    seen: dict[str, int] = {}
    with running_stack(tmp_path, configs=configs, traffic_rate=0.0) as stack:
        result = await _rollout(server, prometheus, stack, key, plan, _steady_traffic, seen, timeout=300)
        assert result.state == "promoted", result.outcome
        # the gates decided, nobody approved: every default gate's last measurement passed
        assert result.outcome == "v2 is stable: canary-80 passed its gates", result.outcome
        assert "approved" not in result.outcome, result.outcome
        final = [v for v in result.verdicts if v.stage == "canary-80"][-1]
        assert final.verdict.value == "PASS", final
        measured = stack.registry.measurements(key, stage="canary-80", limit=1000)
        last = {r.measurement.gate: r.measurement.verdict.value for r in measured}  # oldest first
        assert last == {"error_rate": "PASS", "fallback_rate": "PASS", "latency_p95": "PASS",
                        "cost_per_request": "PASS"}, last
        state = stack.registry.serving_state(key)
        assert state.stable_version == 2 and state.exposure.candidate_version is None
        assert seen.get("candidate", 0) > 0 and seen.get("stable", 0) > 0, seen
        assert set(seen) == {"candidate", "stable"}, seen  # every request was answered
