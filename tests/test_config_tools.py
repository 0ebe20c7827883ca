"""Tools, tool_choice and response_format in config files: validated at load (the schemas against the JSON
Schema metaschema), errors naming file, line and field; part of the content hash, of `config diff` and of
the resolution; their wire shapes per API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from canaryflow.cli import app
from canaryflow.cli._common import run_app
from canaryflow.domain import tools as wire
from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.resolution import resolve
from canaryflow.domain.serving import ServingState
from canaryflow.errors import ValidationFailed
from canaryflow.files import load_config

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

GOOD = """\
key: order-bot
provider: openai
model: gpt-4o-mini
parameters: {max_tokens: 200}
tools:
  - name: lookup_order
    description: Find an order by id
    parameters:
      type: object
      properties:
        id: {type: string}
      required: [id]
tool_choice: {name: lookup_order}
response_format:
  type: json_schema
  name: answer
  schema:
    type: object
    properties:
      text: {type: string}
"""


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_tools_and_response_format_load_and_resolve(tmp_path: Path) -> None:
    spec = load_config(write(tmp_path, GOOD))
    state = ServingState(config_key="order-bot", stable_version=1)
    res = resolve(state, {1: spec}, [])
    assert res.tools == ({"name": "lookup_order", "description": "Find an order by id",
                          "parameters": {"type": "object", "properties": {"id": {"type": "string"}},
                                         "required": ["id"]}},)
    assert res.tool_choice == {"name": "lookup_order"}
    assert res.response_format == {"type": "json_schema", "name": "answer",
                                   "schema": {"type": "object", "properties": {"text": {"type": "string"}}}}
    assert res.as_dict()["tools"][0]["name"] == "lookup_order"
    assert res.as_dict()["response_format"]["name"] == "answer"


def test_a_config_without_tools_resolves_without_them_and_keeps_its_hash() -> None:
    spec = ConfigSpec.model_validate({"key": "a", "provider": "openai", "model": "m", "tools": []})
    res = resolve(ServingState(config_key="a", stable_version=1), {1: spec}, [])
    assert (res.tools, res.tool_choice, res.response_format) == ((), None, None)
    # the hash of a version written before tools existed must not change
    assert spec.content_hash() == "7629a2d6d697eb6de69d9feb98e8d003c5fc1bb17437991f0725093306a7c67e"
    assert "tools" not in spec.content()


@pytest.mark.parametrize("change", [
    ("description: Find an order by id", "description: Order lookup"),
    ("id: {type: string}", "id: {type: integer}"),
    ("text: {type: string}", "text: {type: string, maxLength: 200}"),
    ("tool_choice: {name: lookup_order}", "tool_choice: required"),
])
def test_every_tool_or_schema_change_is_a_new_content_hash(tmp_path: Path, change: tuple[str, str]) -> None:
    a = load_config(write(tmp_path, GOOD, "a.yaml"))
    b = load_config(write(tmp_path, GOOD.replace(*change), "b.yaml"))
    assert a.content_hash() != b.content_hash()


BAD = [
    ("schema type misspelt", GOOD.replace("id: {type: string}", "id: {type: strin}"),
     ["line 8", "tools[0].parameters", "not a valid JSON Schema at properties.id.type", "'strin'"]),
    ("required not a list", GOOD.replace("required: [id]", "required: id"),
     ["line 8", "tools[0].parameters", "at required", "'id' is not of type 'array'"]),
    ("parameters not an object schema", GOOD.replace("      type: object\n      properties:\n        id",
                                                     "      type: string\n      properties:\n        id"),
     ["tools[0].parameters", "must have type: object"]),
    ("parameters not a mapping", GOOD.replace("    parameters:\n      type: object\n",
                                              "    parameters: [1]\n    x:\n      type: object\n"),
     ["tools[0]"]),
    ("bad tool name", GOOD.replace("  - name: lookup_order", "  - name: lookup order"),
     ["line 6", "tools[0].name", "pattern"]),
    ("duplicate tool", GOOD.replace("tool_choice:", "  - {name: lookup_order}\ntool_choice:"),
     ["line 5", "tools", "duplicate tool names ['lookup_order']"]),
    ("unknown tool field", GOOD.replace("    description: Find", "    descripton: Find"),
     ["line 7", "tools[0].descripton", "unknown field"]),
    ("choice names a missing tool", GOOD.replace("{name: lookup_order}", "{name: find}"),
     ["line 13", "tool_choice", "names tool 'find'"]),
    ("choice not a mode", GOOD.replace("{name: lookup_order}", "always"),
     ["line 13", "tool_choice", "use auto, none, required or {name: TOOL}"]),
    ("choice without tools", "key: a\nprovider: openai\nmodel: m\ntool_choice: auto\n",
     ["line 4", "tool_choice", "set without tools"]),
    ("response schema invalid", GOOD.replace("      text: {type: string}", "      text: {minLength: -1}"),
     ["line 17", "response_format.schema", "at properties.text.minLength"]),
    ("response schema not a mapping", GOOD.replace("  schema:\n    type: object\n    properties:\n"
                                                   "      text: {type: string}\n", "  schema: text\n"),
     ["response_format.schema", "must be a JSON Schema object"]),
    ("response format missing name", GOOD.replace("  name: answer\n", ""),
     ["line 14", "response_format.name", "required field is missing"]),
    ("json mode at the top", GOOD.split("response_format:")[0] + "response_format: {type: json_object}\n",
     ["line 14", "response_format", "goes in parameters.response_format"]),
    ("two response formats", GOOD.replace("{max_tokens: 200}", "{max_tokens: 200, response_format: text}"),
     ["line 14", "response_format", "also set in parameters.response_format"]),
]


@pytest.mark.parametrize(("case", "text", "expected"), BAD, ids=[c[0] for c in BAD])
def test_bad_tools_and_schemas_name_file_line_and_field(tmp_path: Path, case: str, text: str,
                                                         expected: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValidationFailed) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    for fragment in expected:
        assert fragment in message, f"{case}: {fragment!r} not in {message!r}"


def test_a_schema_names_its_draft(tmp_path: Path) -> None:
    draft4 = GOOD.replace("      type: object\n      properties:\n        id",
                          "      $schema: 'http://json-schema.org/draft-04/schema#'\n      type: object\n"
                          "      properties:\n        id")
    assert load_config(write(tmp_path, draft4)).tools
    # exclusiveMinimum is a boolean in draft 4 and a number from draft 6 on
    bad = draft4.replace("id: {type: string}", "id: {type: number, exclusiveMinimum: 3}")
    with pytest.raises(ValidationFailed, match="exclusiveMinimum"):
        load_config(write(tmp_path, bad))


def test_push_and_diff_show_the_changed_tool_and_schema(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--db", f"sqlite:///{tmp_path / 'cli.db'}"]
    files = [str(EXAMPLES / "order-bot.v1.yaml"), str(EXAMPLES / "order-bot.v2.yaml")]
    assert run_app(app, ["config", "push", *files, *db]) == 0
    assert [line.split(" (")[0] for line in capsys.readouterr().out.splitlines()] == ["order-bot v1",
                                                                                       "order-bot v2"]
    assert run_app(app, ["config", "diff", "order-bot", "1", "2", "--json", *db]) == 0
    diff: dict[str, Any] = json.loads(capsys.readouterr().out)  # the first push made v1 stable
    assert diff["changed_fields"] == ["messages", "response_format", "tools"]
    assert "+  description: Order lookup." in diff["diff"]
    assert any(line.startswith("+") and "eta_days" in line for line in diff["diff"])
    assert run_app(app, ["resolve", "order-bot", "--user", "u1", "--var", "product=Acme", "--json", *db]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["tools"][0]["description"].startswith("Find an order")
    assert shown["tool_choice"] == "auto" and shown["response_format"]["name"] == "order_answer"


TOOL = {"name": "lookup", "description": "Find", "parameters": {"type": "object", "properties": {}}}
FORMAT = {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": True}


def test_wire_shapes_per_api() -> None:
    assert wire.chat_tools_wire([TOOL]) == [{"type": "function", "function": TOOL}]
    assert wire.responses_tools_wire([TOOL]) == [{"type": "function", **TOOL}]
    assert wire.anthropic_tools_wire([TOOL]) == [
        {"name": "lookup", "description": "Find", "input_schema": {"type": "object", "properties": {}}}]
    assert wire.chat_tool_choice_wire({"name": "lookup"}) == {"type": "function",
                                                              "function": {"name": "lookup"}}
    assert wire.chat_tool_choice_wire("required") == "required"
    assert wire.responses_tool_choice_wire({"name": "lookup"}) == {"type": "function", "name": "lookup"}
    assert wire.anthropic_tool_choice_wire("required") == {"type": "any"}
    assert wire.anthropic_tool_choice_wire("auto") == {"type": "auto"}
    assert wire.anthropic_tool_choice_wire({"name": "lookup"}) == {"type": "tool", "name": "lookup"}
    assert wire.chat_response_format_wire(FORMAT) == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True}}
    assert wire.responses_format_wire(FORMAT) == FORMAT


def test_the_documented_config_loads(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "config-format.md").read_text()
    spec = load_config(write(tmp_path, doc.split("```yaml\n")[1].split("```")[0]))
    assert spec.tools is not None and spec.tools[0].strict is True
    assert spec.response_format is not None and spec.response_format.json_schema["required"] == ["status",
                                                                                                 "answer"]
