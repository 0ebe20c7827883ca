"""Optional encryption of workflow payloads (AES-256-GCM), and the codec server the Temporal UI can call.

Set ``CANARYFLOW_PAYLOAD_KEY`` (32 bytes as 64 hex digits or URL-safe base64; make one with
``python -c "import secrets; print(secrets.token_hex(32))"``) in the environment of every worker and client:
:func:`data_converter` then wraps the pydantic converter with :class:`AesGcmCodec`, so workflow inputs,
results, signal and query payloads and activity arguments are stored encrypted in Temporal's database and
history. Without the key, payloads are plain JSON (the local default). Search attributes are never encrypted
(Temporal indexes them): they hold only the config key, stage, percent and state.

The Temporal UI shows encrypted payloads as binary until it is pointed at a codec server:
``canaryflow codec-server --port 8888 --ui-origin http://localhost:8233`` then, in the UI, *Settings →
Codec Server → http://127.0.0.1:8888* (or ``temporal server start-dev --ui-codec-endpoint ...``). The codec
server holds the key: run it where only operators can reach it.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

from canaryflow.errors import CanaryflowError, ValidationFailed

KEY_ENV = "CANARYFLOW_PAYLOAD_KEY"
ENCODING = b"binary/encrypted"
KEY_ID_FIELD = "encryption-key-id"


def parse_key(text: str) -> bytes:
    """A 32-byte AES key from 64 hex digits or URL-safe base64.

    Raises:
        ValidationFailed: the text is not a 32-byte key (the message never repeats it).
    """
    text = text.strip()
    raw: bytes | None = None
    try:
        padded = text + "=" * (-len(text) % 4)
        raw = bytes.fromhex(text) if len(text) == 64 else base64.urlsafe_b64decode(padded)
    except (ValueError, binascii.Error):
        raw = None
    if raw is None or len(raw) != 32:
        raise ValidationFailed(f"{KEY_ENV} must be 32 bytes as 64 hex digits or base64 "
                               "(python -c \"import secrets; print(secrets.token_hex(32))\")", source=KEY_ENV)
    return raw


def key_from_env() -> bytes | None:
    """The payload key from ``CANARYFLOW_PAYLOAD_KEY``, or None when it is unset or empty."""
    text = os.environ.get(KEY_ENV, "")
    return parse_key(text) if text.strip() else None


class AesGcmCodec(PayloadCodec):
    """Encrypts each payload whole (metadata and data) with AES-256-GCM and a random 96-bit nonce."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        # A short, non-secret id of the key, so a wrong key is reported as such (key rotation hint).
        self.key_id = base64.urlsafe_b64encode(AESGCM(key).encrypt(b"\0" * 12, b"key-id", None)[:6]).decode()

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt ``payloads``."""
        out = []
        for p in payloads:
            nonce = os.urandom(12)
            sealed = nonce + self._aead.encrypt(nonce, p.SerializeToString(), None)
            out.append(Payload(metadata={"encoding": ENCODING, KEY_ID_FIELD: self.key_id.encode()},
                               data=sealed))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt ``payloads``; plain ones (written before encryption was turned on) pass through."""
        out = []
        for p in payloads:
            if p.metadata.get("encoding") != ENCODING:
                out.append(p)
                continue
            key_id = p.metadata.get(KEY_ID_FIELD, b"").decode()
            try:
                plain = self._aead.decrypt(p.data[:12], p.data[12:], None)
            except (InvalidTag, ValueError):
                raise CanaryflowError(f"cannot decrypt a workflow payload: it was encrypted with key id "
                                      f"{key_id!r}, this process has {self.key_id!r} ({KEY_ENV})") from None
            decoded = Payload()
            decoded.ParseFromString(plain)
            out.append(decoded)
        return out


def data_converter(key: bytes | None = None) -> DataConverter:
    """The pydantic data converter, encrypting payloads when a key is given or set in the environment."""
    key = key if key is not None else key_from_env()
    if key is None:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=AesGcmCodec(key))


__all__ = ["KEY_ENV", "AesGcmCodec", "data_converter", "key_from_env", "parse_key"]
