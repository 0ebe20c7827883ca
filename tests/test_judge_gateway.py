"""LLM-as-judge evaluators in the gateway: judge configs called through the traffic plane, pairwise in shadow,
the judge's own metrics and cost, and its budget per hour (gateway + simulator over HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from canaryflow.domain.serving import Exposure
from canaryflow.feedback_report import feedback_report, format_report
from canaryflow.metrics.compare import Row, compare, format_table
from canaryflow.registry import evaluations
from canaryflow.sim import QUESTIONS
from tests.servers import Prometheus, wait_until
from tests.traffic_stack import Stack, running_stack, spec

SCORE = {"type": "object", "required": ["score", "reason"],
         "properties": {"score": {"type": "number", "minimum": 0, "maximum": 1}, "label": {"type": "string"},
                        "reason": {"type": "string"}}}
WINNER = {"type": "object", "required": ["winner", "reason"],
          "properties": {"winner": {"type": "string", "enum": ["A", "B", "tie"]},
                         "reason": {"type": "string"}}}


def judge(key: str, schema: dict[str, Any], rubric: str) -> Any:
    return spec(key, model="sim-judge", system=rubric,
                response_format={"type": "json_schema", "name": "verdict", "schema": schema})


GRADE = {"name": "grade", "kind": "judge", "judge": "answer-judge"}
PREF = {"name": "pref", "kind": "pairwise", "judge": "pair-judge"}



@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    judges = [judge("answer-judge", SCORE, "Grade the answer: 1 if right, 0 if wrong."),
              judge("pair-judge", WINNER, "Which answer is right? [sim:judge_bias=0.3]")]
    with running_stack(tmp_path_factory.mktemp("judges"), configs=judges) as s:
        s.registry.push_config(spec("qa", system="Answer in one word. [sim:quality=0.95]",
                                    evaluators=[GRADE]))
        s.registry.push_config(spec("qa", system="Answer in one word. [sim:quality=0.1]",
                                    evaluators=[GRADE, PREF]))  # worse answers, same errors and latency
        s.registry.push_config(judge("answer-judge", SCORE, "Grade strictly: 1 if right, 0 if wrong."))
        budget = {**GRADE, "budget_per_hour": {"calls": 3}, "version": 2}  # pins the judge's v2
        s.registry.push_config(spec("cheap", system="Answer in one word.", evaluators=[budget]))
        shadow = Exposure(candidate_version=2, stage="shadow", stage_kind="shadow", shadow_fraction=1.0)
        s.registry.apply_exposure("qa", shadow, by="test", reason="t", source="cli")
        s.plane.resolver.refresh(force=True)  # type: ignore[attr-defined]
        yield s


def ask(stack: Stack, key: str, n: int) -> list[str]:
    client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="x", max_retries=0)
    ids = []
    for i in range(n):
        q = QUESTIONS[i % len(QUESTIONS)].prompt
        raw = client.chat.completions.with_raw_response.create(
            model=key, messages=[{"role": "user", "content": q}], user=f"u-{i}")
        ids.append(raw.headers["x-canaryflow-request-id"])
    return ids


def test_judges_score_live_and_shadow_answers_through_the_traffic_plane(stack: Stack) -> None:
    ids = ask(stack, "qa", 20)
    stable = {"config": "qa", "version": "1", "variation": "stable"}
    shadow = {"config": "qa", "version": "2", "variation": "shadow"}
    for side, name in ((stable, "grade"), (shadow, "grade"), (shadow, "pref")):
        wait_until(lambda side=side, name=name: stack.count(  # type: ignore[misc]
            "canaryflow_eval_score_count", **side, evaluator=name) == 20, name)
    stable_mean = stack.count("canaryflow_eval_score_sum", **stable, evaluator="grade") / 20
    shadow_mean = stack.count("canaryflow_eval_score_sum", **shadow, evaluator="grade") / 20
    assert stable_mean > 0.7 > 0.4 > shadow_mean  # the judge sees the worse answers
    wins = stack.count("canaryflow_eval_total", **shadow, evaluator="pref", result="pass")
    win_rate = stack.count("canaryflow_eval_score_sum", **shadow, evaluator="pref") / 20
    assert wins <= 3 and win_rate < 0.3
    # the judges' own series: requests, tokens and cost under their config keys
    assert stack.count("canaryflow_requests_total", config="answer-judge", outcome="success") == 40
    assert stack.count("canaryflow_requests_total", config="pair-judge", outcome="success") == 20
    assert stack.count("gen_ai_client_token_usage_count", config="pair-judge",
                       gen_ai_token_type="input") == 20
    assert stack.count("canaryflow_eval_dropped_total", config="qa") == 0
    # stored with the judge's reason; the pairwise label is the candidate's result
    wait_until(lambda: len(evaluations.for_request(stack.registry, ids[0])) == 3, "rows of one request")
    rows = {(r.evaluator, r.variation): r for r in evaluations.for_request(stack.registry, ids[0])}
    pair = rows[("pref", "shadow")]
    assert pair.label in ("win", "tie", "loss")
    assert pair.score == {"win": 1.0, "tie": 0.5, "loss": 0.0}[pair.label]
    assert "known answer" in rows[("grade", "stable")].reason


def test_a_judge_over_its_budget_drops_samples_and_counts_them(stack: Stack) -> None:
    ask(stack, "cheap", 6)
    labels = {"config": "cheap", "evaluator": "grade"}
    wait_until(lambda: stack.count("canaryflow_eval_dropped_total", **labels, reason="budget") == 3,
               "3 drops")
    assert stack.count("canaryflow_eval_score_count", **labels) == 3
    assert stack.count("canaryflow_requests_total", config="cheap", outcome="success") == 6
    # the pinned judge version serves as variation "pinned", metered under the judge's config
    assert stack.count("canaryflow_requests_total", config="answer-judge", version="2", variation="pinned",
                       outcome="success") == 3


def test_feedback_ranks_lowest_scores_lost_pairs_and_most_edited_answers(stack: Stack) -> None:
    ids = ask(stack, "qa", 6)
    stack.plane.track(ids[0], "edited", 42.0)
    stack.plane.track(ids[1], "edited", 3.0)
    wait_until(lambda: len(evaluations.for_request(stack.registry, ids[-1])) == 3, "the last request's rows")
    stack.plane.traffic_log.flush()  # type: ignore[union-attr]
    reports = {r.version: r for r in feedback_report(stack.registry, "qa", limit=3)}
    cand, stable = reports[2], reports[1]
    assert {(q.evaluator, q.variation) for q in cand.quality} == {("grade", "shadow"), ("pref", "shadow")}
    assert cand.lost and all(i.by == "pref" and i.label == "loss" and i.value == 0.0 for i in cand.lost)
    assert all("known answer" in i.reason for i in cand.lost)
    assert cand.lowest and [i.value for i in cand.lowest] == sorted(i.value for i in cand.lowest)
    assert [(i.request_id, i.value) for i in stable.most_edited][:2] == [(ids[0], 42.0), (ids[1], 3.0)]
    assert stable.most_edited[0].question  # the sampled request behind it
    text = format_report(list(reports.values()), "qa")
    assert "inputs where it lost to stable (pairwise judge):" in text and "most edited answers:" in text
    assert "edit distance 42" in text and "lowest-scored answers:" in text


@pytest.mark.prometheus
def test_compare_shows_each_evaluators_mean_beside_the_versions(stack: Stack, prometheus: Prometheus) -> None:
    address = stack.url.removeprefix("http://")
    prometheus.add_target(address)
    prometheus.wait_scraped(address)
    ask(stack, "qa", 16)  # scored after Prometheus's first scrape: increase() sees them
    scored = 8.0

    def shadow_row() -> Row | None:
        rows = compare(prometheus.url, "qa", window="10m", by="variation")
        row = next((r for r in rows if r.group == "shadow v2"), None)
        # increase() extrapolates over the window: about as many as scored
        got = row.quality.get("pref", {}).get("scored", 0.0) if row is not None else 0.0
        return row if got >= scored / 2 else None

    wait_until(lambda: shadow_row() is not None, "the scores scraped", timeout=30)
    row = shadow_row()
    stable = next(r for r in compare(prometheus.url, "qa", window="10m", by="variation")
                  if r.group == "stable v1")
    assert row is not None and row.quality["pref"]["mean"] < 0.5  # loses to stable more than it wins
    assert row.quality["grade"]["mean"] < stable.quality["grade"]["mean"] - 0.3
    table = format_table(compare(prometheus.url, "qa", window="10m", by="variation"), "variation")
    assert "online evaluators" in table and "shadow v2: grade 0." in table and "pref 0." in table
