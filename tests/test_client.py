"""canaryflow.Client: served from cache, refreshed after registry changes made elsewhere, thread-safe."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import canaryflow
from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.segments import SegmentFile
from canaryflow.domain.serving import Exposure
from canaryflow.errors import NotFound
from canaryflow.registry import Registry
from canaryflow.serving import AsyncClient, Client
from tests.servers import free_port

VARS = {"product": "Acme"}


def spec(model: str) -> ConfigSpec:
    return ConfigSpec.model_validate({"key": "support-bot", "provider": "openai", "model": model,
                                      "messages": [{"role": "system", "content": "Help with {{product}}."}]})


@pytest.fixture
def url(tmp_path: Path) -> str:
    reg = Registry(f"sqlite:///{tmp_path / 'r.db'}")
    reg.push_config(spec("m1"))
    reg.push_config(spec("m2"))
    reg.push_segments(SegmentFile.model_validate({"segments": [
        {"name": "beta", "rules": [{"attribute": "beta", "op": "equals", "values": [True]}]}]}), by="t")
    reg.close()
    return f"sqlite:///{tmp_path / 'r.db'}"


@pytest.fixture
def other(url: str) -> Iterator[Registry]:
    """Another process's view of the registry (its own engine and connections)."""
    reg = Registry(url)
    yield reg
    reg.close()


def test_client_is_exported_from_the_package() -> None:
    assert canaryflow.Client is Client
    assert canaryflow.AsyncClient is AsyncClient


def test_a_change_made_elsewhere_is_served_after_one_refresh_interval(url: str, other: Registry) -> None:
    client = Client(url, refresh_interval=0.5)
    assert client.resolve("support-bot", {"key": "u"}, VARS).version == 1
    other.set_stable("support-bot", 2, by="ops", reason="test")
    changed_at = time.monotonic()
    deadline = changed_at + 10
    while True:
        started = time.monotonic()
        res = client.resolve("support-bot", {"key": "u"}, VARS)
        if started >= changed_at + client.refresh_interval:
            # any call that starts one interval after the commit must see it (refresh ≤ 0.5 s, so ≤ 1 s)
            assert (res.version, res.model) == (2, "m2")
            break
        assert started < deadline
        time.sleep(0.01)
    assert client.status()["cached"] == {"support-bot": other.serving_state("support-bot").revision}
    client.close()


def test_between_checks_the_cache_answers_without_the_database(url: str, other: Registry) -> None:
    client = Client(url, refresh_interval=3600)
    assert client.resolve("support-bot", {"key": "u"}, VARS).version == 1
    other.set_stable("support-bot", 2, by="ops", reason="test")
    assert client.resolve("support-bot", {"key": "u"}, VARS).version == 1  # throttled: no check yet
    assert client.refresh(force=True) is True
    assert client.resolve("support-bot", {"key": "u"}, VARS).version == 2
    client.close()


def test_segment_changes_trigger_a_recompile(url: str, other: Registry) -> None:
    client = Client(url, refresh_interval=0)
    other.pin("support-bot", "beta", 2, by="ops", reason="dogfood")
    beta = {"key": "u", "attributes": {"beta": True, "plan": "pro"}}
    assert client.resolve("support-bot", beta, VARS).variation == "pinned"
    other.push_segments(SegmentFile.model_validate({"segments": [
        {"name": "beta", "rules": [{"attribute": "plan", "op": "equals", "values": ["team"]}]}]}), by="ops")
    res = client.resolve("support-bot", beta, VARS)
    assert (res.version, res.variation, res.segment) == (1, "stable", "none")
    client.close()


def test_resolution_is_consistent_under_concurrent_readers_and_writers(url: str, other: Registry) -> None:
    client = Client(url, refresh_interval=0.01)
    errors: list[BaseException] = []
    seen: set[int] = set()
    stop = threading.Event()

    def reader(n: int) -> None:
        try:
            while not stop.is_set():
                res = client.resolve("support-bot", {"key": f"user-{n}"}, VARS)
                assert res.model == f"m{res.version}"
                assert res.messages[0]["content"] == "Help with Acme."
                seen.add(res.version)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for i in range(12):
        other.apply_exposure("support-bot", Exposure(candidate_version=2, stage_kind="percent",
                                                     percent=(i * 10) % 100, salt="s"),
                             by="ops", reason="step", source="test")
    other.promote("support-bot", 2, by="ops", reason="done", source="test")
    final = other.serving_state("support-bot").revision
    deadline = time.monotonic() + 10
    while client.status()["cached"].get("support-bot") != final and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert client.status()["cached"]["support-bot"] == final
    assert client.resolve("support-bot", {"key": "anyone"}, VARS).version == 2
    client.close()


def test_an_unreachable_registry_keeps_the_last_state_serving(url: str) -> None:
    client = Client(url, refresh_interval=0)
    assert client.resolve("support-bot", {"key": "u"}, VARS).version == 1
    healthy = client.registry
    client.registry = Registry(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x", migrate=False)
    assert client.resolve("support-bot", {"key": "u"}, VARS).version == 1
    assert "unavailable" in (client.status()["last_error"] or "")
    client.registry = healthy
    assert client.resolve("support-bot", {"key": "u"}, VARS).version == 1
    assert client.status()["last_error"] is None
    client.close()


def test_unknown_key_and_specs(url: str, other: Registry) -> None:
    client = Client(url, refresh_interval=0)
    with pytest.raises(NotFound, match="unknown config 'nope' \\(known: support-bot\\)"):
        client.resolve("nope", {"key": "u"})
    other.push_config(spec("m1").model_copy(update={"key": "nope"}))
    assert client.resolve("nope", {"key": "u"}, VARS).version == 1  # created since: served at once
    assert client.spec("support-bot", 2).model == "m2"
    assert client.spec("support-bot", 1).model == "m1"
    client.close()


async def test_async_resolution(url: str, other: Registry) -> None:
    client = AsyncClient(url, refresh_interval=0)
    assert (await client.resolve("support-bot", {"key": "u"}, VARS)).version == 1
    other.set_stable("support-bot", 2, by="ops", reason="test")
    assert (await client.resolve("support-bot", {"key": "u"}, VARS)).version == 2
    assert (await client.sync.aresolve("support-bot", {"key": "u"}, VARS)).version == 2
    await client.close()
