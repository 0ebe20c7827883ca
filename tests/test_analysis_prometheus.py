"""measure() against a real Prometheus scraping a real exposition of the traffic plane's instruments."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client import start_http_server

from canaryflow.domain.analysis import AnalysisRequest, count_reports, stage_verdict
from canaryflow.domain.gates import Gate, Verdict
from canaryflow.metrics.instruments import Labels, Metrics
from canaryflow.metrics.measure import measure, measure_sync
from canaryflow.metrics.source import PrometheusSource
from tests.servers import Prometheus, free_port

pytestmark = pytest.mark.prometheus


@dataclass
class Exporter:
    metrics: Metrics
    address: str


@pytest.fixture
def exporter(prometheus: Prometheus) -> Iterator[Exporter]:
    metrics = Metrics()
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    address = f"127.0.0.1:{port}"
    prometheus.add_target(address)
    try:
        yield Exporter(metrics, address)
    finally:
        server.shutdown()
        thread.join(5)


def _labels(key: str, version: int, variation: str) -> Labels:
    return Labels(key, version, variation, "none", "openai", "sim-model")


def _traffic(
    m: Metrics, key: str, version: int, variation: str, ok: int, errors: int, latency: float
) -> None:
    """Count ok/error requests and observe latencies, tokens and cost (counters by bulk increments)."""
    series = m.series(_labels(key, version, variation))
    series.success["stop"].inc(ok)
    series.error("server_error", "none").inc(errors)
    for i in range(1000):
        series.primary.duration(latency * (0.5 + i / 1000))
    series.primary.input_tokens.observe(100)
    series.primary.cost.inc(0.001 * ok)


def _zeros(m: Metrics, key: str, version: int, variation: str) -> None:
    m.series(_labels(key, version, variation))  # every series a gate reads, at 0


def _wait_value(prometheus: Prometheus, promql: str, want: float, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = prometheus.query(promql)
        if result and float(result[0]["value"][1]) >= want:  # type: ignore[index]
            return
        time.sleep(0.3)
    raise TimeoutError(f"Prometheus never saw {promql} >= {want}")


def _scenario(
    prometheus: Prometheus, exporter: Exporter, cand_errors: int, cand_latency: float
) -> tuple[str, float]:
    """Stable v1: 38,000 requests, 1 % errors; candidate v2: 2,000 requests with ``cand_errors`` errors."""
    key = f"bot-{uuid.uuid4().hex[:8]}"
    start = time.time() - 1
    m = exporter.metrics
    _zeros(m, key, 1, "stable")
    _zeros(m, key, 2, "candidate")
    prometheus.wait_scraped(exporter.address)
    series = f'canaryflow_requests_total{{config="{key}"}}'
    _wait_value(prometheus, f"count({series})", 2 * 23)  # the zero-valued series are stored
    total = f"sum({series})"
    _traffic(m, key, 1, "stable", ok=37620, errors=380, latency=0.5)
    _traffic(m, key, 2, "candidate", ok=2000 - cand_errors, errors=cand_errors, latency=cand_latency)
    _wait_value(prometheus, total, 40000)
    return key, start


GATES = [
    Gate(metric="error_rate", margin=0.5, min_samples=500),
    Gate(metric="latency_p95", margin=0.2, mode="relative"),
    Gate(metric="cost_per_request", margin=0.1, mode="relative"),
    Gate(metric="negative_feedback_rate", margin=0.5),  # judged on feedback given: none at all is no data
    # a ratio of counters judged like a built-in rate: the share of requests that finished normally
    Gate(metric="custom", name="finished", margin=0.01, mode="absolute", higher_is_better=True,
         min_samples=500,
         events='sum(increase(canaryflow_requests_total{$selector,finish_reason="stop"}[$window]))',
         total="sum(increase(canaryflow_requests_total{$selector}[$window]))"),
]


def _request(key: str, start: float, gates: list[Gate]) -> AnalysisRequest:
    return AnalysisRequest(config_key=key, stable_version=1, candidate_version=2, stage="canary-5",
                           stage_kind="percent", window_start=start, gates=gates)


async def test_raised_error_rate_and_latency_fail(prometheus: Prometheus, exporter: Exporter) -> None:
    key, start = _scenario(prometheus, exporter, cand_errors=200, cand_latency=1.0)
    src = PrometheusSource(prometheus.url)
    report = await measure(_request(key, start, GATES), src)
    by_gate = {m.gate: m for m in report.measurements}
    err = by_gate["error_rate"]
    assert err.verdict is Verdict.FAIL, err.summary()
    # exact counts of the raw samples, not increase()'s extrapolation
    assert (err.evidence.candidate_events, err.evidence.candidate_samples) == (200, 2000)
    assert (err.evidence.stable_events, err.evidence.stable_samples) == (380, 38000)
    assert err.evidence.interval is not None and err.evidence.interval[0] > 0.01
    assert any('variation="candidate"' in q and q.startswith("canaryflow_requests_total{")
               for q in err.evidence.queries)
    assert by_gate["latency_p95"].verdict is Verdict.FAIL, by_gate["latency_p95"].summary()
    cost = by_gate["cost_per_request"]  # means need several intervals: all traffic came in one
    assert cost.verdict is Verdict.INCONCLUSIVE and "waiting for 8 intervals" in cost.evidence.note
    assert cost.evidence.candidate_value == pytest.approx(0.001)
    assert by_gate["negative_feedback_rate"].verdict is Verdict.NODATA
    finished = by_gate["finished"]
    assert finished.verdict is Verdict.FAIL, finished.summary()
    assert finished.evidence.candidate_value == pytest.approx(0.9, rel=0.05)
    assert any(f'config="{key}",version="2",variation="candidate",finish_reason="stop"' in q
               for q in finished.evidence.queries)
    assert report.verdict() is Verdict.FAIL
    assert (report.candidate_samples, report.stable_samples) == (2000, 38000)
    assert stage_verdict(GATES, count_reports([report]))[0] is Verdict.FAIL


def test_equal_rates_pass(prometheus: Prometheus, exporter: Exporter) -> None:
    key, start = _scenario(prometheus, exporter, cand_errors=20, cand_latency=0.5)
    custom = Gate(metric="custom", name="errors", success="result < 0.02",
                  query=f'sum(rate(canaryflow_requests_total{{config="{key}",outcome="error"}}[1m])) / '
                        f'sum(rate(canaryflow_requests_total{{config="{key}"}}[1m]))')
    # 400 errors in all: enough to show the candidate within twice stable's rate
    gates = [Gate(metric="error_rate", margin=1.0, min_samples=500), GATES[1], GATES[4], custom]
    report = measure_sync(_request(key, start, gates), PrometheusSource(prometheus.url))
    assert [m.verdict for m in report.measurements] == [Verdict.PASS] * 4, [
        m.summary() for m in report.measurements]
    assert stage_verdict(gates, count_reports([report]))[0] is Verdict.PASS


def test_implicit_rate_judges_one_event_per_request_served(prometheus: Prometheus,
                                                           exporter: Exporter) -> None:
    key, start = _scenario(prometheus, exporter, cand_errors=20, cand_latency=0.5)
    m = exporter.metrics
    # regenerations: 1 % of stable's requests, 20 % of the candidate's; copies: equal shares
    m.series(_labels(key, 1, "stable")).implicit["regenerated"].inc(380)
    m.series(_labels(key, 2, "candidate")).implicit["regenerated"].inc(400)
    m.series(_labels(key, 1, "stable")).implicit["copied"].inc(7600)
    m.series(_labels(key, 2, "candidate")).implicit["copied"].inc(400)
    _wait_value(prometheus, f'sum(canaryflow_implicit_feedback_total{{config="{key}"}})', 8780)
    gates = [Gate(metric="implicit_rate", event="regenerated", margin=0.5, min_samples=500),
             Gate(metric="implicit_rate", event="copied", name="copied_rate", margin=0.5, min_samples=500)]
    report = measure_sync(_request(key, start, gates), PrometheusSource(prometheus.url))
    regen, copied = report.measurements
    assert regen.verdict is Verdict.FAIL and regen.gate == "regenerated_rate", regen.summary()
    assert (regen.evidence.candidate_events, regen.evidence.candidate_samples) == (400, 2000)
    assert 'event="regenerated"' in regen.evidence.note
    assert copied.verdict is Verdict.PASS, copied.summary()  # a good event: judged higher-is-better


def test_replaced_feedback_counts_once_in_the_feedback_rate(prometheus: Prometheus,
                                                           exporter: Exporter) -> None:
    """Feedback replaced by a later one on the same request counts once, as its latest sentiment: 300
    candidate negatives of which 200 were later changed to positive are 100 negatives of 400 requests that
    got feedback, not 300 of 600."""
    from canaryflow.metrics.instruments import record_feedback

    key, start = _scenario(prometheus, exporter, cand_errors=20, cand_latency=0.5)
    m = exporter.metrics
    stable, cand = _labels(key, 1, "stable"), _labels(key, 2, "candidate")
    for _ in range(300):
        record_feedback(stable, "negative", metrics=m)
    for _ in range(2700):
        record_feedback(stable, "positive", metrics=m)
    for _ in range(300):
        record_feedback(cand, "negative", metrics=m)
    for _ in range(100):
        record_feedback(cand, "positive", metrics=m)
    for _ in range(200):
        record_feedback(cand, "positive", replaces="negative", metrics=m)
    _wait_value(prometheus, f'sum(canaryflow_feedback_retracted_total{{config="{key}"}})', 200)
    _wait_value(prometheus, f'sum(canaryflow_feedback_total{{config="{key}"}})', 3600)
    gate = Gate(metric="negative_feedback_rate", margin=0.5, min_samples=100)
    (fb,) = measure_sync(_request(key, start, [gate]), PrometheusSource(prometheus.url)).measurements
    assert (fb.evidence.candidate_events, fb.evidence.candidate_samples) == (100, 400), fb.summary()
    assert (fb.evidence.stable_events, fb.evidence.stable_samples) == (300, 3000)
    assert any(q.startswith("canaryflow_feedback_retracted_total{") for q in fb.evidence.queries)


@pytest.mark.parametrize(("gate", "words"), [
    ({"metric": "implicit_rate", "margin": 0.5}, "needs 'event'"),
    ({"metric": "implicit_rate", "event": "dwell_seconds", "margin": 0.5}, "needs 'event'"),
    ({"metric": "error_rate", "event": "copied", "margin": 0.5}, "belongs to implicit_rate"),
])
def test_a_bad_implicit_gate_is_refused(gate: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Gate.model_validate(gate)


def test_no_traffic_is_nodata(prometheus: Prometheus) -> None:
    req = _request(f"none-{uuid.uuid4().hex[:8]}", time.time() - 60, GATES)
    report = measure_sync(req, PrometheusSource(prometheus.url))
    assert {m.verdict for m in report.measurements} == {Verdict.NODATA}
    assert stage_verdict(GATES, count_reports([report]))[0] is Verdict.NODATA


def test_prometheus_down_gives_errors_then_the_consecutive_error_limit() -> None:
    gate = Gate(metric="error_rate", margin=0.5, consecutive_error_limit=2)
    src = PrometheusSource(f"http://127.0.0.1:{free_port()}", timeout=2)
    reports = []
    for _ in range(3):
        report = measure_sync(_request("down", time.time() - 60, [gate]), src)
        (m,) = report.measurements
        assert m.verdict is Verdict.ERROR
        assert "did not answer" in m.evidence.note and m.evidence.queries
        reports.append(report)
        verdict, (status,) = stage_verdict([gate], count_reports(reports))
        if len(reports) <= 2:
            assert verdict is Verdict.INCONCLUSIVE
    assert verdict is Verdict.ERROR
    assert status.consecutive_errors == 3 and "consecutive errors" in status.reason


def test_a_refused_query_errors_only_its_own_gate(prometheus: Prometheus) -> None:
    bad = Gate(metric="custom", name="typo", query="sum(rate(x[1m]", success="result < 1")
    gates = [bad, Gate(metric="error_rate", margin=0.5)]
    report = measure_sync(_request(f"q-{uuid.uuid4().hex[:8]}", time.time() - 60, gates),
                          PrometheusSource(prometheus.url))
    typo, err = report.measurements
    assert typo.verdict is Verdict.ERROR and "refused the query" in typo.evidence.note
    assert err.verdict is Verdict.NODATA  # Prometheus itself answered


def test_a_silent_prometheus_costs_one_timeout_per_interval() -> None:
    """A server that accepts connections and never answers: the first query times out, the rest of the
    interval fails fast."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    try:
        gates = [Gate(metric="error_rate", margin=0.5),
                 Gate(metric="latency_p95", margin=0.2, mode="relative")]
        report = measure_sync(_request("slow", time.time() - 60, gates),
                              PrometheusSource(f"http://127.0.0.1:{port}", timeout=1))
    finally:
        listener.close()
    first, second = report.measurements
    assert first.verdict is second.verdict is Verdict.ERROR
    assert "did not answer" in first.evidence.note
    assert "not retried in this interval" in second.evidence.note


def test_a_templated_custom_query_gets_its_selector_window_and_plan_args(
        prometheus: Prometheus, exporter: Exporter) -> None:
    """``$selector`` (the candidate's series), ``$window`` (one analysis interval) and ``{{args.NAME}}``
    are filled in before the query reaches Prometheus; the candidate's 100 errors are what it counts."""
    key, start = _scenario(prometheus, exporter, cand_errors=100, cand_latency=0.5)
    gate = Gate(metric="custom", name="candidate_errors", failure="result > 50",
                query='sum(increase(canaryflow_requests_total{$selector,outcome="{{args.bad}}"}[$window]))')
    req = _request(key, start, [gate]).model_copy(update={"interval": 120.0, "args": {"bad": "error"}})
    (m,) = measure_sync(req, PrometheusSource(prometheus.url)).measurements
    (query,) = m.evidence.queries
    assert f'{{config="{key}",version="2",variation="candidate",outcome="error"}}[120s]' in query, query
    assert m.verdict is Verdict.FAIL, m.summary()
    assert (m.evidence.candidate_value or 0) >= 100, m.summary()  # increase() extrapolates past 100
    missing = req.model_copy(update={"args": {}})
    (m,) = measure_sync(missing, PrometheusSource(prometheus.url)).measurements
    assert m.verdict is Verdict.ERROR and "does not define 'bad'" in m.evidence.note


def test_a_retraction_in_a_later_interval_is_taken_from_the_earlier_ones() -> None:
    from canaryflow.metrics.measure import _less

    # negatives per interval, then two of the first interval's changed to positive in the third
    assert _less([3.0, 1.0, 0.0, 2.0], [0.0, 0.0, 2.0, 0.0]) == [2.0, 0.0, 0.0, 2.0]
    assert _less([1.0, 1.0], [0.0, 5.0]) == [0.0, 0.0]  # never below 0
