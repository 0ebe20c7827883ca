"""Gateway client API keys: stored hashed in a keys file, required when the gateway listens beyond loopback.

A key looks like ``cfk_<id>_<secret>``: the id finds the record, the secret is checked against its salted
SHA-256 digest with a constant-time comparison. Secrets are 32 random bytes, so a fast salted hash is enough
(no password stretching needed); the plain key is shown once, when it is created, and never stored.

The keys file (``CANARYFLOW_GATEWAY_KEYS_FILE``, default ``.canaryflow/gateway-keys.json``) is JSON::

    {"keys": [{"id": "3f9c…", "name": "web-app", "salt": "…", "sha256": "…", "created_at": 1.7e9,
               "revoked_at": null}]}

The middleware re-reads the file when it changes (checked at most once a second), so ``canaryflow gateway-keys
revoke`` takes effect on a running gateway. Clients send the key as ``Authorization: Bearer <key>``
(the OpenAI client's ``api_key``) or ``x-api-key: <key>`` (the Anthropic client's). ``/healthz``,
``/metrics`` and ``/openapi.json`` stay open (probes, Prometheus, the API description); every other
path needs a valid key. The key's id is signed into every request id served for it, and feedback on a
request must come with the same key (403 otherwise).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from canaryflow.errors import NotFound, ValidationFailed
from canaryflow.gateway.protocol import anthropic_caller
from canaryflow.serving.request_ids import CLIENT_KEY
from canaryflow.settings import get_settings

log = logging.getLogger("canaryflow.gateway")
OPEN_PATHS = frozenset({"/healthz", "/metrics", "/openapi.json"})
"""Paths served without a key (liveness probes, Prometheus scrapes)."""
KEY_PREFIX = "cfk_"
ANONYMOUS_ENV = "CANARYFLOW_GATEWAY_ALLOW_ANONYMOUS"


def default_keys_file() -> Path:
    """``CANARYFLOW_GATEWAY_KEYS_FILE`` or ``.canaryflow/gateway-keys.json``."""
    return Path(get_settings().gateway_keys_file)


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


@dataclass
class KeyRecord:
    """One client key as stored: never the key itself."""

    id: str
    name: str
    salt: str
    sha256: str
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None

    def public(self) -> dict[str, Any]:
        """What ``keys list`` shows (no salt, no digest)."""
        return {"id": self.id, "name": self.name, "created_at": self.created_at,
                "revoked_at": self.revoked_at, "active": self.active}


class KeyStore:
    """The keys file: add, list, revoke, verify."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_keys_file()
        self._lock = threading.Lock()
        self._records: dict[str, KeyRecord] = {}
        self._mtime: float | None = None
        self._checked = 0.0
        self._load()

    # --- file -------------------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._records, self._mtime = {}, None
            return
        if stat.st_mtime == self._mtime:
            return
        try:
            raw = json.loads(self.path.read_text())
            records = [KeyRecord(**r) for r in raw.get("keys", [])]
        except (ValueError, TypeError) as exc:
            raise ValidationFailed(f"{self.path} is not a canaryflow keys file ({type(exc).__name__}); "
                                   "recreate it with 'canaryflow gateway-keys add'",
                                   source="CANARYFLOW_GATEWAY_KEYS_FILE") from None
        self._records = {r.id: r for r in records}
        self._mtime = stat.st_mtime

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"keys": [asdict(r) for r in self._records.values()]}, indent=2))
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)
        self._mtime = self.path.stat().st_mtime

    def refresh(self, every: float = 1.0) -> None:
        """Re-read the file if it changed (at most once per ``every`` seconds)."""
        now = time.monotonic()
        if now - self._checked < every:
            return
        with self._lock:
            self._checked = now
            self._load()

    # --- operations -------------------------------------------------------------------------------
    def add(self, name: str) -> tuple[KeyRecord, str]:
        """Create a key named ``name``; returns its record and the plain key (shown once)."""
        if not name.strip() or len(name) > 100:
            raise ValidationFailed("name must be 1-100 characters", source="name")
        key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_hex(16)
        record = KeyRecord(id=key_id, name=name.strip(), salt=salt, sha256=_digest(salt, secret),
                           created_at=time.time())
        with self._lock:
            self._load()
            self._records[key_id] = record
            self._save()
        return record, f"{KEY_PREFIX}{key_id}_{secret}"

    def list(self) -> list[KeyRecord]:
        """Every key, oldest first (revoked ones included)."""
        with self._lock:
            self._load()
            return sorted(self._records.values(), key=lambda r: r.created_at)

    def revoke(self, key_id: str) -> KeyRecord:
        """Revoke the key ``key_id`` (idempotent). Raises NotFound for an unknown id."""
        with self._lock:
            self._load()
            record = self._records.get(key_id)
            if record is None:
                raise NotFound(f"no gateway key with id {key_id!r}: see 'canaryflow gateway-keys list'")
            if record.revoked_at is None:
                record.revoked_at = time.time()
                self._save()
            return record

    def active_count(self) -> int:
        """How many keys can be used."""
        return sum(1 for r in self._records.values() if r.active)

    def verify(self, presented: str | None) -> KeyRecord | None:
        """The active record ``presented`` belongs to, or None."""
        if not presented or not presented.startswith(KEY_PREFIX):
            return None
        key_id, sep, secret = presented[len(KEY_PREFIX):].partition("_")
        record = self._records.get(key_id)
        if not sep or record is None or not record.active:
            return None
        return record if hmac.compare_digest(record.sha256, _digest(record.salt, secret)) else None


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts local connections (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def presented_key(headers: dict[str, str]) -> str | None:
    """The key a client sent: ``Authorization: Bearer …`` or ``x-api-key``."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("x-api-key", "").strip() or None


class RequireKey:
    """ASGI middleware: a valid client key on every path but :data:`OPEN_PATHS`, else 401 (no detail)."""

    def __init__(self, app: Any, store: KeyStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        self.store.refresh()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        record = self.store.verify(presented_key(headers))
        if record is None:
            message = ("a valid canaryflow gateway key is required (Authorization: Bearer cfk_… or "
                       "x-api-key); create one with 'canaryflow gateway-keys add NAME'")
            error = {"message": message, "type": "authentication_error", "param": "authorization"}
            body = json.dumps({"type": "error", "error": error}
                              if anthropic_caller(str(scope.get("path", "")), headers) else
                              {"error": {**error, "code": "invalid_api_key"}}).encode()
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"www-authenticate", b"Bearer")]})
            await send({"type": "http.response.body", "body": body})
            return
        token = CLIENT_KEY.set(record.id)  # request ids are signed for it; feedback must come with it
        try:
            await self.app(scope, receive, send)
        finally:
            CLIENT_KEY.reset(token)


def anonymous_allowed() -> bool:
    """``CANARYFLOW_GATEWAY_ALLOW_ANONYMOUS=true``: serve without keys beyond loopback (a private network
    only, e.g. the compose demo on the simulator)."""
    return get_settings().gateway_allow_anonymous


def protect(app: Any, host: str, store: KeyStore | None = None) -> Any:
    """``app`` behind :class:`RequireKey` when keys exist; refuse a non-loopback ``host`` without keys.

    On loopback with no keys configured, ``app`` is returned as is (local development); beyond loopback
    too when ``CANARYFLOW_GATEWAY_ALLOW_ANONYMOUS`` is set (an explicit, logged opt-out).

    Raises:
        ValidationFailed: ``host`` is reachable from other machines and no active key is configured.
    """
    store = store or KeyStore()
    if store.active_count() == 0:
        if not is_loopback(host) and not anonymous_allowed():
            raise ValidationFailed(
                f"refusing to listen on {host} without client keys: create one with 'canaryflow gateway-keys "
                f"add NAME' (keys file {store.path}) or listen on 127.0.0.1", source="--host")
        if not is_loopback(host):
            log.warning("gateway on %s without client keys (%s is set)", host, ANONYMOUS_ENV)
        return app
    return RequireKey(app, store)


__all__ = ["ANONYMOUS_ENV", "OPEN_PATHS", "KeyRecord", "KeyStore", "RequireKey", "anonymous_allowed",
           "is_loopback", "presented_key", "protect"]
