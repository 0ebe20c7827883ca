"""Tools and structured outputs a config version defines, and their wire shapes per API.

In a config file (neutral form, one shape whatever the provider)::

    tools:
      - {name: lookup_order, description: "Find an order by id",
         parameters: {type: object, properties: {id: {type: string}}, required: [id]}}
    tool_choice: auto            # auto | none | required | {name: lookup_order}
    response_format: {type: json_schema, name: answer, schema: {type: object, ...}, strict: true}

Every schema is checked against its JSON Schema metaschema (``$schema`` if it names one, else draft
2020-12) when the file is validated, so a schema the provider would reject is refused at push. The
``*_wire`` functions give the shapes each API expects (Chat Completions, Responses, Anthropic Messages).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import jsonschema
import jsonschema.exceptions
import jsonschema.validators
from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
ToolChoiceMode = Literal["auto", "none", "required"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _schema_path(path: Sequence[object]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def check_json_schema(schema: Any, *, require_object: bool = False) -> dict[str, Any]:
    """``schema`` if it is a valid JSON Schema (a mapping), else ``ValueError`` saying where and why.

    Args:
        schema: the schema as written.
        require_object: also require ``type: object`` at the top (tool parameters must describe an object).
    """
    if not isinstance(schema, Mapping):
        raise ValueError(f"must be a JSON Schema object (a mapping), got {type(schema).__name__}")
    checked: dict[str, Any] = dict(schema)
    cls = jsonschema.validators.validator_for(checked, default=jsonschema.Draft202012Validator)
    error = jsonschema.exceptions.best_match(cls(cls.META_SCHEMA).iter_errors(checked))
    if error is not None:
        where = _schema_path(error.absolute_path)
        raise ValueError(f"not a valid JSON Schema{f' at {where}' if where else ''}: {error.message}")
    if require_object and checked.get("type") != "object":
        raise ValueError("the parameters schema must have type: object (the arguments are a JSON object)")
    return checked


class Tool(_Strict):
    """A function the model may call."""

    name: str = Field(pattern=NAME_PATTERN, description="letters, digits, _ and -, at most 64")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None

    @field_validator("parameters", mode="before")
    @classmethod
    def _valid_schema(cls, value: Any) -> dict[str, Any]:
        return check_json_schema(value, require_object=True)


class NamedToolChoice(_Strict):
    """``tool_choice: {name: X}``: the model must call tool X."""

    name: str = Field(pattern=NAME_PATTERN)


ToolChoice = ToolChoiceMode | NamedToolChoice


class JsonSchemaFormat(_Strict):
    """``response_format: {type: json_schema, ...}``: the answer is JSON matching ``schema``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: Literal["json_schema"]
    name: str = Field(pattern=NAME_PATTERN, description="letters, digits, _ and -, at most 64")
    description: str | None = None
    json_schema: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None

    @field_validator("json_schema", mode="before")
    @classmethod
    def _valid_schema(cls, value: Any) -> dict[str, Any]:
        return check_json_schema(value)


def check_tool_names(tools: Sequence[Tool]) -> None:
    """``ValueError`` when two tools share a name."""
    names = [t.name for t in tools]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate tool names {dupes}: each tool needs its own name")


def check_tool_choice(tools: Sequence[Tool], choice: ToolChoice | None) -> None:
    """``ValueError`` when ``choice`` cannot be honoured by ``tools``."""
    if choice is None:
        return
    if not tools:
        raise ValueError("set without tools: define tools or remove tool_choice")
    names = [t.name for t in tools]
    if isinstance(choice, NamedToolChoice) and choice.name not in names:
        raise ValueError(f"names tool {choice.name!r}, which is not one of the tools {names}")


# ---- wire shapes (plain dicts in, plain dicts out: Resolution carries the neutral form) -------------

def _function(tool: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool["name"]}
    if tool.get("description"):
        out["description"] = tool["description"]
    out["parameters"] = tool.get("parameters") or {"type": "object", "properties": {}}
    if tool.get("strict") is not None:
        out["strict"] = tool["strict"]
    return out


def chat_tools_wire(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Chat Completions ``tools``: ``[{"type": "function", "function": {...}}]``."""
    return [{"type": "function", "function": _function(t)} for t in tools]


def responses_tools_wire(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Responses API ``tools``: ``[{"type": "function", "name": ..., "parameters": ...}]``."""
    return [{"type": "function", **_function(t)} for t in tools]


def anthropic_tools_wire(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Anthropic Messages ``tools``: ``[{"name", "description", "input_schema"}]``."""
    out = []
    for t in tools:
        item: dict[str, Any] = {"name": t["name"]}
        if t.get("description"):
            item["description"] = t["description"]
        item["input_schema"] = t.get("parameters") or {"type": "object", "properties": {}}
        out.append(item)
    return out


def chat_tool_choice_wire(choice: str | Mapping[str, Any]) -> str | dict[str, Any]:
    """Chat Completions ``tool_choice``."""
    if isinstance(choice, str):
        return choice
    return {"type": "function", "function": {"name": choice["name"]}}


def responses_tool_choice_wire(choice: str | Mapping[str, Any]) -> str | dict[str, Any]:
    """Responses API ``tool_choice``."""
    return choice if isinstance(choice, str) else {"type": "function", "name": choice["name"]}


def anthropic_tool_choice_wire(choice: str | Mapping[str, Any]) -> dict[str, Any]:
    """Anthropic ``tool_choice``: auto, none, any (= required) or ``{"type": "tool", "name": ...}``."""
    if isinstance(choice, str):
        return {"type": {"required": "any"}.get(choice, choice)}
    return {"type": "tool", "name": choice["name"]}


def chat_response_format_wire(fmt: Mapping[str, Any]) -> dict[str, Any]:
    """Chat Completions ``response_format``: ``{"type": "json_schema", "json_schema": {...}}``."""
    inner: dict[str, Any] = {"name": fmt["name"], "schema": fmt["schema"]}
    for k in ("description", "strict"):
        if fmt.get(k) is not None:
            inner[k] = fmt[k]
    return {"type": "json_schema", "json_schema": inner}


def responses_format_wire(fmt: Mapping[str, Any]) -> dict[str, Any]:
    """Responses API ``text.format``: ``{"type": "json_schema", "name", "schema", ...}``."""
    out: dict[str, Any] = {"type": "json_schema", "name": fmt["name"], "schema": fmt["schema"]}
    for k in ("description", "strict"):
        if fmt.get(k) is not None:
            out[k] = fmt[k]
    return out


__all__ = [
    "NAME_PATTERN", "JsonSchemaFormat", "NamedToolChoice", "Tool", "ToolChoice",
    "anthropic_tool_choice_wire", "anthropic_tools_wire", "chat_response_format_wire",
    "chat_tool_choice_wire", "chat_tools_wire", "check_json_schema", "check_tool_choice", "check_tool_names",
    "responses_format_wire", "responses_tool_choice_wire", "responses_tools_wire",
]
