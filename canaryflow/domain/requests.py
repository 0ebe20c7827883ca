"""What the gateway checks in a request body before serving it — only what it must rely on. Pure.

Everything else is the provider's to judge (its 400 reaches the caller unchanged). Checked: ``model``
names a config; ``stream`` is a boolean; the ``canaryflow`` extension is an object of ``user``,
``attributes``, ``variables``; the messages/input exist; token limits are positive integers (the
config's limit is lowered by them); each tool definition has a valid name and an object schema. A failure
is a :class:`ValidationFailed` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from canaryflow.domain.errors import ValidationFailed

EXTENSION_FIELDS = ("user", "key", "attributes", "variables")
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def _check_extension(body: Mapping[str, Any]) -> None:
    ext = body.get("canaryflow")
    if ext is None:
        return
    if not isinstance(ext, Mapping):
        raise ValidationFailed(
            "'canaryflow' must be an object {user, attributes, variables}", source="canaryflow"
        )
    for name in ext:
        if name not in EXTENSION_FIELDS:
            raise ValidationFailed(
                f"unknown field {name!r}: the extension takes user, attributes, variables",
                source=f"canaryflow.{name}",
            )
    user = ext.get("user", ext.get("key"))
    if user is not None and not isinstance(user, str | int):
        raise ValidationFailed("must be a string (the user's key)", source="canaryflow.user")
    for part in ("attributes", "variables"):
        if ext.get(part) is not None and not isinstance(ext[part], Mapping):
            raise ValidationFailed("must be an object", source=f"canaryflow.{part}")


def _schema(value: Any, where: str) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise ValidationFailed("must be a JSON Schema object", source=where)
    if isinstance(value, Mapping) and "type" in value and not isinstance(value["type"], str | list):
        raise ValidationFailed("'type' must be a string or a list of strings", source=f"{where}.type")


def _name(value: Any, where: str) -> None:
    if not isinstance(value, str) or not _TOOL_NAME.fullmatch(value):
        raise ValidationFailed(
            "a tool name must be 1-128 letters, digits, '_', '-', '.' or ':'", source=where
        )


def _check_tools(api: str, tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise ValidationFailed("'tools' must be a list of tool definitions", source="tools")
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, Mapping):
            raise ValidationFailed("a tool definition must be an object", source=where)
        kind = tool.get("type")
        if api == "chat":
            if not isinstance(kind, str):
                raise ValidationFailed("'type' must be a string (\"function\")", source=f"{where}.type")
            if kind == "function":
                fn = tool.get("function")
                if not isinstance(fn, Mapping):
                    raise ValidationFailed(
                        "a function tool needs 'function': {name, parameters}", source=f"{where}.function"
                    )
                _name(fn.get("name"), f"{where}.function.name")
                _schema(fn.get("parameters"), f"{where}.function.parameters")
        elif api == "responses":
            if not isinstance(kind, str):
                raise ValidationFailed("'type' must be a string (\"function\")", source=f"{where}.type")
            if kind == "function":
                _name(tool.get("name"), f"{where}.name")
                _schema(tool.get("parameters"), f"{where}.parameters")
        elif kind is None or kind == "custom":
            _name(tool.get("name"), f"{where}.name")
            if not isinstance(tool.get("input_schema"), Mapping):
                raise ValidationFailed(
                    "a client tool needs an 'input_schema' object", source=f"{where}.input_schema"
                )
            _schema(tool.get("input_schema"), f"{where}.input_schema")
        elif not isinstance(kind, str):
            raise ValidationFailed("'type' must be a string", source=f"{where}.type")


def check_request(api: str, body: Mapping[str, Any]) -> str:
    """Check what the gateway relies on in ``body`` (``chat``, ``responses`` or ``messages``); the config key.

    Raises:
        ValidationFailed: naming the field and the fix.
    """
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ValidationFailed("'model' must name a config key (e.g. \"support-bot\")", source="model")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise ValidationFailed("'stream' must be true or false", source="stream")
    _check_extension(body)
    if api == "responses":
        given = body.get("input")
        if not isinstance(given, str | list) or not given:
            raise ValidationFailed(
                "'input' must be a string or a non-empty list of input items", source="input"
            )
    else:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValidationFailed("'messages' must be a non-empty list", source="messages")
        for i, m in enumerate(messages):
            if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
                raise ValidationFailed(
                    "each message must be an object with a 'role'", source=f"messages[{i}]"
                )
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        limit = body.get(name)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValidationFailed("must be a positive integer (a token limit)", source=name)
    _check_tools(api, body.get("tools"))
    return model


def plain_messages(api: str, body: Mapping[str, Any]) -> list[dict[str, str]]:
    """The request's text as ``{role, content}`` messages (for the traffic log and shadow mirrors)."""
    out: list[dict[str, str]] = []
    if api == "messages" and body.get("system"):
        out.append({"role": "system", "content": _text(body["system"])})
    if api == "responses":
        given = body.get("input")
        if isinstance(given, str):
            return [{"role": "user", "content": given}]
        items = given if isinstance(given, list) else []
        if body.get("instructions"):
            out.append({"role": "system", "content": str(body["instructions"])})
    else:
        items = body.get("messages") or []
    for m in items:
        if isinstance(m, Mapping) and m.get("role") in ("system", "developer", "user", "assistant"):
            role = "system" if m["role"] == "developer" else str(m["role"])
            out.append({"role": role, "content": _text(m.get("content"))})
    return out


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(b.get("text", ""))
            for b in content
            if isinstance(b, Mapping) and b.get("type") in ("text", "input_text", "output_text")
        )
    return ""


__all__ = ["EXTENSION_FIELDS", "check_request", "plain_messages"]
