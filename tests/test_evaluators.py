"""Online evaluators: declaration and refusals, the deterministic scorers, sampling, the eval gates."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from canaryflow.domain.evaluators import (
    EvaluatorContext,
    EvaluatorSpec,
    Sample,
    Score,
    ScorerRegistry,
    chosen,
    compile_evaluators,
    sample_point,
)
from canaryflow.domain.gates import Gate
from canaryflow.domain.plan import Plan, undeclared_evaluator
from canaryflow.errors import ValidationFailed
from canaryflow.registry import Registry
from tests.traffic_stack import spec

SCHEMA = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]}
FORMAT = {"type": "json_schema", "name": "order_status", "schema": SCHEMA}


def _sample(text: str, **kw: Any) -> Sample:
    return Sample("r-1", "bot", 2, "candidate", "none", text, **kw)


def _score(ev: dict[str, Any], sample: Sample) -> list[Score]:
    compiled = compile_evaluators([EvaluatorSpec.model_validate(ev)], EvaluatorContext("bot", 2, SCHEMA),
                                  ScorerRegistry())
    scorer = compiled[0].scorer
    assert scorer is not None
    return asyncio.run(scorer.score(sample))


@pytest.mark.parametrize(("ev", "text", "passed", "label"), [
    ({"kind": "valid_json"}, '{"a": 1}', True, "pass"),
    ({"kind": "valid_json"}, "{'a': 1", False, "invalid_json"),
    ({"kind": "match_schema"}, '{"status": "shipped"}', True, "pass"),
    ({"kind": "match_schema"}, '{"status": 3}', False, "schema_mismatch"),
    ({"kind": "regex", "pattern": r"^\{"}, "Sure: {}", False, "pattern"),
    ({"kind": "contains", "values": ["status"]}, "status: ok", True, "pass"),
    ({"kind": "not_contains", "values": ["TODO"]}, "TODO later", False, "pattern"),
    ({"kind": "length", "max": 5}, "abcdefgh", False, "length"),
    ({"kind": "length", "min": 2, "max": 5}, "abc", True, "pass"),
    ({"kind": "refusal"}, "I'm sorry, but I can't help with that.", False, "refusal"),
    ({"kind": "non_empty"}, " ", False, "empty"),
])
def test_each_deterministic_kind_scores_one_or_zero_with_the_checks_reason(
        ev: dict[str, Any], text: str, passed: bool, label: str) -> None:
    [score] = _score({"name": "e", **ev}, _sample(text))
    assert (score.passed, score.label, score.score) == (passed, label, 1.0 if passed else 0.0)
    assert text not in score.reason or not text.strip()  # the reason never carries the answer


def test_a_refusal_flagged_by_the_provider_fails_the_refusal_evaluator() -> None:
    [score] = _score({"name": "e", "kind": "refusal"}, _sample("", finish_reason="content_filter"))
    assert not score.passed and score.label == "refusal"


def test_tool_calls_score_the_share_of_valid_calls_and_skip_answers_without_any() -> None:
    ev = {"name": "tools", "kind": "tool_calls"}
    [score] = _score(ev, _sample("", tool_calls=2, tool_call_results=("valid", "unknown_tool")))
    assert (score.score, score.passed, score.label) == (0.5, False, "unknown_tool")
    assert _score(ev, _sample("plain text")) == []


@pytest.mark.parametrize(("ev", "field", "words"), [
    ({"name": "a", "kind": "sentiment"}, "evaluators.0.kind", "unknown kind 'sentiment'"),
    ({"name": "a", "kind": "regex", "pattern": "([a-z"}, "evaluators.0.pattern", "does not compile"),
    ({"name": "a", "kind": "valid_json", "sample": 0}, "evaluators.0.sample", "outside (0, 1]"),
    ({"name": "a", "kind": "valid_json", "sample": 1.5}, "evaluators.0.sample", "outside (0, 1]"),
    ({"name": "a", "kind": "match_schema"}, "evaluators", "set response_format"),
    ({"name": "a", "kind": "length"}, "evaluators.0", "needs 'min' and/or 'max'"),
    ({"name": "a", "kind": "contains"}, "evaluators.0", "needs 'values'"),
    ({"name": "a", "kind": "judge"}, "evaluators.0", "needs 'judge'"),
    ({"name": "a", "kind": "valid_json", "pattern": "x"}, "evaluators.0", "'pattern' belongs to kind regex"),
    ({"name": "Bad Name", "kind": "valid_json"}, "evaluators.0.name", "String should match"),
])
def test_bad_evaluators_are_refused_naming_the_field(ev: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        spec("bad-evals", evaluators=[ev])
    errors = info.value.errors()
    assert any(".".join(map(str, e["loc"])) == field and words in e["msg"] for e in errors), errors


def test_two_evaluators_with_one_name_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"\[1\].name: two evaluators are both named 'a'"):
        spec("dupes", evaluators=[{"name": "a", "kind": "valid_json"}, {"name": "a", "kind": "refusal"}])


def test_the_content_hash_keeps_only_what_the_author_wrote() -> None:
    s = spec("hash", evaluators=[{"name": "short", "kind": "length", "max": 800}],
             response_format=FORMAT)
    assert s.content()["evaluators"] == [{"name": "short", "kind": "length", "max": 800}]
    assert spec("hash", evaluators=[]).content_hash() == spec("hash").content_hash()


def test_a_judge_evaluator_naming_a_missing_config_is_refused_at_push(tmp_path: Path) -> None:
    reg = Registry(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        bad = spec("judged", evaluators=[{"name": "helpful", "kind": "judge", "judge": "grader"}])
        with pytest.raises(ValidationFailed, match=r"evaluators\[0\].judge: 'helpful' names judge config "
                                                   r"'grader', which does not exist"):
            reg.push_config(bad)
        reg.push_config(spec("grader", system="Grade the answer.", response_format={  # a judge: a schema
            "type": "json_schema", "name": "grade",
            "schema": {"type": "object", "properties": {"score": {"type": "number"}}}}))
        too_new = spec("judged", evaluators=[{"name": "helpful", "kind": "judge", "judge": "grader",
                                              "version": 3}])
        with pytest.raises(ValidationFailed, match=r"evaluators\[0\].version: .* latest version is v1"):
            reg.push_config(too_new)
        assert reg.push_config(bad).version == 1
    finally:
        reg.close()


def test_sampling_is_a_deterministic_function_of_the_request_id() -> None:
    points = [sample_point(f"req-{i}") for i in range(4000)]
    assert points == [sample_point(f"req-{i}") for i in range(4000)]
    share = sum(p < 0.1 for p in points) / len(points)
    assert 0.08 < share < 0.12
    evs = compile_evaluators([EvaluatorSpec(name="all", kind="valid_json"),
                              EvaluatorSpec(name="tenth", kind="valid_json", sample=0.1),
                              EvaluatorSpec(name="pair", kind="pairwise", judge="grader")],
                             EvaluatorContext("bot", 1), ScorerRegistry())
    assert [e.name for e in chosen(evs, 0.05, "live")] == ["all", "tenth"]
    assert [e.name for e in chosen(evs, 0.5, "shadow")] == ["all", "pair"]
    assert evs[2].scorer is None  # no judge plug-in registered in this registry


def test_a_plug_in_scorer_is_built_for_its_kind() -> None:
    class Fixed:
        def __init__(self, ev: EvaluatorSpec, ctx: EvaluatorContext) -> None:
            self.name = ev.name

        async def score(self, sample: Sample) -> list[Score]:
            return [Score(self.name, 0.75, True, "good", "judged")]

    scorers = ScorerRegistry()
    scorers.register("judge", Fixed)
    [ev] = compile_evaluators([EvaluatorSpec(name="helpful", kind="judge", judge="grader")],
                              EvaluatorContext("bot", 1), scorers)
    assert ev.scorer is not None
    assert asyncio.run(ev.scorer.score(_sample("x"))) == [Score("helpful", 0.75, True, "good", "judged")]
    with pytest.raises(ValueError, match="outside"):
        Score("helpful", 1.5, True)


@pytest.mark.parametrize(("gate", "words"), [
    ({"metric": "eval_pass_rate", "margin": 0.1}, "needs 'evaluator'"),
    ({"metric": "eval_score", "margin": 0.1}, "needs 'evaluator'"),
    ({"metric": "error_rate", "margin": 0.1, "evaluator": "json_ok"}, "'evaluator' belongs to eval_score"),
    ({"metric": "eval_score", "evaluator": "json_ok", "margin": 0}, "margin 0"),
])
def test_eval_gates_need_an_evaluator(gate: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        Gate.model_validate(gate)


def test_an_eval_gate_names_an_evaluator_the_candidate_declares() -> None:
    gate = {"metric": "eval_pass_rate", "evaluator": "json_ok", "margin": 0.1}
    plan = Plan.model_validate({"stages": [{"name": "shadow", "kind": "shadow", "gates": [gate]},
                                           {"name": "full", "kind": "full"}]})
    assert Gate.model_validate(gate).label == "json_ok_pass_rate"
    declared = spec("bot", evaluators=[{"name": "json_ok", "kind": "valid_json"}])
    assert undeclared_evaluator(plan, declared) is None
    problem = undeclared_evaluator(plan, spec("bot"))
    assert problem is not None and problem.startswith("plan.stages[0].gates[0].evaluator: 'json_ok' is not")


@pytest.mark.parametrize(("cand_mean", "verdict"), [(0.5, "FAIL"), (0.9, "PASS")])
def test_eval_score_fails_a_lower_mean_and_passes_an_equal_one(cand_mean: float, verdict: str) -> None:
    from canaryflow.domain.judge import MeanStrata, judge_mean_strata

    gate = Gate.model_validate({"metric": "eval_score", "evaluator": "helpful", "margin": 0.1})
    noise = [0.02 * ((k % 3) - 1) for k in range(40)]  # per-interval means vary a little
    strata = MeanStrata([100 * (cand_mean + e) for e in noise], [100.0] * 40,
                        [400 * (0.9 - e) for e in noise], [400.0] * 40)
    m = judge_mean_strata(gate, strata, at=0.0, higher_is_better=True)
    assert m.verdict.value == verdict, m.summary()
    assert m.evidence.allowed == pytest.approx(0.81, abs=0.002)
    lo, hi = m.evidence.interval or (0.0, 0.0)
    assert lo <= cand_mean - 0.9 <= hi
