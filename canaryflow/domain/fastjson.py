"""``json.loads`` / ``json.dumps`` for the gateway's hot path, with the standard library's exact results.

``json.loads(bytes)`` sniffs the encoding and builds a decoder call chain per document; :func:`loads` decodes
UTF-8 text straight with the standard C scanner (anything else — a BOM, UTF-16/32, invalid UTF-8 — goes to
``json.loads``, so values and errors are the standard ones). :func:`dumps` is compact
``json.dumps(..., separators=(",", ":"), ensure_ascii=False)`` from one encoder made once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_space = re.compile(r"[ \t\n\r]*").match
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def loads(raw: bytes | str) -> Any:
    """``json.loads(raw)``: the same value, or the same error."""
    if isinstance(raw, bytes):
        if raw[:1] == b"\x00" or raw[1:2] == b"\x00" or raw[:3] == b"\xef\xbb\xbf":
            return json.loads(raw)  # UTF-16/32 or a BOM: the standard detection
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return json.loads(raw)
    else:
        text = raw
    try:
        value, end = _scan(text, _space(text, 0).end())  # type: ignore[union-attr]  # (always matches)
    except StopIteration as err:
        raise json.JSONDecodeError("Expecting value", text, err.value) from None
    end = _space(text, end).end()  # type: ignore[union-attr]
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def dumps(value: Any) -> bytes:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()``."""
    return _encode(value).encode()


__all__ = ["dumps", "loads"]
