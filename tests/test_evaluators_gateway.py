"""Online evaluators in the gateway: sampled answers scored off the request path, exported and stored."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import openai
import pytest

from canaryflow.domain.evaluators import (
    EvaluatorContext,
    EvaluatorSpec,
    Sample,
    Score,
    ScorerRegistry,
    sample_point,
)
from canaryflow.domain.serving import Exposure
from canaryflow.registry import evaluations
from tests.servers import wait_until
from tests.traffic_stack import Stack, running_stack, spec

SCHEMA = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"],
          "additionalProperties": False}
FORMAT = {"type": "json_schema", "name": "order_status", "schema": SCHEMA}
Q = [{"role": "user", "content": "Where is order A-1?"}]
EVALS = [{"name": "schema", "kind": "match_schema"}, {"name": "half", "kind": "valid_json", "sample": 0.5},
         {"name": "short", "kind": "length", "max": 5}]



@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    configs = [spec("ev-bot", system="Answer with the order status.", response_format=FORMAT,
                    evaluators=EVALS),
               spec("ev-shadow", system="Answer with the order status.", response_format=FORMAT),
               spec("ev-idle", evaluators=[{"name": "nonempty", "kind": "non_empty"}])]
    with running_stack(tmp_path_factory.mktemp("evals"), configs=configs) as s:
        # the candidate declares the evaluator and answers off its schema; stable declares none
        s.registry.push_config(spec("ev-shadow", system="Status. [sim:schema_error_rate=1]",
                                    response_format=FORMAT, evaluators=[{"name": "schema",
                                                                         "kind": "match_schema"}]))
        shadow = Exposure(candidate_version=2, stage="shadow", stage_kind="shadow", shadow_fraction=1.0)
        s.registry.apply_exposure("ev-shadow", shadow, by="test", reason="t", source="cli")
        s.plane.resolver.refresh(force=True)  # type: ignore[attr-defined]
        yield s


@pytest.fixture
def oai(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key="x", max_retries=0)


def test_series_exist_at_zero_before_the_first_evaluation(stack: Stack) -> None:
    text = stack.metrics.exposition().decode()
    for line in ('canaryflow_eval_total{config="ev-idle",', 'canaryflow_eval_score_count{config="ev-idle",',
                 'canaryflow_eval_dropped_total{config="ev-idle",'):
        assert any(row.startswith(line) and 'evaluator="nonempty"' in row and row.endswith(" 0.0")
                   for row in text.splitlines()), line


def test_answers_are_scored_by_a_sample_of_the_request_id_exported_and_stored(stack: Stack,
                                                                               oai: openai.OpenAI) -> None:
    ids = []
    for n in range(16):
        raw = oai.chat.completions.with_raw_response.create(model="ev-bot", messages=Q, user=f"u-{n}")
        ids.append(raw.headers["x-canaryflow-request-id"])
    with oai.chat.completions.create(model="ev-bot", messages=Q, stream=True) as stream:
        for _ in stream:
            pass
    half = sum(sample_point(i) < 0.5 for i in ids)
    base = {"config": "ev-bot", "version": "1", "variation": "stable"}
    wait_until(lambda: stack.count("canaryflow_eval_score_count", **base, evaluator="schema") == 17,
               "17 scores")
    assert stack.count("canaryflow_eval_total", **base, evaluator="schema", result="pass") == 17
    assert stack.count("canaryflow_eval_total", **base, evaluator="short", result="fail") == 17
    assert stack.count("canaryflow_eval_score_sum", **base, evaluator="short") == 0
    # sampling: exactly the requests whose id hashes below 0.5 (the stream's id is not in `ids`)
    wait_until(lambda: stack.count("canaryflow_eval_score_count", **base, evaluator="half") >= half, "half")
    assert stack.count("canaryflow_eval_score_count", **base, evaluator="half") in (half, half + 1)
    wait_until(lambda: len(evaluations.for_request(stack.registry, ids[0])) >= 2, "stored rows")
    rows = evaluations.for_request(stack.registry, ids[0])
    sampled = {"half"} if sample_point(ids[0]) < 0.5 else set()
    assert {r.evaluator for r in rows} == {"schema", "short"} | sampled
    short = next(r for r in rows if r.evaluator == "short")
    assert (short.passed, short.score, short.label, short.source, short.variation) == (
        False, 0.0, "length", "live", "stable")
    assert "status" not in short.reason  # a reason, never the answer

    def summary() -> dict[tuple[str, str], evaluations.EvaluatorSummary]:
        return {(s.evaluator, s.variation): s for s in evaluations.summaries(stack.registry, "ev-bot")}

    wait_until(lambda: all(summary()[(e, "stable")].scored == 17 for e in ("schema", "short")), "all stored")
    summary = summary()
    assert summary[("schema", "stable")].pass_rate == 1.0
    assert summary[("short", "stable")].mean_score == 0.0


def test_in_shadow_both_sides_are_scored_by_the_candidates_evaluators(stack: Stack,
                                                                      oai: openai.OpenAI) -> None:
    ids = [oai.chat.completions.with_raw_response.create(model="ev-shadow", messages=Q, user=f"s-{n}")
           .headers["x-canaryflow-request-id"] for n in range(5)]
    stable = {"config": "ev-shadow", "version": "1", "variation": "stable", "evaluator": "schema"}
    shadow = {**stable, "version": "2", "variation": "shadow"}
    wait_until(lambda: stack.count("canaryflow_eval_total", **shadow) == 5, "5 shadow scores")
    wait_until(lambda: stack.count("canaryflow_eval_total", **stable) == 5, "5 stable scores")
    assert stack.count("canaryflow_eval_total", **stable, result="pass") == 5
    assert stack.count("canaryflow_eval_total", **shadow, result="fail") == 5
    wait_until(lambda: len(evaluations.for_request(stack.registry, ids[-1])) == 2, "both rows of one request")
    rows = {(r.variation, r.source, r.label) for r in evaluations.for_request(stack.registry, ids[-1])}
    assert rows == {("stable", "live", "pass"), ("shadow", "shadow", "schema_mismatch")}
    worst = evaluations.lowest(stack.registry, "ev-shadow", 2, limit=3)
    assert [r.score for r in worst] == [0.0] * 3 and {r.request_id for r in worst} <= set(ids)


def test_a_full_queue_drops_and_counts_samples_and_requests_are_unaffected(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    release = threading.Event()

    class Held:  # a plug-in scorer that waits until released: the worker holds one job, the queue one more
        def __init__(self, ev: EvaluatorSpec, ctx: EvaluatorContext) -> None:
            self.name = ev.name

        async def score(self, sample: Sample) -> list[Score]:
            while not release.is_set():
                await asyncio.sleep(0.01)
            return [Score(self.name, 1.0, True, "pass")]

    scorers = ScorerRegistry()
    scorers.register("judge", Held)
    held = [{"name": "held", "kind": "judge", "judge": "grader"}]
    grader = spec("grader", system="Grade.", response_format={  # a judge declares its output schema
        "type": "json_schema", "name": "grade", "schema": {"type": "object", "properties": {
            "score": {"type": "number"}}}})
    configs = [grader, spec("burst", system="Answer.", evaluators=held)]
    with running_stack(tmp_path_factory.mktemp("burst"), configs=configs, evaluation_queue=1,
                       scorers=scorers) as s:
        s.plane.evaluation.concurrency = 1
        oai = openai.OpenAI(base_url=f"{s.url}/v1", api_key="x", max_retries=0)
        for n in range(12):
            raw = oai.chat.completions.with_raw_response.create(model="burst", messages=Q, user=f"b-{n}")
            assert raw.status_code == 200 and raw.parse().choices[0].message.content
        labels = {"config": "burst", "evaluator": "held"}
        wait_until(lambda: s.plane.evaluation.stats.dropped == 10, "10 drops")
        assert s.count("canaryflow_eval_dropped_total", **labels, reason="queue_full") == 10
        assert s.count("canaryflow_requests_total", config="burst", outcome="success") == 12
        release.set()
        wait_until(lambda: s.count("canaryflow_eval_total", **labels, result="pass") == 2,
                   "the 2 kept scored")


def test_the_feedback_view_shows_evaluator_results_and_the_lowest_scored_requests(
        stack: Stack, oai: openai.OpenAI) -> None:
    from canaryflow.feedback_report import feedback_report, format_report

    rid = oai.chat.completions.with_raw_response.create(model="ev-shadow", messages=Q, user="view").headers[
        "x-canaryflow-request-id"]
    wait_until(lambda: len(evaluations.for_request(stack.registry, rid)) == 2, "both sides stored")
    reports = {r.version: r for r in feedback_report(stack.registry, "ev-shadow")}
    shadow = next(e for e in reports[2].quality if e.variation == "shadow")
    assert (shadow.evaluator, shadow.pass_rate, shadow.mean_score) == ("schema", 0.0, 0.0)
    assert reports[1].quality[0].pass_rate == 1.0 and reports[1].lowest == []
    worst = reports[2].lowest
    assert worst and all(w.value == 0.0 and w.label == "schema_mismatch" for w in worst)
    assert rid in {w.request_id for w in worst}  # the latest first among equal scores
    assert next(w for w in worst if w.request_id == rid).question == "Where is order A-1?"  # traffic log
    text = format_report(list(reports.values()), "ev-shadow")
    assert "online evaluators" in text and "lowest-scored answers" in text and rid in text
