"""A hypothesis fuzzer over the gateway's own OpenAPI description (``GET /openapi.json``), against the real
gateway and simulator: for every operation, its example body mutated (a field replaced by any JSON, deleted,
or an unknown one added), any JSON at all, and raw bytes. No 5xx, no traceback, every refusal says which
field. Fixed budget, derandomized."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_fuzz_inputs import json_values, paths_of
from tests.traffic_stack import Stack, running_stack, spec

BUDGET = settings(max_examples=200, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
# OpenAI's two names for one parameter: the gateway sends the config's limit as max_completion_tokens
ALIASES = {"max_completion_tokens": "max_tokens", "max_tokens": "max_completion_tokens"}
ALLOWED = {200, 400, 401, 404, 405, 413, 415, 422}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    configs = [spec(), spec("claude-bot", provider="anthropic", model="claude-haiku-4-5")]
    with running_stack(tmp_path_factory.mktemp("fuzz"), configs=configs, traffic_rate=0.0) as s:
        yield s


@pytest.fixture(scope="module")
def api(stack: Stack) -> dict[str, Any]:
    r = httpx.get(f"{stack.url}/openapi.json")
    assert r.status_code == 200
    return dict(r.json())


@pytest.fixture(scope="module")
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


def operations(api: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(path, op["post"]["requestBody"]["content"]["application/json"])
            for path, op in api["paths"].items() if "post" in op]


@st.composite
def mutation(draw: st.DrawFn, content: dict[str, Any]) -> tuple[Any, str | None]:
    """The operation's example with one location replaced/deleted, an unknown field added, or one of the
    schema's properties set to any JSON value."""
    doc = copy.deepcopy(content["example"])
    how = draw(st.sampled_from(["replace", "delete", "extra", "property"]))
    if how == "property":
        name = draw(st.sampled_from(sorted(content["schema"]["properties"])))
        doc[name] = draw(json_values)
        return doc, name
    where = draw(st.sampled_from(paths_of(doc)))
    parent: Any = doc
    for part in where[:-1]:
        parent = parent[part]
    if how == "replace":
        parent[where[-1]] = draw(json_values)
    elif how == "delete":
        del parent[where[-1]]
    elif isinstance(parent, dict):
        parent["zz_unknown"] = draw(json_values)
        return doc, "zz_unknown"  # passed through: the provider refuses it by name, as OpenAI does
    return doc, str(where[0])


def check(r: httpx.Response, field: str | None) -> None:
    assert r.status_code in ALLOWED, f"{r.status_code}: {r.text[:300]}"
    assert "Traceback" not in r.text
    if r.status_code >= 400:
        err = r.json()["error"]
        message = err["message"] if isinstance(err, dict) else str(err)
        assert message
        if field is not None and r.status_code in (400, 422):
            named = f"{message} {err.get('param') or ''}"
            assert field in named or ALIASES.get(field, field) in named or "body" in named \
                or "messages" in named, named


def post(http: httpx.Client, path: str, body: Any) -> httpx.Response:
    if isinstance(body, dict) and body.get("stream") is not None and body.get("stream") is not False:
        with http.stream("POST", path, json=body) as r:
            r.read()
            return r
    return http.post(path, content=json.dumps(body, allow_nan=True))


def test_spec_lists_every_route(api: dict[str, Any]) -> None:
    assert {"/v1/chat/completions", "/v1/messages", "/v1/resolve", "/v1/feedback", "/healthz",
            "/metrics"} <= set(api["paths"])


@BUDGET
@given(data=st.data())
def test_mutated_examples(api: dict[str, Any], http: httpx.Client, data: st.DataObject) -> None:
    path, content = data.draw(st.sampled_from(operations(api)))
    body, field = data.draw(mutation(content))
    check(post(http, path, body), field)


@BUDGET
@given(data=st.data())
def test_any_json_or_bytes(api: dict[str, Any], http: httpx.Client, data: st.DataObject) -> None:
    path, _ = data.draw(st.sampled_from(operations(api)))
    raw = data.draw(st.one_of(json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200)))
    check(http.post(path, content=raw), None)


def test_wrong_methods_and_unknown_paths(api: dict[str, Any], http: httpx.Client) -> None:
    for path, _ in operations(api):
        assert http.get(path).status_code == 405
    assert http.post("/v1/nope", json={}).status_code == 404


def test_examples_themselves_succeed(api: dict[str, Any], http: httpx.Client, tmp_path: Path) -> None:
    for path, content in operations(api):
        if path in ("/v1/feedback", "/v1/track"):
            continue  # needs a real request id
        r = http.post(path, json=content["example"])
        assert r.status_code == 200, (path, r.text)


NASTY: list[Any] = [None, True, -1, 0, 2**63, 1e308, -0.5, "", "x", "💥" * 500, [], [1, "a"], {},
                   {"a": {"b": []}}]


def test_every_schema_property_with_every_nasty_value(api: dict[str, Any], http: httpx.Client) -> None:
    """Systematic sweep: each property of each body set to each awkward JSON value."""
    for path, content in operations(api):
        for name in sorted(content["schema"]["properties"]):
            for value in NASTY:
                body = {**content["example"], name: value}
                try:
                    check(post(http, path, body), name)
                except AssertionError as exc:
                    raise AssertionError(f"{path} {name}={value!r:.60}: {exc}") from None
