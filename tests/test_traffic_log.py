"""The sampled traffic log: sampling rate, redaction before storage, retention cap, replay samples."""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import pytest

from canaryflow.registry import Registry
from canaryflow.registry import traffic as tlog
from tests.traffic_stack import running_stack, spec

CTX = {"canaryflow": {"user": "u-1", "variables": {"product": "Acme"}}}


def _record(i: int, key: str = "k", version: int = 1, error: str | None = None) -> tlog.TrafficRecord:
    return tlog.TrafficRecord(request_id=f"{key}-{i}", config_key=key, version=version, variation="stable",
                              request={"messages": [{"role": "user", "content": f"question {i}"}]},
                              response={"text": f"answer {i}"}, error_type=error)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Registry:
    if request.param == "sqlite":
        return Registry(f"sqlite:///{tmp_path / 'r.db'}")
    return Registry(request.getfixturevalue("postgres_url"))


def test_sampling_rate() -> None:
    log = tlog.TrafficLog(None, rate=0.3, rng=random.Random(11))
    hits = sum(log.sampled() for _ in range(2000))
    assert 520 <= hits <= 680  # 600 expected; ±5 standard deviations
    assert not any(tlog.TrafficLog(None, rate=0.0).sampled() for _ in range(100))
    assert all(tlog.TrafficLog(None, rate=1.0).sampled() for _ in range(100))
    with pytest.raises(ValueError, match="rate"):
        tlog.TrafficLog(None, rate=1.5)


def test_default_redactor() -> None:
    text = ("mail jane.doe+x@corp.example.org, key sk-proj-abcdefghijklmnop1234 "
            "and Bearer abcdefghijklmnopqrstu")
    assert tlog.default_redactor(text) == "mail [EMAIL], key [SECRET] and [SECRET]"
    assert tlog.default_redactor("What is 2 + 2?") == "What is 2 + 2?"


def test_retention_cap_and_replay_sample(registry: Registry) -> None:
    tlog.record_traffic(registry, [_record(i) for i in range(12)], retention=5)
    tlog.record_traffic(registry, [_record(i, key="other") for i in range(3)], retention=5)
    tlog.record_traffic(registry, [_record(99, error="timeout"), _record(100, version=2)], retention=5)
    kept = tlog.traffic(registry, "k")
    assert [r.request_id for r in kept] == ["k-100", "k-99", "k-11", "k-10", "k-9"]
    assert len(tlog.traffic(registry, "other")) == 3
    sample = tlog.sample_traffic(registry, "k", 10)
    assert sorted(r.request_id for r in sample) == ["k-10", "k-100", "k-11", "k-9"]  # errors are not replayed
    assert [r.request_id for r in tlog.sample_traffic(registry, "k", 10, version=2)] == ["k-100"]
    assert len(tlog.sample_traffic(registry, "k", 2)) == 2


def test_redaction_hook_runs_before_storage(registry: Registry) -> None:
    def hook(text: str) -> str:
        return text.replace("question", "[Q]")

    tlog.record_traffic(registry, [_record(1)], redactor=hook)
    stored = tlog.traffic(registry, "k")[0]
    assert stored.request["messages"][0]["content"] == "[Q] 1"


def test_batches_are_written_off_the_request_path(registry: Registry) -> None:
    log = tlog.TrafficLog(registry, rate=1.0, flush_interval=3600)
    for i in range(3):
        log.add(_record(i))
    assert tlog.traffic(registry, "k") == []  # buffered, nothing written yet
    log.close()
    assert len(tlog.traffic(registry, "k")) == 3 and log.written == 3


def test_gateway_logs_redacted_requests(tmp_path: Path) -> None:
    with running_stack(tmp_path, configs=[spec("logged"), spec("unlogged")], traffic_rate=1.0,
                       retention=3) as s:
        for i in range(4):
            r = httpx.post(f"{s.url}/v1/chat/completions", json={
                "model": "logged", **CTX,
                "messages": [{"role": "user",
                              "content": f"#{i} I am bob@example.com, my key is sk-abcdefghij0123456789"}]})
            assert r.status_code == 200
        assert s.plane.traffic_log is not None
        s.plane.traffic_log.flush()
        rows = tlog.traffic(s.registry, "logged")
        assert len(rows) == 3  # retention cap
        content = rows[0].request["messages"][-1]["content"]
        assert content == "#3 I am [EMAIL], my key is [SECRET]"
        assert rows[0].request["variables"] == {"product": "Acme"}  # what shadow replay re-renders with
        assert rows[0].response["text"] and rows[0].version == 1 and rows[0].latency_ms is not None
        assert rows[0].request_id == r.headers["x-canaryflow-request-id"]
    with running_stack(tmp_path / "off", configs=[spec("unlogged")], traffic_rate=0.0) as s:
        assert s.plane.traffic_log is None
        httpx.post(f"{s.url}/v1/chat/completions", json={
            "model": "unlogged", **CTX, "messages": [{"role": "user", "content": "hi"}]})
        assert tlog.traffic(s.registry, "unlogged") == []
