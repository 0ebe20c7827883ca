"""LLM-as-judge: judge configs, the simulator's judge profile, pairwise order, the win-rate test, budgets."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from temporalio.exceptions import ApplicationError

from activities.exposure import ExposureActivities
from canaryflow.domain.budget import Budget, HourlyMeter
from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.errors import ValidationFailed
from canaryflow.domain.evaluators import EvaluatorSpec
from canaryflow.domain.gates import Gate, Verdict
from canaryflow.domain.judging import (
    JudgeOutputInvalid,
    Scale,
    check_judge,
    judge_prompt,
    pairwise_prompt,
    parse_prompt,
    parse_verdict,
)
from canaryflow.domain.pairwise import candidate_first, judge_win_rate, outcome, win_rate_bounds
from canaryflow.domain.plan import Plan, undeclared_evaluator
from canaryflow.registry import Registry
from canaryflow.sim import SimServer, Simulator
from canaryflow.sim.requests import SimRequest
from canaryflow.temporal.messages import ValidateRollout
from tests.servers import free_port

SCORE_SCHEMA = {"type": "object", "required": ["score", "label", "reason"],
                "properties": {"score": {"type": "number", "minimum": 0, "maximum": 1},
                               "label": {"type": "string", "enum": ["Correct", "Incorrect"]},
                               "reason": {"type": "string"}}}
WINNER_SCHEMA = {"type": "object", "required": ["winner", "reason"],
                 "properties": {"winner": {"type": "string", "enum": ["A", "B", "tie"]},
                                "reason": {"type": "string"}}}


def judge_spec(schema: dict[str, Any] | None, **extra: Any) -> ConfigSpec:
    body: dict[str, Any] = {"key": "answer-judge", "provider": "openai", "model": "sim-judge",
                            "messages": [{"role": "system", "content": "Grade the answer."}], **extra}
    if schema is not None:
        body["response_format"] = {"type": "json_schema", "name": "grade", "schema": schema}
    return ConfigSpec.model_validate(body)


# ── judge configs ──────────────────────────────────────────────────────────────────────────────────────

def test_a_judge_config_needs_an_output_schema_naming_the_field() -> None:
    with pytest.raises(ValidationFailed) as missing:
        check_judge(judge_spec(None), "judge", field="evaluators[0].judge")
    assert missing.value.source == "response_format"
    assert "evaluators[0].judge" in str(missing.value) and "json_schema" in str(missing.value)
    with pytest.raises(ValidationFailed) as no_winner:
        check_judge(judge_spec(SCORE_SCHEMA), "pairwise")
    assert no_winner.value.source == "response_format.schema.properties.winner"
    text_score = {"type": "object", "properties": {"score": {"type": "string"}}}
    with pytest.raises(ValidationFailed, match="type number or integer"):
        check_judge(judge_spec(text_score), "judge")
    with pytest.raises(ValidationFailed, match="placeholders") as templated:
        templated_spec = judge_spec(SCORE_SCHEMA, messages=[{"role": "system", "content": "Grade {{x}}"}])
        check_judge(templated_spec, "judge")
    assert templated.value.source == "messages"
    assert check_judge(judge_spec(SCORE_SCHEMA), "judge") == Scale(0.0, 1.0)
    ten = {"type": "object", "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 10}}}
    assert check_judge(judge_spec(ten), "judge") == Scale(1.0, 10.0)
    assert check_judge(judge_spec(WINNER_SCHEMA), "pairwise") == Scale()


def test_verdicts_are_read_on_their_scale_and_bad_ones_refused() -> None:
    assert parse_verdict('{"score": 7, "reason": "ok"}', "judge", Scale(1, 10)).score == pytest.approx(6 / 9)
    assert parse_verdict('{"winner": "b"}', "pairwise").winner == "B"
    assert parse_verdict('{"winner": "Tie", "reason": "same"}', "pairwise").reason == "same"
    for text, kind in (("not json", "judge"), ("[1]", "judge"), ('{"score": "high"}', "judge"),
                       ('{"score": 1.5}', "judge"), ('{"winner": "C"}', "pairwise"), ("{}", "pairwise")):
        with pytest.raises(JudgeOutputInvalid):
            parse_verdict(text, kind)  # type: ignore[arg-type]


def test_prompts_round_trip() -> None:
    one = parse_prompt(judge_prompt("What is 2 + 2?", "4\nor so"))
    assert one is not None and not one.pairwise and one.answers == ("4\nor so",)
    two = parse_prompt(pairwise_prompt("What is 2 + 2?", "4", "5"))
    assert two is not None and two.pairwise and two.question == "What is 2 + 2?" and two.answers == ("4", "5")
    assert parse_prompt("What is 2 + 2?") is None


# ── pairwise order and the win-rate decision ───────────────────────────────────────────────────────────

def test_order_is_deterministic_per_request_and_balanced() -> None:
    ids = [f"req-{i}" for i in range(2000)]
    firsts = [candidate_first(i, "pref") for i in ids]
    assert firsts == [candidate_first(i, "pref") for i in ids]
    assert 900 < sum(firsts) < 1100
    assert [candidate_first(i, "other") for i in ids] != firsts  # another evaluator draws its own order


@pytest.mark.parametrize(("winner", "cand_first", "expected"), [
    ("A", True, "win"), ("B", True, "loss"), ("A", False, "loss"), ("B", False, "win"),
    ("tie", True, "tie"), ("tie", False, "tie")])
def test_winner_maps_back_to_the_candidate(winner: str, cand_first: bool, expected: str) -> None:
    assert outcome(winner, cand_first) == expected  # type: ignore[arg-type]


def test_position_bias_cancels_with_randomised_order() -> None:
    """A judge that always prefers A: shown in random order, the candidate wins half."""
    results = Counter(outcome("A", candidate_first(f"r{i}")) for i in range(1000))
    assert 450 < results["win"] < 550


def _gate() -> Gate:
    return Gate(metric="win_rate", floor=0.45, evaluator="pref")


@pytest.mark.parametrize(("wins", "ties", "losses", "verdict"), [
    (0, 0, 0, Verdict.NODATA),
    (2, 6, 2, Verdict.INCONCLUSIVE),     # too few pairs either way
    (2, 26, 72, Verdict.FAIL),           # clearly worse: upper bound below the floor
    (50, 400, 50, Verdict.PASS),         # as good as stable, many ties: lower bound above 0.45
    (45, 400, 55, Verdict.PASS),
    (100, 100, 120, Verdict.INCONCLUSIVE),  # close to the floor
    (25, 0, 75, Verdict.FAIL),
])
def test_win_rate_decision(wins: int, ties: int, losses: int, verdict: Verdict) -> None:
    m = judge_win_rate(_gate(), wins=wins, ties=ties, losses=losses, at=0.0)
    assert m.verdict == verdict, m.summary()
    if verdict != Verdict.NODATA:
        lo, hi = m.evidence.interval or (0, 0)
        assert lo <= m.evidence.candidate_value <= hi  # type: ignore[operator]
        assert "floor 0.45" in m.evidence.note


def test_win_rate_bounds_narrow_with_samples_and_cover_the_rate() -> None:
    widths = []
    for n in (40, 400, 4000):
        lo, hi = win_rate_bounds(0.1 * n, 0.8 * n, 0.1 * n, 0.05)
        assert lo < 0.5 < hi
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]


# ── the simulator's judge profile over HTTP ────────────────────────────────────────────────────────────

@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    server = SimServer(Simulator(seed=3, latency_scale=0.0), port=free_port())
    server.start()
    yield server
    server.stop()


def ask(server: SimServer, user: str, schema: dict[str, Any], system: str = "Grade.") -> dict[str, Any]:
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    resp = client.chat.completions.create(
        model="sim-judge",
        messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
        response_format={"type": "json_schema", "json_schema": {"name": "grade", "schema": schema}})
    value: dict[str, Any] = json.loads(resp.choices[0].message.content or "")
    return value


def test_sim_judge_grades_against_known_answers_in_the_schema(sim: SimServer) -> None:
    right = ask(sim, judge_prompt("What is the capital of France?", "Paris"), SCORE_SCHEMA)
    wrong = ask(sim, judge_prompt("What is the capital of France?", "Lyon"), SCORE_SCHEMA)
    assert set(right) == {"score", "label", "reason"}
    assert right["score"] > 0.6 > 0.4 > wrong["score"]
    assert (right["label"], wrong["label"]) == ("Correct", "Incorrect")  # the enum's spelling
    assert "Paris" in wrong["reason"]
    ten = {"type": "object", "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 10}}}
    assert ask(sim, judge_prompt("What is 6 * 7?", "42"), ten)["score"] >= 8
    pair = ask(sim, pairwise_prompt("What is 6 * 7?", "41", "42"), WINNER_SCHEMA)
    assert pair["winner"] == "B" and set(pair) == {"winner", "reason"}


def test_sim_judge_is_deterministic_by_seed_with_noise_and_bias() -> None:
    system = {"role": "system", "content": "Grade. [sim:judge_noise=0.3] [sim:judge_bias=0.4]"}

    def run(seed: int) -> list[str]:
        sim = Simulator(seed=seed, latency_scale=0.0)
        out = []
        for i in range(200):
            prompt = pairwise_prompt(f"What is {i} + 1?", str(i + 1), str(i + 1))
            req = SimRequest(api="chat", model="sim-judge", texts=[], schema=WINNER_SCHEMA)
            outcome = sim.plan("sim-judge", [system, {"role": "user", "content": prompt}], request=req)
            out.append(json.loads(outcome.text)["winner"])
        return out

    first = run(7)
    assert first == run(7)
    assert first != run(8)
    counts = Counter(first)
    assert counts["A"] > 2 * counts["B"]  # position bias: equal answers, A preferred far more often than B
    assert counts["tie"] > counts["A"]


# ── the budget per hour ────────────────────────────────────────────────────────────────────────────────

def test_budget_counts_calls_or_dollars_over_a_sliding_hour() -> None:
    calls = HourlyMeter(Budget.model_validate({"calls": 2}))
    for t in (0.0, 10.0):
        assert calls.allows(t)
        calls.start(t)
    assert not calls.allows(20.0)
    assert not calls.allows(3599.0)
    assert calls.allows(3600.0 + 61.0)  # the first minute left the hour
    dollars = HourlyMeter(Budget.model_validate(0.01))
    dollars.start(0.0)
    dollars.cost(1.0, 0.006)
    assert dollars.allows(2.0)
    dollars.start(2.0)
    dollars.cost(3.0, 0.006)
    assert not dollars.allows(4.0) and dollars.spent(4.0) == (2, pytest.approx(0.012))
    assert HourlyMeter(None).allows(0.0)
    for bad in ({"usd": 1, "calls": 3}, {}, {"usd": 0}, {"calls": 0}):
        with pytest.raises(ValueError):
            Budget.model_validate(bad)


def test_win_rate_gates_are_validated_naming_the_field() -> None:
    for bad, words in (({"floor": 0.45}, "needs 'evaluator'"),
                       ({"evaluator": "pref"}, "needs 'floor' in (0, 1)"),
                       ({"evaluator": "pref", "floor": 1.0}, "needs 'floor' in (0, 1)"),
                       ({"evaluator": "pref", "floor": 0.45, "margin": 0.1}, "not 'margin'")):
        with pytest.raises(ValueError, match=re.escape(words)):
            Gate.model_validate({"metric": "win_rate", **bad})
    assert _gate().label == "pref_win_rate"
    win = {"metric": "win_rate", "evaluator": "pref", "floor": 0.45}
    shadow_only = {"stages": [{"name": "canary", "kind": "percent", "percent": 5},
                              {"name": "full", "kind": "full"}], "gates": [win]}
    with pytest.raises(ValueError, match="put it in the shadow stage's own gates"):
        Plan.model_validate(shadow_only)
    plan = Plan.model_validate({"stages": [
        {"name": "shadow", "kind": "shadow", "gates": [win]},
        {"name": "full", "kind": "full"}]})
    scored = ConfigSpec.model_validate({"key": "bot", "provider": "openai", "model": "gpt-4o-mini",
                                        "evaluators": [{"name": "pref", "kind": "valid_json"}]})
    problem = undeclared_evaluator(plan, scored)
    assert problem is not None and problem.startswith("plan.stages[0].gates[0].evaluator")
    assert "needs a pairwise evaluator" in problem
    paired = scored.model_copy(update={"evaluators": [
        EvaluatorSpec.model_validate({"name": "pref", "kind": "pairwise", "judge": "answer-judge"})]})
    assert undeclared_evaluator(plan, paired) is None


# ── judges at push ─────────────────────────────────────────────────────────────────────────────────────

def scored_bot(kind: str = "judge", **extra: Any) -> ConfigSpec:
    evaluator = {"name": "grade", "kind": kind, "judge": "answer-judge", **extra}
    return ConfigSpec.model_validate({"key": "bot", "provider": "openai", "model": "gpt-4o-mini",
                                      "evaluators": [evaluator]})


def test_judges_without_an_output_schema_are_refused_at_push_naming_the_field(tmp_path: Path) -> None:
    reg = Registry(f"sqlite:///{tmp_path / 'r.db'}")
    with pytest.raises(ValidationFailed, match="does not exist") as unknown:
        reg.push_config(scored_bot())
    assert unknown.value.source == "evaluators[0].judge"
    reg.push_config(judge_spec(None))  # a plain config, not a judge yet
    selfish = scored_bot().model_copy(update={"key": "answer-judge"})
    with pytest.raises(ValidationFailed, match="itself as its judge") as itself:
        reg.push_config(selfish)
    assert itself.value.source == "evaluators[0].judge"
    with pytest.raises(ValidationFailed) as no_schema:
        reg.push_config(scored_bot())
    assert no_schema.value.source == "response_format"
    assert "evaluators[0].judge (stable v1)" in str(no_schema.value)
    assert reg.push_config(judge_spec(SCORE_SCHEMA)).version == 2
    with pytest.raises(ValidationFailed, match=re.escape("evaluators[0].judge (stable v1)")):
        reg.push_config(scored_bot())  # v2 is not stable yet: v1 still judges
    assert reg.push_config(scored_bot(version=2)).version == 1
    with pytest.raises(ValidationFailed) as winner:
        reg.push_config(scored_bot("pairwise", version=2))
    assert winner.value.source == "response_format.schema.properties.winner"
    reg.set_stable("answer-judge", 2, by="alice", reason="the judge with a schema")
    other = scored_bot().model_copy(update={"key": "bot2"})
    assert reg.push_config(other).version == 1  # unpinned: the stable v2 judges
    with pytest.raises(ValidationFailed, match="bot2 uses this config as its judge judge"):
        reg.push_config(judge_spec(None, description="plain again"))  # would break bot2's judge


def test_a_judge_that_lost_its_schema_since_the_push_is_refused_at_rollout_start(tmp_path: Path) -> None:
    reg = Registry(f"sqlite:///{tmp_path / 'r.db'}")
    reg.push_config(judge_spec(SCORE_SCHEMA))
    reg.push_config(judge_spec(None))  # nobody uses it as a judge yet: an ordinary new version
    reg.push_config(scored_bot().model_copy(update={"evaluators": None}))
    assert reg.push_config(scored_bot()).version == 2  # the stable judge v1 has its schema
    reg.set_stable("answer-judge", 2, by="bob", reason="plain prompt")  # ...and then it no longer has
    with pytest.raises(ApplicationError) as refused:
        ExposureActivities(reg)._validate(ValidateRollout(config_key="bot", candidate_version=2,
                                                          plan="default"))
    assert refused.value.non_retryable
    assert "candidate_version: v2 of 'bot'" in str(refused.value)
    assert "response_format" in str(refused.value) and "evaluators[0].judge (stable v2)" in str(refused.value)
