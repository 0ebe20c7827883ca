"""canaryflow.domain.fastjson gives the standard library's exact values and errors."""

from __future__ import annotations

import json

import pytest

from canaryflow.domain import fastjson

DOCUMENTS = [b'{"a": 1}', b" [1, 2.5, null, true] ", b'"x"', '{"é": "ü\\u2028"}'.encode(), b'{"a": NaN}',
             b'{"a": 1e999}', b'{"a":1} x', b"", b"  ", b"tru", b"\x80abc", b"\xef\xbb\xbf{}", b"\xff\xfe",
             '{"a": 1}'.encode("utf-16"), '{"a": 1}'.encode("utf-32-le"), '{"x": [1]}', "nul"]


def _outcome(fn: object, doc: bytes | str) -> str:
    try:
        return "ok " + repr(fn(doc))  # type: ignore[operator]
    except ValueError as exc:
        return f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize("doc", DOCUMENTS)
def test_loads_is_json_loads(doc: bytes | str) -> None:
    assert _outcome(fastjson.loads, doc) == _outcome(json.loads, doc)


@pytest.mark.parametrize("value", [{"a": [1, 2.5, None, True, "é\u2028"], "b": {}}, [], "x", 3])
def test_dumps_is_compact_json_dumps(value: object) -> None:
    assert fastjson.dumps(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
