"""Feedback counts once per request, attributed to the request itself (version, variation, segment, serving
time) on any replica sharing the registry; refused after the window, or with another client key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import openai
import pytest

from canaryflow.errors import Conflict, NotFound, Unauthorized
from canaryflow.gateway.app import build_app
from canaryflow.gateway.auth import KeyStore, RequireKey
from canaryflow.metrics.instruments import Metrics
from canaryflow.registry import Registry
from canaryflow.registry.feedback import FeedbackCounts, feedback_counts
from canaryflow.serving.client import Client
from canaryflow.serving.request_ids import CLIENT_KEY
from canaryflow.serving.traffic import TrafficPlane
from canaryflow.sim.server import ThreadedServer
from tests.traffic_stack import SEGMENTS, Stack, running_stack, spec

INTERNAL = {"key": "u-1", "attributes": {"email": "a@acme.com"}}


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(f"sqlite:///{tmp_path / 'r.db'}")
    reg.push_segments(SEGMENTS, by="test")
    reg.push_config(spec("fb-bot"), author="test")
    reg.set_stable("fb-bot", 1, by="test", reason="test")
    try:
        yield reg
    finally:
        reg.close()


def _replica(registry: Registry, **options: float) -> tuple[TrafficPlane, Metrics]:
    metrics = Metrics()
    return TrafficPlane(Client(registry, refresh_interval=60), registry=registry, metrics=metrics,
                        **options), metrics  # type: ignore[arg-type]


def _net(m: Metrics, sentiment: str) -> float:
    """What Prometheus sums: feedback minus feedback replaced later (each request once)."""
    return (m.value("canaryflow_feedback_total", {"sentiment": sentiment})
            - m.value("canaryflow_feedback_retracted_total", {"sentiment": sentiment}))


def test_a_later_feedback_replaces_the_earlier_one_on_any_replica(registry: Registry) -> None:
    one, m1 = _replica(registry)
    two, m2 = _replica(registry)
    res = one.prepare("fb-bot", context=INTERNAL, variables={"product": "Acme"})
    served = datetime.now(UTC)
    rid = one.new_request_id(res)
    other = one.new_request_id(res)
    for _ in range(5):  # replayed: still one request with negative feedback
        one.feedback(rid, "negative")
    labels = two.feedback(rid, "positive", "fine after all")  # another replica: attributed from the id
    assert (labels.config, labels.version, labels.variation, labels.segment) == ("fb-bot", 1, "stable",
                                                                                   "internal")
    one.feedback(other, "negative")
    counts = feedback_counts(registry, "fb-bot", 1, "stable")
    assert counts == FeedbackCounts(positive=1, negative=1) and counts.total == 2
    assert _net(m1, "negative") + _net(m2, "negative") == 1
    assert _net(m1, "positive") + _net(m2, "positive") == 1
    # attributed to the requests' serving time and segment, not to when the feedback came
    later = served + timedelta(minutes=5)
    assert feedback_counts(registry, "fb-bot", 1, "stable", served_from=later).total == 0
    assert feedback_counts(registry, "fb-bot", 1, "stable", served_from=served - timedelta(seconds=5),
                           served_to=later, segments=["internal"]).total == 2
    assert feedback_counts(registry, "fb-bot", 1, "stable", segments=["none"]).total == 0


def test_feedback_is_refused_after_the_window_with_another_key_or_a_forged_id(registry: Registry) -> None:
    plane, _ = _replica(registry, feedback_window=60.0)
    old = plane.ids.new("fb-bot", 1, "stable", "none", served_at=time.time() - 61)
    with pytest.raises(Conflict, match="feedback window"):
        plane.feedback(old, "negative")
    token = CLIENT_KEY.set("a1b2c3d4e5f6")
    try:
        rid = plane.new_request_id(plane.prepare("fb-bot", variables={"product": "Acme"}))
    finally:
        CLIENT_KEY.reset(token)
    with pytest.raises(Unauthorized, match="client key"):
        plane.feedback(rid, "negative")
    assert plane.feedback(rid, "negative", client_key="a1b2c3d4e5f6").config == "fb-bot"
    forged = rid[:-6] + ("AAAAAA" if not rid.endswith("AAAAAA") else "BBBBBB")
    with pytest.raises(NotFound, match="unknown request id"):
        plane.feedback(forged, "negative")
    assert feedback_counts(registry, "fb-bot", 1, "stable").total == 1


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str, str, str]]:
    tmp = tmp_path_factory.mktemp("fbkeys")
    with running_stack(tmp, configs=[spec("fb-gw")]) as stack:
        store = KeyStore(tmp / "keys.json")
        _, key_a = store.add("app-a")
        _, key_b = store.add("app-b")
        server = ThreadedServer(RequireKey(build_app(stack.plane), store))
        server.start()
        try:
            yield stack, server.url, key_a, key_b
        finally:
            server.stop()


def test_gateway_feedback_needs_the_requests_own_client_key(keyed: tuple[Stack, str, str, str]) -> None:
    stack, url, key_a, key_b = keyed
    oai = openai.OpenAI(base_url=f"{url}/v1", api_key=key_a, max_retries=0)
    raw = oai.chat.completions.with_raw_response.create(
        model="fb-gw", messages=[{"role": "user", "content": "hi"}],
        extra_body={"canaryflow": {"variables": {"product": "Acme"}}})
    rid = raw.headers["x-canaryflow-request-id"]
    feedback = httpx.post
    other = feedback(f"{url}/v1/feedback", json={"request_id": rid, "sentiment": "negative"},
                     headers={"authorization": f"Bearer {key_b}"})
    assert other.status_code == 403 and "client key" in other.json()["error"]["message"]
    for sentiment in ("negative", "positive"):
        ok = feedback(f"{url}/v1/feedback", json={"request_id": rid, "sentiment": sentiment},
                      headers={"authorization": f"Bearer {key_a}"})
        assert ok.status_code == 200, ok.text
    assert feedback_counts(stack.registry, "fb-gw", 1, "stable") == FeedbackCounts(positive=1, negative=0)
