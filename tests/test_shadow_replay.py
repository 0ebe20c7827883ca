"""Shadow replay against the provider simulator over HTTP, with a real (SQLite) registry and traffic log."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from activities.shadow import ShadowProgress, ShadowReplayInput, judge_replay, replay_shadow
from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.gates import Gate, Verdict
from canaryflow.evaluation.replay import parse_judge_score
from canaryflow.providers import factory
from canaryflow.registry import Registry
from canaryflow.registry import traffic as tlog
from canaryflow.sim import QUESTIONS, SimServer, Simulator
from tests.servers import free_port

KEY = "qa-bot"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    server = SimServer(Simulator(seed=3, latency_scale=0.0), port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def env(sim: SimServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OPENAI_BASE_URL", sim.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-shadow")
    factory.clear_cache()
    yield
    factory.clear_cache()


def _spec(marker: str) -> ConfigSpec:
    return ConfigSpec.model_validate({
        "key": KEY, "provider": "openai", "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": f"Answer briefly. {marker}"}],
        "parameters": {"temperature": 0.0, "max_tokens": 50},
    })


@pytest.fixture
def registry(tmp_path: Path, env: None) -> Registry:
    """v1 = stable (always right), v2 = good candidate, v3 = wrong answers, v4 = always errors;
    the traffic log holds 20 known questions with stable's right answers."""
    reg = Registry(f"sqlite:///{tmp_path / 'reg.db'}")
    for marker in ("[sim:quality=1]", "[sim:quality=1] Be exact.", "[sim:quality=0]", "[sim:error_rate=1]"):
        reg.push_config(_spec(marker))
    records = [
        tlog.TrafficRecord(
            request_id=uuid.uuid4().hex, config_key=KEY, version=1, variation="stable",
            request={"messages": [{"role": "user", "content": q.prompt}], "parameters": {}},
            response={"text": q.answer, "finish_reason": "stop"}, latency_ms=10.0, input_tokens=20,
            output_tokens=5,
        )
        for q in QUESTIONS
    ]
    tlog.record_traffic(reg, records)
    return reg


def _input(candidate: int, **kw: object) -> ShadowReplayInput:
    return ShadowReplayInput(config_key=KEY, candidate_version=candidate, stable_version=1, sample=20,
                             concurrency=4, rate_per_s=200, batch=5, **kw)  # type: ignore[arg-type]


async def test_good_candidate_agrees_bad_one_does_not(registry: Registry) -> None:
    good = await replay_shadow(_input(2), registry)
    bad = await replay_shadow(_input(3), registry)
    assert good.sampled == good.replayed == 20 and good.skipped == 0
    assert good.candidate["error_rate"] == 0.0
    assert good.candidate["accuracy_exact"] is None  # no expected answers in shadow replay
    assert good.candidate["agreement"] is not None and bad.candidate["agreement"] is not None
    assert good.candidate["agreement"] >= 0.6
    assert bad.candidate["agreement"] <= good.candidate["agreement"] - 0.3
    assert good.stable["calls"] == 0  # stable answers came from the log
    assert good.candidate["tokens_per_request"] is not None and good.candidate["tokens_per_request"] > 0


async def test_errors_are_counted_not_raised(registry: Registry) -> None:
    result = await replay_shadow(_input(4), registry)
    assert result.candidate["calls"] == 20 and result.candidate["error_rate"] == 1.0
    assert result.candidate["agreement"] is None


class Crash(Exception):
    pass


async def test_resumes_from_heartbeat_details(registry: Registry) -> None:
    beats: list[dict[str, object]] = []

    def crash_after_two_batches(p: ShadowProgress) -> None:
        beats.append(p.model_dump(mode="json"))
        if p.done >= 10:
            raise Crash

    with pytest.raises(Crash):
        await replay_shadow(_input(2), registry, heartbeat=crash_after_two_batches)
    last = ShadowProgress.model_validate(beats[-1])
    assert last.done == 10 and last.candidate.calls == 10 and len(last.ids) == 20

    resumed_beats: list[int] = []
    result = await replay_shadow(_input(2), registry, resume=last,
                                 heartbeat=lambda p: resumed_beats.append(p.done))
    assert resumed_beats == [15, 20]
    assert result.replayed == 20 and result.sampled == 20  # nothing replayed twice


async def test_judge_model_scores_pairs(registry: Registry) -> None:
    # The simulator answers "What is 0 + 1?" with "1" at quality 1, so the judge model replies "1".
    for marker in ("[sim:quality=1]", "[sim:quality=1] Be exact."):
        registry.push_config(_spec(marker).model_copy(update={"key": "math-bot"}))
    judge = ConfigSpec.model_validate({
        "key": "judge", "provider": "openai", "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "You grade answers. [sim:quality=1]"}],
    })
    registry.push_config(judge)
    tlog.record_traffic(registry, [
        tlog.TrafficRecord(request_id=uuid.uuid4().hex, config_key="math-bot", version=1, variation="stable",
                           request={"messages": [{"role": "user", "content": "What is 0 + 1?"}]},
                           response={"text": "1"})
        for _ in range(6)
    ])
    inp = ShadowReplayInput(config_key="math-bot", candidate_version=2, stable_version=1, sample=6,
                            rate_per_s=200, judge_config="judge")
    result = await replay_shadow(inp, registry)
    assert result.candidate["calls"] == 6
    assert result.candidate["judge_score"] == 1.0
    assert result.candidate["agreement"] == 1.0


@pytest.mark.parametrize(
    ("reply", "score"),
    [("1", 1.0), ("0.75", 0.75), ("Score: 8/10", 0.8), ("85", 0.85), ("none", None), ("1000", None)],
)
def test_parse_judge_score(reply: str, score: float | None) -> None:
    assert parse_judge_score(reply) == score


async def test_replay_numbers_judge_the_shadow_gates(registry: Registry) -> None:
    gates = [Gate(metric="shadow_agreement", margin=0.3, min_samples=10),
             Gate(metric="error_rate", margin=0.05),
             Gate(metric="tokens_per_request", margin=0.5, mode="relative", min_samples=10),
             Gate(metric="cost_per_request", margin=0.5, mode="relative", min_samples=10),
             Gate(metric="negative_feedback_rate", margin=0.02)]  # not measurable by replay: left out
    good = judge_replay(gates, await replay_shadow(_input(2), registry), at=1.0)
    assert [m.gate for m in good.measurements] == ["shadow_agreement", "error_rate", "tokens_per_request",
                                                   "cost_per_request"]
    by_gate = {m.gate: m for m in good.measurements}
    assert by_gate["shadow_agreement"].verdict is Verdict.PASS, by_gate["shadow_agreement"].summary()
    assert by_gate["error_rate"].verdict is not Verdict.FAIL
    tokens = by_gate["tokens_per_request"]
    assert tokens.evidence.stable_value == 25.0 and tokens.evidence.stable_samples == 20  # from the log
    assert tokens.evidence.candidate_value is not None and tokens.evidence.candidate_value > 0
    assert tokens.verdict in (Verdict.PASS, Verdict.FAIL)
    bad = judge_replay(gates, await replay_shadow(_input(3), registry), at=2.0)
    assert bad.measurements[0].verdict is Verdict.FAIL
    broken = judge_replay(gates, await replay_shadow(_input(4), registry), at=3.0)
    assert broken.measurements[1].verdict is Verdict.FAIL, broken.measurements[1].summary()
    assert broken.measurements[0].verdict is Verdict.NODATA


async def test_replayed_answers_are_scored_by_the_candidates_evaluators(registry: Registry) -> None:
    import re

    from canaryflow.registry import evaluations

    right = "|".join(re.escape(q.answer) for q in QUESTIONS)  # stable's logged answers are all right
    evaluators = [{"name": "right", "kind": "regex", "pattern": f"^\\W*(?:{right})\\W*$"}]
    for marker in ("[sim:quality=1] Be exact.", "[sim:quality=0]"):
        registry.push_config(ConfigSpec.model_validate(  # v5: a good candidate, v6: wrong answers
            {**_spec(marker).model_dump(mode="json", exclude_none=True), "evaluators": evaluators}))
    gate = Gate.model_validate({"metric": "eval_pass_rate", "evaluator": "right", "margin": 0.2})
    good = await replay_shadow(_input(5), registry)
    bad = await replay_shadow(_input(6), registry)
    assert good.evals["stable/right"][:2] == [20, 20]
    assert good.evals["candidate/right"][0] == 20 and good.evals["candidate/right"][1] >= 18, good.evals
    assert bad.evals["candidate/right"][1] <= 5, bad.evals
    [verdict] = judge_replay([gate], bad, at=1.0).measurements
    assert verdict.verdict == Verdict.FAIL and verdict.gate == "right_pass_rate", verdict.summary()
    [verdict] = judge_replay([gate], good, at=1.0).measurements
    assert verdict.verdict != Verdict.FAIL, verdict.summary()
    rows = evaluations.summaries(registry, KEY)
    assert {(r.version, r.variation, r.scored) for r in rows} >= {(5, "shadow", 20), (6, "shadow", 20)}
    assert all(r.source == "replay" for r in evaluations.lowest(registry, KEY, 6, limit=3))


async def test_replayed_answers_are_judged_by_judge_configs_absolute_and_pairwise(registry: Registry) -> None:
    from canaryflow.registry import evaluations

    def judge(key: str, prop: str, schema: dict[str, object]) -> ConfigSpec:
        return ConfigSpec.model_validate({
            "key": key, "provider": "openai", "model": "sim-judge",
            "messages": [{"role": "system", "content": "Judge the answer."}],
            "response_format": {"type": "json_schema", "name": "verdict", "schema": {
                "type": "object", "required": [prop], "properties": {prop: schema}}}})

    registry.push_config(judge("grader", "score", {"type": "number", "minimum": 0, "maximum": 1}))
    registry.push_config(judge("chooser", "winner", {"type": "string", "enum": ["A", "B", "tie"]}))
    evaluators = [{"name": "grade", "kind": "judge", "judge": "grader"},
                  {"name": "pref", "kind": "pairwise", "judge": "chooser"}]
    registry.push_config(ConfigSpec.model_validate(  # v5: wrong answers, judged
        {**_spec("[sim:quality=0]").model_dump(mode="json", exclude_none=True), "evaluators": evaluators}))
    bad = await replay_shadow(_input(5), registry)
    assert bad.evals["stable/grade"][0] == 20 and bad.evals["stable/grade"][2] > 16, bad.evals  # right
    assert bad.evals["candidate/grade"][0] == 20 and bad.evals["candidate/grade"][2] < 4, bad.evals
    assert "stable/pref" not in bad.evals  # a pair is judged once, on the candidate's side
    assert bad.evals["candidate/pref"][0] == 20 and bad.evals["candidate/pref"][1] == 0  # no win
    lost = [r for r in evaluations.lowest(registry, KEY, 5, evaluator="pref", limit=20) if r.label == "loss"]
    assert len(lost) >= 18 and all(r.source == "replay" for r in lost)
