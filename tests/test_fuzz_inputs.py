"""Property tests: arbitrary config files, segment files, rollout inputs/plans and signal payloads either
validate or are refused with ValidationFailed naming the field — never another exception, never a corrupted
rollout state. Fixed budget and derandomized, so CI runs the same examples every time."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canaryflow.domain.plan import RolloutInput, parse_duration
from canaryflow.domain.rollout_status import SIGNALS, RolloutStatus, apply_signal
from canaryflow.domain.validation import parse
from canaryflow.errors import ValidationFailed
from canaryflow.files import load_config, load_segments

BUDGET = settings(max_examples=150, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TMP = Path(tempfile.mkdtemp(prefix="cf-fuzz-"))

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=12)

CONFIG: dict[str, Any] = {
    "key": "support-bot", "description": "d", "provider": "openai", "model": "gpt-4o-mini",
    "messages": [{"role": "system", "content": "You help with {{product}}."}],
    "parameters": {"temperature": 0.2, "top_p": 1.0, "max_tokens": 400},
    "fallback": [{"provider": "anthropic", "model": "claude-haiku-4-5"}],
    "metadata": {"author": "alice", "rationale": "r", "labels": ["support"]},
}
SEGMENTS: dict[str, Any] = {"segments": [
    {"name": "internal", "rules": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}]},
    {"name": "beta", "rules": [{"attribute": "beta", "op": "equals", "values": [True]}]}]}
ROLLOUT: dict[str, Any] = {
    "config_key": "support-bot", "candidate_version": 2, "requested_by": "alice", "reason": "r",
    "plan": {"stages": [
        {"name": "shadow", "kind": "shadow", "shadow_fraction": 0.2, "min_duration": "10m",
         "min_samples": 200},
        {"name": "internal", "kind": "segments", "segments": ["internal"], "approval": "required"},
        {"name": "canary-5", "kind": "percent", "percent": 5, "min_duration": "1h"},
        {"name": "full", "kind": "full"}],
        "gates": [{"metric": "error_rate", "margin": 0.01, "mode": "absolute"}],
        "analysis_interval": "1m", "on_inconclusive": "wait_for_approval", "approval_timeout": "24h",
        "on_approval_timeout": "rollback", "approvers": ["alice"], "notify": []},
}


def paths_of(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location inside ``doc`` (dict keys and list indexes)."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths_of(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths_of(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> tuple[dict[str, Any], tuple[Any, ...], str]:
    """``base`` with one location replaced, deleted, or given an unknown sibling field."""
    doc = copy.deepcopy(base)
    where = draw(st.sampled_from(paths_of(doc)))
    parent: Any = doc
    for part in where[:-1]:
        parent = parent[part]
    how = draw(st.sampled_from(["replace", "delete", "extra"]))
    if how == "replace":
        parent[where[-1]] = draw(json_values)
    elif how == "delete":
        del parent[where[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.from_regex(r"\Azz_[a-z]{1,8}\Z"))] = draw(json_values)
    return doc, where, how


def top_field(where: tuple[Any, ...]) -> str:
    return str(where[0])


def write(doc: Any, name: str) -> Path:
    path = TMP / name
    path.write_text(yaml.safe_dump(doc, allow_unicode=True) if not isinstance(doc, str) else doc)
    return path


def refused_naming(exc: ValidationFailed, field: str | None) -> None:
    text = str(exc)
    assert text and "Traceback" not in text
    if field is not None:
        assert field in text or "(top level)" in text or "zz_" in text, text


@BUDGET
@given(mutated(CONFIG))
def test_config_files_validate_or_name_the_field(case: tuple[dict[str, Any], tuple[Any, ...], str]) -> None:
    doc, where, _ = case
    try:
        load_config(write(doc, "config.yaml"))
    except ValidationFailed as exc:
        refused_naming(exc, top_field(where))


@BUDGET
@given(st.one_of(st.text(max_size=200), json_values.map(lambda v: yaml.safe_dump(v))))
def test_any_text_as_config_or_segment_file(text: str) -> None:
    for load in (load_config, load_segments):
        try:
            load(write(text, "any.yaml"))
        except ValidationFailed as exc:
            refused_naming(exc, None)


@BUDGET
@given(mutated(SEGMENTS))
def test_segment_files_validate_or_name_the_field(case: tuple[dict[str, Any], tuple[Any, ...], str]) -> None:
    doc, where, _ = case
    try:
        load_segments(write(doc, "segments.yaml"))
    except ValidationFailed as exc:
        refused_naming(exc, top_field(where))


@BUDGET
@given(mutated(ROLLOUT))
def test_rollout_inputs_and_plans_validate_or_name_the_field(
        case: tuple[dict[str, Any], tuple[Any, ...], str]) -> None:
    doc, where, _ = case
    try:
        parsed = parse(RolloutInput, doc, source="--input")
    except ValidationFailed as exc:
        refused_naming(exc, top_field(where))
        return
    plan = parsed.resolved_plan()
    assert plan.stages and plan.stages[-1].kind == "full"


@BUDGET
@given(json_values)
def test_any_json_as_rollout_input(value: Any) -> None:
    try:
        parse(RolloutInput, value, source="--input")
    except ValidationFailed as exc:
        refused_naming(exc, None)


@BUDGET
@given(st.one_of(json_values, st.text(max_size=20, alphabet="0123456789.dhmsPTDHMS -")))
def test_durations_parse_or_raise_value_error(value: Any) -> None:
    try:
        assert parse_duration(value).total_seconds() == parse_duration(value).total_seconds()
    except (ValueError, OverflowError) as exc:
        assert "duration" in str(exc) or isinstance(exc, OverflowError)


def fresh_status() -> RolloutStatus:
    doc = parse(RolloutInput, ROLLOUT)
    return RolloutStatus(config_key=doc.config_key, candidate_version=2, plan=doc.resolved_plan(),
                         requested_by="alice", reason="", salt="s")


signal_payloads = st.one_of(
    json_values,
    st.fixed_dictionaries({"by": st.one_of(st.sampled_from(["alice", "mallory", ""]), json_values)},
                          optional={"stage": json_values, "reason": json_values, "comment": json_values,
                                    "full": json_values, "zz_unknown": json_values}))


@BUDGET
@given(st.lists(st.tuples(st.sampled_from(sorted(SIGNALS)), signal_payloads), min_size=1, max_size=8))
def test_signal_payloads_are_applied_or_refused_and_recorded(signals: list[tuple[str, Any]]) -> None:
    status = fresh_status()
    for n, (name, payload) in enumerate(signals, start=1):
        before = len(status.events)
        accepted = apply_signal(status, name, payload, now=1000.0 + n)
        assert isinstance(accepted, bool)
        assert status.signals_seen == n
        assert len(status.events) >= min(before + 1, 1)  # recorded (the event list is capped)
        last = status.events[-1]
        assert last.action == name and last.accepted is accepted
        if isinstance(payload, dict) and "zz_unknown" in payload and accepted:
            assert "zz_unknown" in last.detail  # unknown fields are ignored *and recorded*
        if not accepted and not isinstance(payload, dict):
            assert "payload must be a JSON object" in last.detail
    # the state is still a valid, serialisable RolloutStatus (what a query and continue-as-new carry)
    assert RolloutStatus.model_validate_json(status.model_dump_json()) == status
    if status.approved or status.promote is not None:
        decisive = [e for e in status.events if e.accepted and e.action in ("approve", "promote")]
        assert all(e.by == "alice" for e in decisive)  # only the plan's approvers
