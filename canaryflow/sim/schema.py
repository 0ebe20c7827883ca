"""JSON values from a JSON Schema: one that matches (:func:`example`) and one that does not (:func:`violate`).

Enough of JSON Schema for tool parameters and structured outputs: ``type`` (or a list of types),
``properties`` / ``required``, ``items`` / ``minItems``, ``enum``, ``const``, ``anyOf`` / ``oneOf`` /
``allOf`` (first branch), local ``$ref`` (``#/$defs/...``, ``#/definitions/...``), numeric and length
bounds. Draws come from the caller's seeded ``random.Random``, so answers repeat per seed.
"""

from __future__ import annotations

import random
from typing import Any

_WORDS = ("alpha", "bravo", "canary", "delta", "echo", "foxtrot", "harbor", "orbit", "quartz", "signal")
_MAX_DEPTH = 8
_TEXT_FIELDS = ("answer", "text", "content", "response", "message", "reply", "summary")


def _resolve(schema: Any, root: dict[str, Any]) -> Any:
    seen = 0
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and seen < 16:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            return {}
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(node, dict) else None
        schema = node if isinstance(node, dict) else {}
        seen += 1
    return schema


def _type_of(schema: dict[str, Any]) -> str | None:
    t = schema.get("type")
    if isinstance(t, list):
        non_null = [x for x in t if x != "null"]
        return str(non_null[0]) if non_null else "null"
    if isinstance(t, str):
        return t
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return None


def example(schema: Any, rng: random.Random, text: str = "", *, root: dict[str, Any] | None = None,
            depth: int = 0) -> Any:
    """A value valid under ``schema``; the first free string field gets ``text`` when given."""
    root = root if root is not None else (schema if isinstance(schema, dict) else {})
    schema = _resolve(schema, root)
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            merged = {k: v for k, v in schema.items() if k != key}
            branch = _resolve(schema[key][0], root)
            return example({**merged, **(branch if isinstance(branch, dict) else {})}, rng, text, root=root,
                           depth=depth + 1)
    kind = _type_of(schema)
    if depth > _MAX_DEPTH:
        return None
    if kind == "object":
        props: dict[str, Any] = schema["properties"] if isinstance(schema.get("properties"), dict) else {}
        out: dict[str, Any] = {}
        preferred = next((n for n in _TEXT_FIELDS if n in props and _free_string(_resolve(props[n], root))),
                         None)
        for name, sub in props.items():
            value = example(sub, rng, text if preferred in (None, name) else "", root=root, depth=depth + 1)
            if text and isinstance(value, str) and _free_string(_resolve(sub, root)) \
                    and preferred in (None, name):
                value, text = text, ""
            out[name] = value
        return out
    if kind == "array":
        n = max(int(schema.get("minItems", 1) or 0), 1)
        n = min(n, int(schema.get("maxItems", n)))
        return [example(schema.get("items", {}), rng, root=root, depth=depth + 1) for _ in range(n)]
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date":
            return "2026-01-15"
        if fmt == "date-time":
            return "2026-01-15T10:00:00Z"
        if fmt == "email":
            return "user@example.com"
        value = f"{rng.choice(_WORDS)}-{rng.randint(100, 999)}"
        shortest, longest = schema.get("minLength", 0), schema.get("maxLength")
        value = value.ljust(int(shortest) if isinstance(shortest, int) else 0, "x")
        return value[:longest] if isinstance(longest, int) else value
    if kind in ("integer", "number"):
        low: Any = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        high: Any = schema.get("maximum", schema.get("exclusiveMaximum", max(low, 0) + 100))
        low_i = int(low) + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
        high_i = int(high) - (1 if "exclusiveMaximum" in schema and "maximum" not in schema else 0)
        value = rng.randint(low_i, max(low_i, high_i))
        return value if kind == "integer" else float(value)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return f"{rng.choice(_WORDS)}"


def _free_string(schema: Any) -> bool:
    return isinstance(schema, dict) and not any(k in schema for k in ("enum", "const", "format", "maxLength"))


def violate(schema: Any, rng: random.Random) -> Any:
    """A JSON value that does **not** match ``schema``: a required field missing, or a field of the wrong
    type, or a non-object where an object is asked."""
    root = schema if isinstance(schema, dict) else {}
    schema = _resolve(schema, root)
    valid = example(schema, rng, root=root)
    if not isinstance(valid, dict):
        return {"unexpected": valid} if not isinstance(valid, str) else 12345
    required = [r for r in schema.get("required", []) if r in valid]
    if required and rng.random() < 0.5:
        del valid[rng.choice(required)]
        return valid
    props = schema.get("properties") or {}
    if props:
        name = rng.choice(sorted(props))
        value = valid.get(name)
        valid[name] = 12345 if isinstance(value, str) else "not-a-" + (_type_of(_resolve(props[name], root))
                                                                        or "value")
        return valid
    return [valid]


__all__ = ["example", "violate"]
