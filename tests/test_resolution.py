"""Resolution: deterministic bucketing (properties), the pin → candidate → stable order, rendering."""

from __future__ import annotations

import random
from hashlib import sha1
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.resolution import CompiledConfig, bucket, resolve
from canaryflow.domain.segments import Segment
from canaryflow.domain.serving import Exposure, ServingState
from canaryflow.errors import NotFound, RenderError


def spec(version: int, content: str = "Help with {{product}}.") -> ConfigSpec:
    return ConfigSpec.model_validate({
        "key": "support-bot", "provider": "openai", "model": f"model-v{version}",
        "messages": [{"role": "system", "content": content}], "parameters": {"max_tokens": 100 * version},
        "fallback": [{"provider": "anthropic", "model": "claude-haiku-4-5"}]})


VERSIONS = {1: spec(1), 2: spec(2), 3: spec(3)}
SEGMENTS = [
    Segment.model_validate({"name": "internal",
                            "rules": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}]}),
    Segment.model_validate({"name": "beta",
                            "rules": [{"attribute": "beta", "op": "equals", "values": [True]}]}),
]
VARS = {"product": "Acme"}


def state(exposure: Exposure | None = None, pins: dict[str, int] | None = None, stable: int | None = 1,
          revision: int = 7) -> ServingState:
    return ServingState(config_key="support-bot", stable_version=stable, exposure=exposure or Exposure(),
                        pins=pins or {}, revision=revision)


def ctx(key: str, **attributes: Any) -> dict[str, Any]:
    return {"key": key, "attributes": attributes}


@settings(max_examples=300, deadline=None)
@given(key=st.text(max_size=30), salt=st.text(max_size=10), user=st.text(max_size=40))
def test_bucket_follows_the_design_formula(key: str, salt: str, user: str) -> None:
    # as LaunchDarkly computes it: float(first 15 hex digits) / float(0xFFFFFFFFFFFFFFF)
    digits = int(sha1(f"{key}.{salt}.{user}".encode()).hexdigest()[:15], 16)
    expected = float(digits) / float(0xFFFFFFFFFFFFFFF)
    assert bucket(key, salt, user) == expected
    assert 0.0 <= expected <= 1.0


@settings(max_examples=200, deadline=None)
@given(user=st.text(min_size=1, max_size=40), percent=st.floats(0, 100), salt=st.text(max_size=8),
       beta=st.booleans())
def test_the_same_user_always_gets_the_same_answer(user: str, percent: float, salt: str, beta: bool) -> None:
    exposure = Exposure(candidate_version=2, stage="canary", stage_kind="percent", percent=percent, salt=salt)
    first = CompiledConfig(state(exposure), VERSIONS, SEGMENTS).resolve(ctx(user, beta=beta), VARS)
    second = CompiledConfig(state(exposure), VERSIONS, SEGMENTS)
    for _ in range(3):
        assert second.resolve(ctx(user, beta=beta), VARS) == first
    candidate = bucket("support-bot", salt, user) < percent / 100
    assert first.version == (2 if candidate else 1)


@settings(max_examples=50, deadline=None)
@given(salt=st.text(max_size=8), low=st.floats(0, 100), high=st.floats(0, 100))
def test_raising_the_percent_only_adds_users(salt: str, low: float, high: float) -> None:
    low, high = min(low, high), max(low, high)
    users = [f"user-{i}" for i in range(500)]

    def exposed(percent: float) -> set[str]:
        compiled = CompiledConfig(state(Exposure(candidate_version=2, stage_kind="percent", percent=percent,
                                                 salt=salt)), VERSIONS, [])
        return {u for u in users if compiled.resolve({"key": u}, VARS).variation == "candidate"}

    assert exposed(low) <= exposed(high)


@pytest.mark.parametrize("anonymous", [{}, {"key": ""}, {"key": None, "attributes": {}}])
def test_anonymous_requests_are_bucketed_per_request(anonymous: dict[str, Any]) -> None:
    """Without a user key each request is drawn on its own: a 5 % stage sends ~5 % of anonymous requests
    to the candidate, not all of them or none (one shared bucket would)."""
    rng = random.Random(7)
    compiled = CompiledConfig(state(Exposure(candidate_version=2, stage_kind="percent", percent=5, salt="s")),
                              VERSIONS, SEGMENTS, draw=rng.random)
    served = [compiled.resolve(anonymous, VARS).variation for _ in range(4000)]
    assert 140 < served.count("candidate") < 260  # 5 % of 4000 = 200, a ±4.4 σ band
    assert served.count("stable") == 4000 - served.count("candidate")


def test_five_percent_is_inside_ten_percent_and_about_right() -> None:
    users = [f"user-{i}" for i in range(20_000)]
    five = {u for u in users if bucket("support-bot", "rollout-1", u) < 0.05}
    ten = {u for u in users if bucket("support-bot", "rollout-1", u) < 0.10}
    assert five < ten
    assert 800 < len(five) < 1200 and 1700 < len(ten) < 2300


def test_buckets_are_uniform_chi_square_over_100k_keys() -> None:
    bins = 50
    counts = [0] * bins
    for i in range(100_000):
        counts[int(bucket("support-bot", "salt-42", f"user-{i}") * bins)] += 1
    result = chisquare(counts)
    assert result.pvalue > 0.001, (result, counts)


PIN_BETA = {"beta": 3}
ORDER_CASES = [
    # name, exposure, pins, context, expected (version, variation, segment), reason fragment
    ("stable, no rollout", None, {}, ctx("u1"), (1, "stable", "none"), "stable v1"),
    ("pin beats everything", Exposure(candidate_version=2, stage_kind="full"), PIN_BETA,
     ctx("u1", beta=True), (3, "pinned", "beta"), "segment 'beta' is pinned to v3"),
    ("full candidate", Exposure(candidate_version=2, stage_kind="full"), PIN_BETA, ctx("u1"),
     (2, "candidate", "none"), "serves everyone"),
    ("exposed segment", Exposure(candidate_version=2, stage_kind="segments", segments=["internal"]), {},
     ctx("u1", email="a@acme.com"), (2, "candidate", "internal"), "segment 'internal' is exposed"),
    ("unexposed segment", Exposure(candidate_version=2, stage_kind="segments", segments=["internal"]), {},
     ctx("u1", beta=True), (1, "stable", "beta"), "stable v1"),
    ("pin over exposure in the same segment",
     Exposure(candidate_version=2, stage_kind="segments", segments=["internal"]), {"internal": 3},
     ctx("u1", email="a@acme.com"), (3, "pinned", "internal"), "pinned"),
    ("percent 100", Exposure(candidate_version=2, stage_kind="percent", percent=100), {}, ctx("u1"),
     (2, "candidate", "none"), "bucket below 100%"),
    ("percent 0", Exposure(candidate_version=2, stage_kind="percent", percent=0), {}, ctx("u1"),
     (1, "stable", "none"), "stable v1"),
    ("shadow serves stable", Exposure(candidate_version=2, stage_kind="shadow", shadow_fraction=0.2), {},
     ctx("u1"), (1, "stable", "none"), "candidate v2 in shadow"),
    ("candidate known, not exposed", Exposure(candidate_version=2, stage_kind="none"), {}, ctx("u1"),
     (1, "stable", "none"), "stable v1"),
    ("first matching segment labels", None, {}, ctx("u1", email="a@acme.com", beta=True),
     (1, "stable", "internal"), "stable v1"),
]


@pytest.mark.parametrize(("name", "exposure", "pins", "context", "expected", "reason"), ORDER_CASES,
                         ids=[c[0] for c in ORDER_CASES])
def test_pin_then_candidate_then_stable(name: str, exposure: Exposure | None, pins: dict[str, int],
                                        context: dict[str, Any], expected: tuple[int, str, str],
                                        reason: str) -> None:
    res = resolve(state(exposure, pins), VERSIONS, SEGMENTS, context, VARS)
    assert (res.version, res.variation, res.segment) == expected
    assert reason in res.reason
    assert res.model == f"model-v{res.version}"
    assert res.parameters == {"max_tokens": 100 * res.version}
    assert res.fallback == ({"provider": "anthropic", "model": "claude-haiku-4-5"},)
    assert res.revision == 7
    assert res.messages == ({"role": "system", "content": "Help with Acme."},)


def test_shadow_resolution_names_the_shadow_candidate() -> None:
    exposure = Exposure(candidate_version=2, stage_kind="shadow", shadow_fraction=0.25)
    res = resolve(state(exposure), VERSIONS, SEGMENTS, ctx("u"), VARS)
    assert (res.shadow_version, res.shadow_fraction) == (2, 0.25)
    assert resolve(state(), VERSIONS, SEGMENTS, ctx("u"), VARS).shadow_version is None


def test_missing_variable_is_a_clear_error() -> None:
    compiled = CompiledConfig(state(), VERSIONS, SEGMENTS)
    with pytest.raises(RenderError, match=r"needs variable 'product'.*--var product="):
        compiled.resolve(ctx("u"))
    two = {1: spec(1, "{{greeting}}, this is {{product}}.")}
    with pytest.raises(RenderError, match="'greeting'"):
        resolve(state(), two, [], ctx("u"), {"product": "Acme"})


def test_rendering_uses_each_requests_variables() -> None:
    compiled = CompiledConfig(state(), {1: spec(1, "{{greeting}} from {{product}} #{{n}}")}, [])
    a = compiled.resolve(ctx("u"), {"greeting": "Hi", "product": "Acme", "n": 1})
    b = compiled.resolve(ctx("u"), {"greeting": "Hello", "product": "Acme", "n": "1"})
    c = compiled.resolve(ctx("u"), {"greeting": "Hi", "product": "Acme", "n": 1})
    assert a.messages[0]["content"] == "Hi from Acme #1"
    assert b.messages[0]["content"] == "Hello from Acme #1"
    assert c == a
    plain = CompiledConfig(state(), {1: spec(1, "No placeholders.")}, [])
    assert plain.resolve(None).messages[0]["content"] == "No placeholders."


def test_no_stable_version_and_unknown_versions() -> None:
    with pytest.raises(NotFound, match="no stable version"):
        resolve(state(stable=None), VERSIONS, [], ctx("u"), VARS)
    with pytest.raises(NotFound, match="unknown versions \\[9\\]"):
        CompiledConfig(state(pins={"beta": 9}), VERSIONS, SEGMENTS)
    compiled = CompiledConfig(state(), VERSIONS, SEGMENTS)
    assert compiled.has_version(3) and not compiled.has_version(4)
    with pytest.raises(NotFound):
        compiled.spec(4)


def _held(holdback: float) -> CompiledConfig:
    return CompiledConfig(state(Exposure(candidate_version=2, stage="internal", stage_kind="segments",
                                         segments=["internal"], holdback=holdback, salt="rollout-9")),
                          VERSIONS, SEGMENTS, draw=random.Random(11).random)


def test_a_segments_holdback_keeps_the_top_share_of_its_users_on_stable_labelled_with_their_segment() -> None:
    compiled = _held(0.2)
    served = {f"u{i}": compiled.resolve(ctx(f"u{i}", email=f"u{i}@acme.com"), VARS) for i in range(5000)}
    held = {u for u, r in served.items() if r.variation == "stable"}
    assert 850 < len(held) < 1150  # 20 % of 5000 = 1000, ±4.7 σ
    assert {r.segment for r in served.values()} == {"internal"}  # held users stay in their segment's series
    assert all(bucket("support-bot", "rollout-9", u) >= 0.8 for u in held)
    assert all(r.version == 2 for u, r in served.items() if u not in held)
    assert "held back on stable v1 (20 % of its users)" in served[next(iter(held))].reason
    # the same user is held back every time, and users outside the exposed segments are untouched
    again = _held(0.2)
    assert all(again.resolve(ctx(u, email=f"{u}@acme.com"), VARS).variation == "stable" for u in held)
    assert {again.resolve(ctx(f"u{i}", beta=True), VARS).version for i in range(200)} == {1}


def test_held_back_users_are_the_last_a_later_percent_stage_moves() -> None:
    held = {f"u{i}" for i in range(3000)
            if _held(0.1).resolve(ctx(f"u{i}", email="x@acme.com"), VARS).variation == "stable"}
    canary = CompiledConfig(state(Exposure(candidate_version=2, stage_kind="percent", percent=50,
                                           salt="rollout-9")), VERSIONS, SEGMENTS)
    assert held and all(canary.resolve(ctx(u), VARS).variation == "stable" for u in held)


def test_anonymous_requests_in_a_held_segment_are_drawn_per_request() -> None:
    compiled = _held(0.25)
    served = [compiled.resolve({"attributes": {"email": "x@acme.com"}}, VARS).variation for _ in range(4000)]
    assert 880 < served.count("stable") < 1120  # 25 % of 4000 = 1000, ±4.4 σ


def test_no_holdback_exposes_every_user_of_the_segment() -> None:
    compiled = _held(0.0)
    assert {compiled.resolve(ctx(f"u{i}", email="x@acme.com"), VARS).variation for i in range(500)} \
        == {"candidate"}


def test_holdback_belongs_to_segments_exposures() -> None:
    with pytest.raises(ValueError, match="holdback belongs to segments stages"):
        Exposure(candidate_version=2, stage_kind="percent", percent=5, holdback=0.1)
