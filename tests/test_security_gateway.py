"""Gateway client keys (hashed, required beyond loopback, revocable live) and admin endpoints off by default,
against the real gateway and simulator with the official clients."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from canaryflow.errors import ValidationFailed
from canaryflow.gateway.auth import KeyStore, RequireKey, is_loopback, protect
from canaryflow.sim.server import ThreadedServer, run_simulator
from tests.traffic_stack import Stack, running_stack, spec

CLI = str(Path(sys.executable).parent / "canaryflow")
RESOLVE = {"config": "support-bot", "variables": {"product": "Acme"}}
BODY = {"model": "support-bot", "messages": [{"role": "user", "content": "hi"}],
        "canaryflow": {"user": "u-1", "variables": {"product": "Acme"}}}


Secured = tuple[Stack, ThreadedServer, KeyStore]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, ThreadedServer, KeyStore]]:
    tmp = tmp_path_factory.mktemp("sec")
    store = KeyStore(tmp / "keys.json")
    configs = [spec(), spec("claude-bot", provider="anthropic", model="claude-haiku-4-5")]
    with running_stack(tmp, configs=configs) as stack:
        store.add("seed")  # keys exist: protect() wraps the app
        app = protect(stack.gateway.app, "127.0.0.1", store)
        assert isinstance(app, RequireKey)
        server = ThreadedServer(app)
        server.start()
        try:
            yield stack, server, store
        finally:
            server.stop()


def test_keys_file_holds_only_salted_hashes(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "k.json")
    rec_a, key_a = store.add("app-a")
    rec_b, key_b = store.add("app-b")
    text = (tmp_path / "k.json").read_text()
    for key in (key_a, key_b):
        secret = key.split("_", 2)[2]
        assert secret not in text and key not in text
    assert rec_a.salt != rec_b.salt
    assert (tmp_path / "k.json").stat().st_mode & 0o077 == 0
    assert store.verify(key_a) == rec_a and store.verify(key_b) == rec_b
    assert store.verify(key_a[:-1] + ("A" if key_a[-1] != "A" else "B")) is None
    assert store.verify(f"cfk_{rec_a.id}_") is None and store.verify("sk-other") is None
    assert store.verify(None) is None


def test_openai_and_anthropic_clients_need_a_key(secured: tuple[Stack, ThreadedServer, KeyStore]) -> None:
    _, server, store = secured
    _, key = store.add("clients")
    extra = {"canaryflow": BODY["canaryflow"]}
    good = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    done = good.chat.completions.create(model="support-bot", messages=[{"role": "user", "content": "hi"}],
                                        extra_body=extra)
    assert done.choices[0].message.content
    bad = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-not-a-gateway-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        bad.chat.completions.create(model="support-bot", messages=[{"role": "user", "content": "hi"}])
    assert "sk-not-a-gateway-key" not in str(err.value)
    ant = anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0)
    msg = ant.messages.create(model="claude-bot", max_tokens=50, messages=[{"role": "user", "content": "hi"}],
                              extra_body=extra)
    assert msg.content
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=server.url, api_key="nope", max_retries=0).messages.create(
            model="claude-bot", max_tokens=50, messages=[{"role": "user", "content": "hi"}])


def test_an_anthropic_caller_gets_the_401_in_anthropic_s_shape(secured: Secured) -> None:
    """``/v1/messages`` (and any path the Anthropic client calls: it sends ``anthropic-version``) answers a
    missing key in Anthropic's error shape, as the OpenAI paths answer in OpenAI's."""
    _, server, _ = secured
    with pytest.raises(anthropic.AuthenticationError) as err:
        anthropic.Anthropic(base_url=server.url, api_key="nope", max_retries=0).models.list()
    body = err.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "authentication_error" and "gateway key" in body["error"]["message"]
    r = httpx.post(f"{server.url}/v1/messages", json=BODY)
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "authentication_error"
    r = httpx.post(f"{server.url}/v1/chat/completions", json=BODY)
    assert r.json()["error"]["code"] == "invalid_api_key" and "type" not in r.json()


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/resolve", "/v1/feedback"])
def test_every_api_path_refuses_without_key(secured: Secured, path: str) -> None:
    _, server, _ = secured
    r = httpx.post(f"{server.url}{path}", json=BODY)
    assert r.status_code == 401
    assert r.json()["error"]["param"] == "authorization"


def test_probes_stay_open(secured: tuple[Stack, ThreadedServer, KeyStore]) -> None:
    _, server, _ = secured
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert httpx.get(f"{server.url}/metrics").status_code == 200


def test_revoked_key_is_refused_by_the_running_gateway(secured: tuple[Stack, ThreadedServer, KeyStore],
                                                       tmp_path: Path) -> None:
    _, server, store = secured
    record, key = KeyStore(store.path).add("short-lived")  # another process's view of the same file
    headers = {"authorization": f"Bearer {key}"}
    deadline = time.monotonic() + 10
    while httpx.post(f"{server.url}/v1/resolve", json=RESOLVE, headers=headers
                     ).status_code != 200:
        assert time.monotonic() < deadline, "the new key was never accepted"
        time.sleep(0.2)
    KeyStore(store.path).revoke(record.id)
    deadline = time.monotonic() + 10
    while httpx.post(f"{server.url}/v1/resolve", json=RESOLVE, headers=headers
                     ).status_code != 401:
        assert time.monotonic() < deadline, "the revoked key is still accepted"
        time.sleep(0.2)


def test_non_loopback_without_keys_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = KeyStore(tmp_path / "none.json")
    monkeypatch.delenv("CANARYFLOW_GATEWAY_ALLOW_ANONYMOUS", raising=False)
    with pytest.raises(ValidationFailed) as err:
        protect(object(), "0.0.0.0", empty)
    assert err.value.source == "--host"
    monkeypatch.setenv("CANARYFLOW_GATEWAY_ALLOW_ANONYMOUS", "true")  # explicit opt-out (private networks)
    opted = object()
    assert protect(opted, "0.0.0.0", empty) is opted
    monkeypatch.setenv("CANARYFLOW_GATEWAY_ALLOW_ANONYMOUS", "no")
    with pytest.raises(ValidationFailed):
        protect(object(), "10.1.2.3", empty)
    app = object()
    assert protect(app, "127.0.0.1", empty) is app  # loopback: optional
    assert is_loopback("::1") and is_loopback("localhost") and not is_loopback("10.0.0.5")


def test_gateway_command_refuses_a_public_host_without_keys(tmp_path: Path) -> None:
    env = {"CANARYFLOW_GATEWAY_KEYS_FILE": str(tmp_path / "none.json"),
           "CANARYFLOW_DB_URL": f"sqlite:///{tmp_path / 'r.db'}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([CLI, "gateway", "--host", "0.0.0.0", "--port", "1"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 1
    assert "refusing to listen on 0.0.0.0 without client keys" in out.stderr
    assert "Traceback" not in out.stderr


def test_keys_cli_add_list_revoke(tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CLI, "gateway-keys", *args, "--file", str(tmp_path / "k.json")],
                              capture_output=True, text=True, timeout=60)

    added = cli("add", "web-app")
    assert added.returncode == 0
    key = added.stdout.strip()
    assert key.startswith("cfk_")
    listed = cli("list", "--json")
    rows = json.loads(listed.stdout)
    assert [r["name"] for r in rows] == ["web-app"] and rows[0]["active"]
    assert key not in listed.stdout and key.split("_", 2)[2] not in (tmp_path / "k.json").read_text()
    assert cli("revoke", rows[0]["id"]).returncode == 0
    assert not json.loads(cli("list", "--json").stdout)[0]["active"]
    missing = cli("revoke", "nope")
    assert missing.returncode == 1 and "no gateway key" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_admin_endpoints_off_unless_enabled() -> None:
    with run_simulator(admin=False) as sim:
        assert httpx.get(f"{sim.url}/admin/profiles").status_code == 404
        assert httpx.post(f"{sim.url}/admin/profiles", json={"profiles": {}}).status_code in (404, 405)
        assert httpx.post(f"{sim.url}/admin/reset").status_code in (404, 405)
    with run_simulator(admin=True) as sim:
        assert httpx.get(f"{sim.url}/admin/profiles").status_code == 200


def test_gateway_has_no_admin_surface(secured: tuple[Stack, ThreadedServer, KeyStore]) -> None:
    stack, _, _ = secured
    for path in ("/admin", "/admin/profiles", "/admin/keys", "/admin/reset"):
        assert httpx.get(f"{stack.url}{path}").status_code == 404
        assert httpx.post(f"{stack.url}{path}", json={}).status_code in (404, 405)
