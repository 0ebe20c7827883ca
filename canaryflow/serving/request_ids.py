"""Signed request ids: the id a response carries says which version, variation and segment served it, when,
and for which client key — so feedback can be attributed to the request itself on any gateway replica.

``cf1_`` + base64url of 49 bytes (70 characters)::

    nonce 8 | served_at ms 6 | version 4 | variation 1 | sha256(config)[:6] | sha256(segment)[:6]
      | client key id 6 | HMAC-SHA256(key, the 37 bytes before)[:12]

The key is shared through the registry (:func:`canaryflow.registry.feedback.signing_key`), so every replica
and SDK on one registry verifies every other's ids; a forged or altered id does not verify. Config and
segment travel as hashes (ids stay short) and are mapped back through the names the process knows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import secrets
import time
from contextvars import ContextVar
from dataclasses import dataclass

PREFIX = "cf1_"
CLIENT_KEY: ContextVar[str] = ContextVar("canaryflow_client_key", default="")
"""The id of the gateway client key of the request being served (set by the gateway's auth middleware;
empty when no keys are configured)."""
_VARIATIONS = ("stable", "candidate", "pinned", "shadow")
_CODE = {v: i + 1 for i, v in enumerate(_VARIATIONS)}
_BODY, _MAC = 37, 12
_NONCE_PREFIX = secrets.token_bytes(4)
_COUNTER = itertools.count(int.from_bytes(secrets.token_bytes(4), "big"))


def name_hash(name: str) -> bytes:
    """The 6-byte hash a request id carries for a config or segment name."""
    return hashlib.sha256(name.encode()).digest()[:6]


def _key_bytes(client_key: str) -> bytes:
    try:
        raw = bytes.fromhex(client_key) if client_key else b""
    except ValueError:
        raw = hashlib.sha256(client_key.encode()).digest()
    return raw[:6].rjust(6, b"\0")


@dataclass(frozen=True)
class Attribution:
    """What a verified request id says about its request."""

    config_hash: bytes
    segment_hash: bytes
    version: int
    variation: str
    served_at: float
    client_key: bytes

    def client_key_matches(self, client_key: str) -> bool:
        """Whether ``client_key`` (a key id, or empty) is the one the request was served for."""
        return hmac.compare_digest(self.client_key, _key_bytes(client_key))


class RequestIds:
    """Makes and verifies signed request ids with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the request id key must be at least 16 bytes")
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self._hashes: dict[str, bytes] = {}

    def _sign(self, body: bytes) -> bytes:
        h = self._mac.copy()
        h.update(body)
        return h.digest()[:_MAC]

    def _hash(self, name: str) -> bytes:
        found = self._hashes.get(name)
        if found is None:
            if len(self._hashes) > 10_000:
                self._hashes.clear()
            found = self._hashes[name] = name_hash(name)
        return found

    def new(self, config: str, version: int, variation: str, segment: str, *, client_key: str = "",
            served_at: float | None = None) -> str:
        """A fresh signed id for a request served now (or at ``served_at``, seconds since the epoch)."""
        at = time.time() if served_at is None else served_at
        nonce = _NONCE_PREFIX + (next(_COUNTER) & 0xFFFFFFFF).to_bytes(4, "big")
        body = b"".join((nonce, int(at * 1000).to_bytes(6, "big"), (version & 0xFFFFFFFF).to_bytes(4, "big"),
                         bytes((_CODE.get(variation, 0),)), self._hash(config), self._hash(segment or "none"),
                         _key_bytes(client_key)))
        return PREFIX + base64.urlsafe_b64encode(body + self._sign(body)).decode()

    def verify(self, request_id: str) -> Attribution | None:
        """The attribution of a request id signed with this key; None if it is not one (or was altered)."""
        if not request_id.startswith(PREFIX) or len(request_id) != len(PREFIX) + 68:
            return None
        try:
            raw = base64.urlsafe_b64decode(request_id[len(PREFIX):])
        except (binascii.Error, ValueError):
            return None
        body, mac = raw[:_BODY], raw[_BODY:]
        if len(mac) != _MAC or not hmac.compare_digest(mac, self._sign(body)):
            return None
        code = body[18]
        if not 1 <= code <= len(_VARIATIONS):
            return None
        return Attribution(config_hash=body[19:25], segment_hash=body[25:31],
                           version=int.from_bytes(body[14:18], "big"), variation=_VARIATIONS[code - 1],
                           served_at=int.from_bytes(body[8:14], "big") / 1000.0, client_key=body[31:37])


__all__ = ["CLIENT_KEY", "PREFIX", "Attribution", "RequestIds", "name_hash"]
