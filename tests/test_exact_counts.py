"""Exact counts end to end: three replicas exporting the real instruments, scraped by a real Prometheus,
one restarted mid-stage and new label sets born during the stage — the gates read exactly the requests
sent, in whole numbers (not ``increase()``'s extrapolations)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import start_http_server

from canaryflow.domain.analysis import AnalysisRequest
from canaryflow.domain.gates import Gate, Verdict
from canaryflow.metrics.instruments import Labels, Metrics, record_feedback, record_request
from canaryflow.metrics.measure import measure_sync
from canaryflow.metrics.source import PrometheusSource
from tests.servers import Prometheus, free_port

pytestmark = pytest.mark.prometheus


@dataclass
class Replica:
    """One gateway replica's instruments behind its own ``/metrics`` port (restartable on that port)."""

    port: int
    metrics: Metrics = field(default_factory=Metrics)
    server: Any = None
    thread: Any = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        registry = self.metrics.registry
        self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=registry)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def restart(self) -> None:
        """A new process on the same port: every counter starts again from nothing."""
        self.stop()
        self.metrics = Metrics()
        self.start()


@pytest.fixture
def replicas(prometheus: Prometheus) -> Iterator[list[Replica]]:
    reps = [Replica(free_port()) for _ in range(3)]
    for r in reps:
        r.start()
        prometheus.add_target(r.address)
    try:
        yield reps
    finally:
        for r in reps:
            r.stop()


def _labels(key: str, version: int, variation: str, segment: str = "none") -> Labels:
    return Labels(key, version, variation, segment, "openai", "sim-model")


def _zeros(r: Replica, key: str) -> None:
    """What the traffic plane does when it first compiles a config: every series a gate reads at 0."""
    r.metrics.prepare([(_labels(key, version, variation, segment), [("anthropic", "claude-haiku-4-5")])
                       for version, variation in ((1, "stable"), (2, "candidate"))
                       for segment in ("none", "internal")])


def _poll(prometheus: Prometheus, promql: str, want: float, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        result = prometheus.query(promql)
        last = [item["value"][1] for item in result]  # type: ignore[index]
        if result and abs(sum(float(v) for v in last) - want) < 1e-9:  # type: ignore[arg-type]
            return
        time.sleep(0.2)
    raise TimeoutError(f"Prometheus never saw {promql} == {want} (last {last})")


def _scraped(prometheus: Prometheus, r: Replica, key: str) -> None:
    """Wait until Prometheus holds this replica's current counts (and the number of its series)."""
    want = r.metrics.value("canaryflow_requests_total", {"config": key})
    sel = f'canaryflow_requests_total{{config="{key}",instance="{r.address}"}}'
    _poll(prometheus, f"sum({sel})", want)
    series = sum(1 for fam in r.metrics.registry.collect() for s in fam.samples
                 if s.name == "canaryflow_requests_total" and s.labels.get("config") == key)
    _poll(prometheus, f"count({sel})", series)


def _scraped_after(prometheus: Prometheus, r: Replica, key: str, t: float) -> None:
    """Wait until every series of this replica has a sample taken after ``t`` (a scrape that began before
    ``t`` may carry requests sent after it: a stage's baseline must be behind its start)."""
    sel = f'canaryflow_requests_total{{config="{key}",instance="{r.address}"}}'
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        result = prometheus.query(f"min(timestamp({sel}))")
        if result and float(result[0]["value"][1]) > t:  # type: ignore[index]
            return
        time.sleep(0.2)
    raise TimeoutError(f"Prometheus never scraped {r.address} after {t}")


def _send(r: Replica, key: str, variation: str, n: int, *, errors: int = 0, error_type: str = "server_error",
          segment: str = "none", feedback_negative: int = 0, rescued: int = 0) -> None:
    """``n`` requests: ``errors`` of them failed (the first ``rescued`` of those answered by the fallback)."""
    version = 2 if variation == "candidate" else 1
    labels = _labels(key, version, variation, segment)
    for i in range(n):
        if i < rescued:
            record_request(labels, outcome="error", error_type=error_type, served_by="fallback",
                           answered_by=("anthropic", "claude-haiku-4-5"), finish_reason="stop",
                           duration_s=9.0, input_tokens=10, output_tokens=20, cost_usd=0.5, metrics=r.metrics)
        elif i < errors:
            record_request(labels, outcome="error", error_type=error_type, metrics=r.metrics)
        else:
            record_request(labels, outcome="success", finish_reason="stop", duration_s=0.2 + 0.01 * (i % 7),
                           input_tokens=10, output_tokens=20, cost_usd=0.001, metrics=r.metrics)
    for _ in range(feedback_negative):
        record_feedback(labels, "negative", metrics=r.metrics)


GATES = [Gate(metric="error_rate", margin=0.5), Gate(metric="negative_feedback_rate", margin=0.5),
         Gate(metric="latency_p95", margin=0.2), Gate(metric="cost_per_request", margin=0.2),
         Gate(metric="fallback_rate", margin=0.5)]


def _request(key: str, start: float, kind: str = "percent", segments: list[str] | None = None
             ) -> AnalysisRequest:
    return AnalysisRequest(config_key=key, stable_version=1, candidate_version=2, stage="canary-5",
                           stage_kind=kind, window_start=start, gates=GATES, interval=2.0,
                           segments=segments or [])


def test_counts_through_three_replicas_a_restart_and_new_label_sets(
    prometheus: Prometheus, replicas: list[Replica]
) -> None:
    key = f"exact-{uuid.uuid4().hex[:8]}"
    a, b, c = replicas
    for r in replicas:
        _zeros(r, key)
        _send(r, key, "stable", 7, errors=1)  # before the stage: must not count
        _send(r, key, "candidate", 3)
    for r in replicas:
        _scraped(prometheus, r, key)
    start = time.time()  # every baseline was scraped before the stage started
    for r in replicas:
        _scraped_after(prometheus, r, key, start)

    _send(a, key, "stable", 50, errors=2)
    _send(b, key, "stable", 41, errors=1, feedback_negative=1)
    _send(c, key, "candidate", 13, errors=2, rescued=1)  # one failure a fallback answered
    _send(a, key, "candidate", 5, errors=1, error_type="timeout")  # a label set born mid-stage
    for r in (a, b, c):
        _scraped(prometheus, r, key)
    b.restart()  # counters reset on the same instance; the exporter re-creates its series at 0
    _zeros(b, key)
    prometheus.wait_scraped(b.address)
    _scraped(prometheus, b, key)
    _send(b, key, "stable", 9, errors=1)
    _send(b, key, "candidate", 4, errors=1, segment="internal", feedback_negative=2)  # new segment
    _send(c, key, "stable", 30, segment="internal")
    for r in (a, b, c):
        _scraped(prometheus, r, key)

    now = time.time()
    report = measure_sync(_request(key, start), PrometheusSource(prometheus.url), now)
    cand_n, stable_n = 13 + 5 + 4, 50 + 41 + 9 + 30
    assert (report.candidate_samples, report.stable_samples) == (cand_n, stable_n)
    by = {m.gate: m for m in report.measurements}
    err = by["error_rate"].evidence
    assert (err.candidate_events, err.candidate_samples) == (2 + 1 + 1, cand_n)
    assert (err.stable_events, err.stable_samples) == (2 + 1 + 1, stable_n)
    assert err.strata >= 2, by["error_rate"].summary()  # judged interval by interval (2 s each)
    assert "(4/22)" in by["error_rate"].summary() and "(4/130)" in by["error_rate"].summary()
    feedback = by["negative_feedback_rate"].evidence  # denominator: requests that received feedback
    assert (feedback.candidate_events, feedback.candidate_samples) == (2, 2)
    assert (feedback.stable_events, feedback.stable_samples) == (1, 1)
    latency = by["latency_p95"].evidence  # the primary's successes only (not the rescued 9 s), whole counts
    assert (latency.candidate_samples, latency.stable_samples) == (cand_n - 4, stable_n - 4)
    cost = by["cost_per_request"].evidence  # the primary's own attempts: not the fallback's dear answer
    assert cost.candidate_value == pytest.approx(0.001) and cost.stable_value == pytest.approx(0.001)
    fallback = by["fallback_rate"].evidence
    assert (fallback.candidate_events, fallback.candidate_samples) == (1, cand_n)
    assert (fallback.stable_events, fallback.stable_samples) == (0, stable_n)

    # a segments stage compares like with like: stable restricted to the stage's segments too
    seg = measure_sync(_request(key, start, "segments", ["internal"]), PrometheusSource(prometheus.url), now)
    assert (seg.candidate_samples, seg.stable_samples) == (4, 30)
    seg_err = {m.gate: m for m in seg.measurements}["error_rate"]
    assert any('segment="internal"' in q for q in seg_err.evidence.queries)
    assert seg_err.verdict is not Verdict.ERROR, seg_err.summary()
