"""Implicit feedback through the gateway: one row per request and event, attributed to the request, counted
in metrics per event, refused with the field named when it cannot be carried."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from canaryflow.domain.implicit import check_event
from canaryflow.errors import ValidationFailed
from canaryflow.feedback_report import feedback_report, format_report
from canaryflow.registry.implicit import event_summaries
from tests.traffic_stack import Stack, running_stack, spec

Q = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.mark.parametrize(("event", "value", "field"), [
    ("clicked", None, "event"), ("copied", 1, "value"), ("edited", None, "value"), ("edited", 2.5, "value"),
    ("edited", -1, "value"), ("dwell_seconds", float("nan"), "value"), ("dwell_seconds", True, "value"),
])
def test_an_event_that_cannot_be_carried_is_refused_naming_the_field(event: str, value: object,
                                                                    field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        check_event(event, value)
    assert info.value.source == field


def test_valued_and_plain_events_are_accepted() -> None:
    assert check_event("edited", 12) == ("edited", 12.0)
    assert check_event("dwell_seconds", 3.5) == ("dwell_seconds", 3.5)
    assert check_event("task_completed") == ("task_completed", None)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("implicit"), configs=[spec("imp-bot", system="Answer.")]) as s:
        yield s


def test_track_counts_once_per_request_and_event_attributed_to_the_request(stack: Stack) -> None:
    oai = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="x", max_retries=0)
    rid = oai.chat.completions.with_raw_response.create(model="imp-bot", messages=Q, user="u-1"
                                                        ).headers["x-canaryflow-request-id"]
    track = f"{stack.url}/v1/track"
    ok = httpx.post(track, json={"request_id": rid, "event": "edited", "value": 12})
    assert ok.status_code == 200 and ok.json()["version"] == 1 and ok.json()["variation"] == "stable"
    # the same event again replaces the first: the request still counts once, with its latest value
    assert httpx.post(track, json={"request_id": rid, "event": "edited", "value": 20}).status_code == 200
    assert httpx.post(track, json={"request_id": rid, "event": "copied"}).status_code == 200
    labels = {"config": "imp-bot", "version": "1", "variation": "stable"}
    assert stack.count("canaryflow_implicit_feedback_total", **labels, event="edited") == 1
    assert stack.count("canaryflow_implicit_feedback_total", **labels, event="copied") == 1
    assert stack.count("canaryflow_implicit_feedback_value_total", **labels, event="edited") - \
        stack.count("canaryflow_implicit_feedback_value_retracted_total", **labels, event="edited") == 20
    # every event's series exists at 0 before its first event
    assert stack.count("canaryflow_implicit_feedback_total", **labels, event="abandoned") == 0
    assert 'event="abandoned"' in httpx.get(f"{stack.url}/metrics").text
    rows = {(s.event, s.requests, s.mean_value) for s in event_summaries(stack.registry, "imp-bot")}
    assert rows == {("edited", 1, 20.0), ("copied", 1, None)}
    # `canaryflow feedback` shows them per version
    text = format_report(feedback_report(stack.registry, "imp-bot"), "imp-bot", "1h")
    assert "implicit feedback" in text and "edited" in text and "mean 20" in text, text


def test_track_refuses_what_it_cannot_carry(stack: Stack) -> None:
    track = f"{stack.url}/v1/track"
    oai = openai.OpenAI(base_url=f"{stack.url}/v1", api_key="x", max_retries=0)
    rid = oai.chat.completions.with_raw_response.create(model="imp-bot", messages=Q, user="u-2"
                                                        ).headers["x-canaryflow-request-id"]
    assert httpx.post(track, json={"request_id": "nope", "event": "copied"}).status_code == 404
    for body, param in [({"request_id": rid, "event": "clicked"}, "event"),
                        ({"request_id": rid, "event": "copied", "value": 3}, "value"),
                        ({"request_id": rid, "event": "edited"}, "value"),
                        ({"request_id": rid, "event": "copied", "comment": "x"}, "comment")]:
        bad = httpx.post(track, json=body)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == param, bad.text
