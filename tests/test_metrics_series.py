"""Exporter contract the gates rely on: a fallback's rescue is the variation's error, and every series a gate
reads exists at 0 before its first event (created when the serving cache compiles a config)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from canaryflow.domain.serving import Exposure
from canaryflow.metrics.instruments import (
    DURATION_BUCKETS,
    FINISH_REASONS,
    FORGET_AFTER_S,
    REQUEST_ERROR_TYPES,
    Labels,
    Metrics,
    record_request,
)
from canaryflow.registry import Registry
from canaryflow.serving.client import Client
from canaryflow.serving.traffic import TrafficPlane
from tests.traffic_stack import SEGMENTS, spec

LAB = Labels("bot", 2, "candidate", "none", "openai", "gpt-4o-mini")


def _samples(m: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(m.exposition().decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _has(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The value of the one exposed sample ``name`` whose labels include ``labels`` (KeyError if none)."""
    want = set(labels.items())
    found = [v for (n, lab), v in samples.items() if n == name and want <= lab]
    if not found:
        raise KeyError(f"no {name} with {labels}")
    return sum(found)


def test_a_fallback_rescue_is_an_error_of_the_variation_with_its_primary_error_type() -> None:
    m = Metrics()
    record_request(LAB, outcome="success", finish_reason="stop", duration_s=0.5, input_tokens=10,
                   output_tokens=5, cost_usd=0.001, metrics=m)
    record_request(LAB, outcome="error", error_type="server_error", served_by="fallback",
                   answered_by=("anthropic", "claude-haiku-4-5"), duration_s=2.0, input_tokens=10,
                   output_tokens=7, cost_usd=0.01, metrics=m)
    record_request(LAB, outcome="error", error_type="rate_limit", metrics=m)
    s = _samples(m)
    req = "canaryflow_requests_total"
    assert _has(s, req, outcome="error", error_type="server_error", finish_reason="error",
                served_by="fallback", gen_ai_request_model="gpt-4o-mini") == 1
    assert _has(s, req, outcome="error", error_type="rate_limit", served_by="none") == 1
    assert _has(s, req, outcome="success", finish_reason="stop", served_by="primary") == 1
    # the gates read served_by="primary": the primary's own answers only, with its own model
    dur = "gen_ai_client_operation_duration_seconds_count"
    assert _has(s, dur, served_by="primary", gen_ai_request_model="gpt-4o-mini") == 1
    assert _has(s, dur, served_by="fallback", gen_ai_request_model="claude-haiku-4-5") == 1
    assert _has(s, "gen_ai_client_operation_duration_seconds_sum", served_by="primary") == 0.5
    assert _has(s, "canaryflow_cost_usd_total", served_by="primary") == pytest.approx(0.001)
    assert _has(s, "canaryflow_cost_usd_total", served_by="fallback") == pytest.approx(0.01)
    assert _has(s, "gen_ai_client_token_usage_sum", served_by="primary", gen_ai_token_type="output") == 5
    with pytest.raises(ValueError, match="answered_by"):
        record_request(LAB, outcome="error", error_type="timeout", served_by="fallback", metrics=m)


def test_one_label_set_creates_every_gate_read_series_at_zero() -> None:
    m = Metrics()
    m.series(LAB, [("anthropic", "claude-haiku-4-5")])
    s = _samples(m)
    req = "canaryflow_requests_total"
    for finish in FINISH_REASONS:
        assert _has(s, req, outcome="success", error_type="none", finish_reason=finish,
                    served_by="primary") == 0
    for error_type in REQUEST_ERROR_TYPES:
        for served_by in ("fallback", "none"):
            assert _has(s, req, outcome="error", error_type=error_type, finish_reason="error",
                        served_by=served_by) == 0
    for sentiment in ("positive", "negative"):
        assert _has(s, "canaryflow_feedback_total", sentiment=sentiment) == 0
    for served_by, model in (("primary", "gpt-4o-mini"), ("fallback", "claude-haiku-4-5")):
        for le in ("0.02", "+Inf"):
            assert (_has(s, "gen_ai_client_operation_duration_seconds_bucket", served_by=served_by,
                         gen_ai_request_model=model, le=le)) == 0
        for kind in ("input", "output"):
            assert _has(s, "gen_ai_client_token_usage_count", served_by=served_by,
                        gen_ai_token_type=kind) == 0
        assert _has(s, "canaryflow_cost_usd_total", served_by=served_by, gen_ai_request_model=model) == 0


def test_latency_buckets_are_at_most_ten_percent_wide_from_20ms_to_120s() -> None:
    bounds = [b for b in DURATION_BUCKETS if b >= 0.02]
    assert bounds[0] == 0.02 and bounds[-1] >= 120
    assert max(hi / lo for lo, hi in itertools.pairwise(bounds)) <= 1.101


def test_compiling_a_config_creates_its_series_before_any_request(tmp_path: Path) -> None:
    """The gateway warms its cache at start and on every exposure change: stable, the candidate (as
    candidate and shadow), each segment, each fallback — at 0, before a request was served."""
    registry = Registry(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        registry.push_segments(SEGMENTS, by="test")
        fallback = [{"provider": "anthropic", "model": "claude-haiku-4-5"}]
        registry.push_config(spec("warm-bot"), author="test")
        registry.set_stable("warm-bot", 1, by="test", reason="test")
        client = Client(registry, refresh_interval=60)
        m = Metrics()
        TrafficPlane(client, metrics=m)
        assert client.warm() == ["warm-bot"]
        s = _samples(m)
        total = "canaryflow_requests_total"
        for segment in ("none", "internal", "beta"):
            assert _has(s, total, config="warm-bot", version="1", variation="stable", segment=segment,
                        outcome="error", error_type="server_error", served_by="fallback") == 0
        with pytest.raises(KeyError):
            _has(s, total, config="warm-bot", version="2")

        registry.push_config(spec("warm-bot", system="v2 {{product}}", fallback=fallback), author="test")
        exposure = Exposure(candidate_version=2, stage="canary", stage_kind="percent", percent=5, salt="s")
        registry.apply_exposure("warm-bot", exposure, by="test", reason="test", source="cli")
        assert client.refresh(force=True)  # what the gateway's background refresh does every interval
        s = _samples(m)
        for variation in ("candidate", "shadow"):
            for segment in ("none", "internal", "beta"):
                assert _has(s, total, config="warm-bot", version="2", variation=variation, segment=segment,
                            outcome="error", error_type="circuit_open", served_by="none") == 0
                assert _has(s, "gen_ai_client_operation_duration_seconds_count", config="warm-bot",
                            version="2", variation=variation, segment=segment, served_by="fallback",
                            gen_ai_provider_name="anthropic") == 0
        assert _has(s, "canaryflow_shadow_agreement_count", config="warm-bot", version="2",
                    variation="shadow") == 0

        registry.promote("warm-bot", 2, by="test", reason="test", source="cli")
        assert client.refresh(force=True)
        s = _samples(m)  # v1 is no longer served: still exported for a grace period (its last events)
        assert _has(s, total, config="warm-bot", version="1", variation="stable", outcome="error",
                    error_type="timeout", served_by="none") == 0
        assert m.forget("warm-bot", {2}, now=time.monotonic() + FORGET_AFTER_S) == [1]
        s = _samples(m)  # then no longer exported (bounded memory)
        with pytest.raises(KeyError):
            _has(s, total, config="warm-bot", version="1")
        assert _has(s, total, config="warm-bot", version="2", variation="stable", outcome="error",
                    error_type="timeout", served_by="none") == 0
    finally:
        registry.close()


def test_the_fast_latency_observer_gives_the_samples_observe_gives() -> None:
    fast, slow = Metrics(), Metrics()
    values = [0.0, 0.004, 0.005, 0.0051, 0.02, 0.022, 0.75, 1.0, 119.9, 120.0, 500.0]
    for v in values:
        record_request(LAB, outcome="success", duration_s=v, metrics=fast)
        slow.duration.labels(*LAB.values(), "primary").observe(v)
    def durations(m: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return {k: v for k, v in _samples(m).items()
                if k[0].startswith("gen_ai_client_operation_duration") and not k[0].endswith("_created")}

    want, got = durations(slow), durations(fast)
    assert len(want) == len(DURATION_BUCKETS) + 3  # the buckets, +Inf, _sum, _count
    assert got == want
