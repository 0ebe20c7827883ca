"""Request validation and normalisation for the simulator, the way the real APIs check (and word) it.

Each API's body is checked as its provider does — unknown top-level fields, roles, content-part types,
types and ranges of the sampling parameters, tool definitions (their JSON Schema included), tool-call /
tool-result pairing across turns, structured-output formats — and refused with that API's 400 (message,
``param`` and ``code`` as the real API sends them where known). A valid body becomes a :class:`SimRequest`:
what the engine needs to decide the answer (texts for markers and questions, tools, tool choice, schema).

The known top-level fields follow the official clients' request types (``tests/test_sim_api.py`` checks
that every field the installed ``openai`` / ``anthropic`` packages can send is known here).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from canaryflow.domain.tools import check_json_schema

CHAT_FIELDS = frozenset({
    "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
    "max_completion_tokens", "max_tokens", "messages", "metadata", "modalities", "model", "moderation", "n",
    "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key", "prompt_cache_options",
    "prompt_cache_retention", "reasoning_effort", "response_format", "safety_identifier", "seed",
    "service_tier", "stop", "store", "stream", "stream_options", "temperature", "tool_choice", "tools",
    "top_logprobs", "top_p", "user", "verbosity", "web_search_options"})
MESSAGES_FIELDS = frozenset({
    "cache_control", "container", "context_management", "diagnostics", "inference_geo", "max_tokens",
    "mcp_servers", "messages", "metadata", "model", "output_config", "output_format", "service_tier", "speed",
    "stop_sequences", "stream", "system", "temperature", "thinking", "tool_choice", "tools", "top_k", "top_p",
    "user_profile_id", "workspace_id"})
COUNT_TOKENS_FIELDS = frozenset({
    "cache_control", "context_management", "mcp_servers", "messages", "model", "output_config",
    "output_format", "speed", "system", "thinking", "tool_choice", "tools", "user_profile_id",
    "workspace_id"})
"""``POST /v1/messages/count_tokens``: a message's fields but the sampling ones (no max_tokens, stream)."""
RESPONSES_FIELDS = frozenset({
    "access_programs", "background", "background_options", "context_management", "conversation", "image",
    "include", "input", "instructions", "max_output_tokens", "max_tool_calls", "metadata", "model",
    "moderation", "parallel_tool_calls", "previous_response_id", "prompt", "prompt_cache_key",
    "prompt_cache_options", "prompt_cache_retention", "reasoning", "safety_identifier", "service_tier",
    "store", "stream", "stream_options", "temperature", "text", "tool_choice", "tools", "top_logprobs",
    "top_p", "truncation", "user"})

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_CHAT_ROLES = ("system", "assistant", "user", "function", "tool", "developer")
_CHAT_PARTS = {"user": ("text", "image_url", "input_audio", "file"), "system": ("text",),
               "developer": ("text",), "assistant": ("text", "refusal"), "tool": ("text",)}
_ANTHROPIC_BLOCKS = ("text", "image", "document", "search_result", "tool_use", "tool_result", "thinking",
                     "redacted_thinking", "server_tool_use", "web_search_tool_result", "container_upload")
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_IMAGE_TOKENS = 85
_DATA_URL = re.compile(r"^data:image/[a-z+.-]+;base64,")
_schema_ok: dict[str, str | None] = {}


class InvalidRequest(Exception):
    """A 400 in the API's own words."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass
class Tool:
    """A function the caller offers."""

    name: str
    parameters: dict[str, Any]


@dataclass
class SimRequest:
    """What the engine needs from a validated request."""

    api: str  # chat | messages | responses
    model: str
    texts: list[dict[str, str]]
    max_tokens: int | None = None
    stream: bool = False
    include_usage: bool = False
    n: int = 1
    tools: list[Tool] = field(default_factory=list)
    tool_choice: str = "auto"  # auto | none | required | tool (then forced_tool)
    forced_tool: str | None = None
    schema: dict[str, Any] | None = None
    json_mode: bool = False
    after_tool: bool = False
    extra_input_tokens: int = 0
    thinking: bool = False  # Anthropic extended thinking: the answer starts with a signed thinking block
    echo: dict[str, Any] = field(default_factory=dict)  # fields the Responses object repeats


# ── shared checks ──────────────────────────────────────────────────────────────────────────────────────

_JSON_TYPES = {str: "a string", bool: "a boolean", int: "an integer", float: "a decimal", list: "an array",
               dict: "an object", type(None): "null"}


def _kind(value: Any) -> str:
    return _JSON_TYPES.get(type(value), "an unknown type")


class _OpenAIChecks:
    """OpenAI wording: ``Invalid type for 'x'`` / ``decimal above maximum value``."""

    @staticmethod
    def missing(param: str) -> InvalidRequest:
        return InvalidRequest(f"Missing required parameter: '{param}'.", param=param,
                              code="missing_required_parameter")

    @staticmethod
    def type_(param: str, expected: str, value: Any) -> InvalidRequest:
        return InvalidRequest(f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} "
                              "instead.", param=param, code="invalid_type")

    @staticmethod
    def value(param: str, value: Any, allowed: tuple[str, ...]) -> InvalidRequest:
        listed = ", ".join(f"'{a}'" for a in allowed[:-1]) + f", and '{allowed[-1]}'" if len(allowed) > 1 \
            else f"'{allowed[0]}'"
        # the real message names no field (it is in ``param``); naming it too keeps it when a proxy
        # re-wraps the error without ``param``
        return InvalidRequest(f"Invalid value for '{param}': '{value}'. Supported values are: {listed}.",
                              param=param, code="invalid_value")

    def number(self, body: dict[str, Any], param: str, low: float, high: float) -> None:
        value = body.get(param)
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.type_(param, "a decimal", value)
        if value > high:
            raise InvalidRequest(f"Invalid '{param}': decimal above maximum value. Expected a value "
                                 f"<= {high:g}, but got {value:g} instead.", param=param,
                                 code="decimal_above_max_value")
        if value < low:
            raise InvalidRequest(f"Invalid '{param}': decimal below minimum value. Expected a value "
                                 f">= {low:g}, but got {value:g} instead.", param=param,
                                 code="decimal_below_min_value")

    def integer(self, body: dict[str, Any], param: str, low: int, high: int | None = None) -> int | None:
        value = body.get(param)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.type_(param, "an integer", value)
        if value < low:
            raise InvalidRequest(f"Invalid '{param}': integer below minimum value. Expected a value "
                                 f">= {low}, but got {value} instead.", param=param,
                                 code="integer_below_min_value")
        if high is not None and value > high:
            raise InvalidRequest(f"Invalid '{param}': integer above maximum value. Expected a value "
                                 f"<= {high}, but got {value} instead.", param=param,
                                 code="integer_above_max_value")
        return value

    def boolean(self, body: dict[str, Any], param: str) -> bool:
        value = body.get(param)
        if value is not None and not isinstance(value, bool):
            raise self.type_(param, "a boolean", value)
        return bool(value)

    def string(self, body: dict[str, Any], param: str) -> str | None:
        value = body.get(param)
        if value is not None and not isinstance(value, str):
            raise self.type_(param, "a string", value)
        return value


_oai = _OpenAIChecks()


def _check_schema(schema: Any, where: str, *, function: str | None = None) -> dict[str, Any]:
    """``schema`` if it is a valid JSON Schema (memoised: the metaschema check costs ~1 ms)."""
    key = json.dumps(schema, sort_keys=True, default=str)
    problem = _schema_ok.get(key, "")
    if problem == "":
        try:
            check_json_schema(schema)
            problem = None
        except ValueError as exc:
            problem = str(exc)
        if len(_schema_ok) > 4096:
            _schema_ok.clear()
        _schema_ok[key] = problem
    if problem is not None:
        subject = f"function '{function}' ('{where}')" if function else f"'{where}'"
        raise InvalidRequest(f"Invalid schema for {subject}: {problem}.", param=where,
                             code="invalid_function_parameters" if function else "invalid_json_schema")
    return dict(schema)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict)
                       and p.get("type") in ("text", "input_text", "output_text"))
    return ""


def _reject_unknown(body: dict[str, Any], known: frozenset[str], api: str) -> None:
    for key in body:
        if key not in known:
            if api == "chat":
                raise InvalidRequest(f"Unrecognized request argument supplied: {key}")
            if api == "responses":
                raise InvalidRequest(f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")
            raise InvalidRequest(f"{key}: Extra inputs are not permitted")


# ── OpenAI Chat Completions ────────────────────────────────────────────────────────────────────────────

def _chat_tools(body: dict[str, Any]) -> list[Tool]:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _oai.type_("tools", "an array", tools)
    out = []
    for i, t in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(t, dict):
            raise _oai.type_(where, "an object", t)
        if t.get("type") not in ("function", "custom"):
            raise _oai.value(f"{where}.type", t.get("type"), ("function", "custom"))
        if t["type"] == "custom":
            continue
        fn = t.get("function")
        if not isinstance(fn, dict):
            raise _oai.missing(f"{where}.function")
        name = fn.get("name")
        if not isinstance(name, str):
            raise _oai.missing(f"{where}.function.name")
        if not _NAME.match(name):
            raise InvalidRequest(f"Invalid '{where}.function.name': string does not match pattern. "
                                 "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                                 param=f"{where}.function.name", code="invalid_value")
        params = fn.get("parameters", {"type": "object", "properties": {}})
        out.append(Tool(name, _check_schema(params, f"{where}.function.parameters", function=name)))
    return out


def _chat_tool_choice(body: dict[str, Any], tools: list[Tool], req: SimRequest) -> None:
    choice = body.get("tool_choice")
    if choice is None:
        return
    if not body.get("tools"):
        raise InvalidRequest("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
                             "are specified.", param="tool_choice")
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise _oai.value("tool_choice", choice, ("none", "auto", "required"))
        req.tool_choice = choice
        return
    name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    if not isinstance(name, str):
        raise _oai.missing("tool_choice.function.name")
    if name not in [t.name for t in tools]:
        raise InvalidRequest(f"Invalid value for 'tool_choice': tool '{name}' is not in 'tools'.",
                             param="tool_choice", code="invalid_value")
    req.tool_choice, req.forced_tool = "tool", name


def _chat_format(body: dict[str, Any], req: SimRequest) -> None:
    fmt = body.get("response_format")
    if fmt is None:
        return
    if not isinstance(fmt, dict):
        raise _oai.type_("response_format", "an object", fmt)
    kind = fmt.get("type")
    if kind not in ("text", "json_object", "json_schema"):
        raise _oai.value("response_format.type", kind, ("text", "json_object", "json_schema"))
    if kind == "json_object":
        if not any("json" in m["content"].lower() for m in req.texts):
            raise InvalidRequest("'messages' must contain the word 'json' in some form, to use "
                                 "'response_format' of type 'json_object'.", param="messages")
        req.json_mode = True
    elif kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict):
            raise _oai.missing("response_format.json_schema")
        if not isinstance(spec.get("name"), str):
            raise _oai.missing("response_format.json_schema.name")
        req.schema = _check_schema(spec.get("schema", {}), "response_format.json_schema.schema")


def _chat_file(file: Any, here: str) -> None:
    if not isinstance(file, dict):
        raise _oai.missing(here)
    if file.get("file_id") is None and file.get("file_data") is None:
        raise InvalidRequest(f"Invalid '{here}': one of file_id or file_data must be provided.", param=here,
                             code="invalid_value")
    data = file.get("file_data")
    if data is not None:
        if not isinstance(data, str) or not re.match(r"^data:[a-z]+/[a-z0-9.+-]+;base64,", data):
            raise InvalidRequest(f"Invalid '{here}.file_data'. Expected a base64-encoded data URL (e.g. "
                                 "'data:application/pdf;base64,...').", param=f"{here}.file_data",
                                 code="invalid_value")
        if not isinstance(file.get("filename"), str) or not file["filename"]:
            raise _oai.missing(f"{here}.filename")


def _chat_parts(content: list[Any], where: str, role: str, req: SimRequest) -> None:
    allowed = _CHAT_PARTS.get(role, ("text",))
    for j, part in enumerate(content):
        here = f"{where}[{j}]"
        if not isinstance(part, dict):
            raise _oai.type_(here, "an object", part)
        kind = part.get("type")
        if kind not in allowed:
            raise _oai.value(f"{here}.type", kind, allowed)
        if kind == "text" and not isinstance(part.get("text"), str):
            raise _oai.missing(f"{here}.text")
        if kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else None
            if not isinstance(url, str):
                raise _oai.missing(f"{here}.image_url")
            if not (url.startswith(("http://", "https://")) or _DATA_URL.match(url)):
                raise InvalidRequest(f"Invalid '{here}.image_url.url'. Expected a base64-encoded data URL "
                                     "with an image MIME type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhl"
                                     "cmU='), but got an invalid value.", param=f"{here}.image_url.url",
                                     code="invalid_value")
            req.extra_input_tokens += _IMAGE_TOKENS
        if kind == "input_audio" and not isinstance(part.get("input_audio"), dict):
            raise _oai.missing(f"{here}.input_audio")
        if kind == "file":
            _chat_file(part.get("file"), f"{here}.file")


def parse_chat(body: Any) -> SimRequest:
    """Validate a Chat Completions body."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    _reject_unknown(body, CHAT_FIELDS, "chat")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("you must provide a model parameter")
    messages = body.get("messages")
    if messages is None:
        raise _oai.missing("messages")
    if not isinstance(messages, list):
        raise _oai.type_("messages", "an array", messages)
    if not messages:
        raise InvalidRequest("Invalid 'messages': empty array. Expected an array with minimum length 1, but "
                             "got an empty array instead.", param="messages", code="empty_array")
    req = SimRequest("chat", model, [])
    pending: dict[str, int] = {}  # tool_call_id -> index of the assistant message that made the call
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise _oai.type_(where, "an object", m)
        role = m.get("role")
        if role is None:
            raise _oai.missing(f"{where}.role")
        if role not in _CHAT_ROLES:
            raise _oai.value(f"{where}.role", role, _CHAT_ROLES)
        content = m.get("content")
        if role == "tool":
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str):
                raise _oai.missing(f"{where}.tool_call_id")
            if call_id not in pending:
                raise InvalidRequest("Invalid parameter: messages with role 'tool' must be a response to a "
                                     "preceeding message with 'tool_calls'.", param=f"messages.[{i}].role")
            del pending[call_id]
        elif pending:
            first = min(pending.values())
            raise InvalidRequest("An assistant message with 'tool_calls' must be followed by tool messages "
                                 "responding to each 'tool_call_id'. The following tool_call_ids did not "
                                 f"have response messages: {', '.join(pending)}",
                                 param=f"messages.[{first}].role")
        if role == "assistant" and m.get("tool_calls") is not None:
            calls = m["tool_calls"]
            if not isinstance(calls, list):
                raise _oai.type_(f"{where}.tool_calls", "an array", calls)
            for k, call in enumerate(calls):
                if not isinstance(call, dict) or not isinstance(call.get("id"), str):
                    raise _oai.missing(f"{where}.tool_calls[{k}].id")
                fn = call.get("function")
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    raise _oai.missing(f"{where}.tool_calls[{k}].function")
                if not isinstance(fn.get("arguments"), str):
                    raise _oai.type_(f"{where}.tool_calls[{k}].function.arguments", "a string",
                                     fn.get("arguments"))
                pending[call["id"]] = i
        elif content is None and role in ("user", "system", "developer", "tool"):
            raise _oai.missing(f"{where}.content")
        if content is not None and not isinstance(content, str):
            if not isinstance(content, list):
                raise _oai.type_(f"{where}.content", "one of a string or array of objects", content)
            _chat_parts(content, f"{where}.content", str(role), req)
        req.texts.append({"role": "system" if role == "developer" else str(role),
                          "content": _text_of(content)})
    req.after_tool = messages[-1].get("role") == "tool"
    for name, low, high in (("temperature", 0, 2), ("top_p", 0, 1), ("presence_penalty", -2, 2),
                            ("frequency_penalty", -2, 2)):
        _oai.number(body, name, low, high)
    req.n = _oai.integer(body, "n", 1, 128) or 1
    limit = _oai.integer(body, "max_completion_tokens", 1)
    req.max_tokens = limit if limit is not None else _oai.integer(body, "max_tokens", 1)
    _oai.integer(body, "seed", -(2**63), 2**63 - 1)
    _oai.integer(body, "top_logprobs", 0, 20)
    _oai.boolean(body, "logprobs")
    _oai.boolean(body, "parallel_tool_calls")
    _oai.string(body, "user")
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
            isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop)):
        raise _oai.type_("stop", "one of a string or array of up to 4 strings", stop)
    req.stream = _oai.boolean(body, "stream")
    options = body.get("stream_options")
    if options is not None:
        if not req.stream:
            raise InvalidRequest("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                                 param="stream_options")
        req.include_usage = bool(options.get("include_usage")) if isinstance(options, dict) else False
    req.tools = _chat_tools(body)
    _chat_tool_choice(body, req.tools, req)
    _chat_format(body, req)
    return req


# ── Anthropic Messages ─────────────────────────────────────────────────────────────────────────────────

def _a_type(param: str, expected: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: Input should be {expected}")


def _a_number(body: dict[str, Any], param: str, low: float, high: float) -> None:
    value = body.get(param)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _a_type(param, "a valid number")
    if value > high:
        raise InvalidRequest(f"{param}: Input should be less than or equal to {high:g}")
    if value < low:
        raise InvalidRequest(f"{param}: Input should be greater than or equal to {low:g}")


def _a_blocks(content: Any, where: str, role: str, req: SimRequest, previous_uses: set[str]) -> set[str]:
    """Validate one message's blocks; the ``tool_use`` ids it makes (assistant)."""
    uses: set[str] = set()
    if isinstance(content, str):
        return uses
    if not isinstance(content, list):
        raise _a_type(f"{where}.content", "a valid list")
    answered: list[str] = []
    for j, block in enumerate(content):
        here = f"{where}.content.{j}"
        if not isinstance(block, dict):
            raise _a_type(here, "a valid dictionary")
        kind = block.get("type")
        if kind not in _ANTHROPIC_BLOCKS:
            tags = ", ".join(f"'{t}'" for t in _ANTHROPIC_BLOCKS)
            raise InvalidRequest(f"{here}: Input tag '{kind}' found using 'type' does not match any of the "
                                 f"expected tags: {tags}")
        if kind == "text" and not isinstance(block.get("text"), str):
            raise InvalidRequest(f"{here}.text: Field required")
        if kind == "text" and not block["text"]:
            raise InvalidRequest("messages: text content blocks must be non-empty")
        if kind == "image":
            source = block.get("source")
            if not isinstance(source, dict):
                raise InvalidRequest(f"{here}.source: Field required")
            if source.get("type") == "base64":
                if source.get("media_type") not in _IMAGE_TYPES:
                    raise InvalidRequest(f"{here}.source.base64.media_type: Input should be 'image/jpeg', "
                                         "'image/png', 'image/gif' or 'image/webp'")
                if not isinstance(source.get("data"), str):
                    raise InvalidRequest(f"{here}.source.base64.data: Field required")
            elif source.get("type") == "url":
                if not isinstance(source.get("url"), str):
                    raise InvalidRequest(f"{here}.source.url.url: Field required")
            elif source.get("type") != "file":
                raise InvalidRequest(f"{here}.source: Input tag '{source.get('type')}' found using 'type' "
                                     "does not match any of the expected tags: 'base64', 'url', 'file'")
            req.extra_input_tokens += _IMAGE_TOKENS
        if kind == "tool_use":
            if role != "assistant":
                raise InvalidRequest(f"{here}: tool_use blocks can only be in assistant messages")
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise InvalidRequest(f"{here}.id: Field required")
            if not isinstance(block.get("input"), dict):
                raise InvalidRequest(f"{here}.input: Input should be a valid dictionary")
            uses.add(block["id"])
        if kind == "tool_result":
            if not isinstance(block.get("tool_use_id"), str):
                raise InvalidRequest(f"{here}.tool_use_id: Field required")
            answered.append(block["tool_use_id"])
    unexpected = [a for a in answered if a not in previous_uses]
    if unexpected:
        raise InvalidRequest(f"{where}.content.0: unexpected `tool_use_id` found in `tool_result` blocks: "
                             f"{', '.join(unexpected)}. Each `tool_result` block must have a corresponding "
                             "`tool_use` block in the previous message.")
    return uses


def _a_tools(body: dict[str, Any]) -> list[Tool]:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _a_type("tools", "a valid list")
    out = []
    for i, t in enumerate(tools):
        where = f"tools.{i}"
        if not isinstance(t, dict):
            raise _a_type(where, "a valid dictionary")
        if t.get("type") not in (None, "custom"):
            continue  # a server tool (web search, code execution...): offered, never called here
        name = t.get("name")
        if not isinstance(name, str):
            raise InvalidRequest(f"{where}.custom.name: Field required")
        if not re.match(r"^[a-zA-Z0-9_-]{1,128}$", name):
            raise InvalidRequest(f"{where}.custom.name: String should match pattern "
                                 "'^[a-zA-Z0-9_-]{1,128}$'")
        schema = t.get("input_schema")
        if not isinstance(schema, dict):
            raise InvalidRequest(f"{where}.custom.input_schema: Field required")
        if schema.get("type") != "object":
            raise InvalidRequest(f"{where}.custom.input_schema.type: Input should be 'object'")
        try:
            out.append(Tool(name, _check_schema(schema, f"{where}.custom.input_schema")))
        except InvalidRequest as exc:
            raise InvalidRequest(f"{where}.custom.input_schema: JSON schema is invalid - please consult "
                                 f"https://json-schema.org or our documentation ({exc.message})") from None
    return out


def _a_thinking_first(messages: list[Any]) -> None:
    """With thinking on, the assistant turn before the last tool results must start with its (signed)
    thinking block, as Claude requires in a tool loop."""
    last = messages[-1] if messages else None
    if not (isinstance(last, dict) and isinstance(last.get("content"), list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in last["content"])):
        return
    i = len(messages) - 2
    turn = messages[i] if i >= 0 else None
    blocks = turn.get("content") if isinstance(turn, dict) and turn.get("role") == "assistant" else None
    first = blocks[0] if isinstance(blocks, list) and blocks and isinstance(blocks[0], dict) else {}
    kind = first.get("type")
    signed = kind == "redacted_thinking" or (kind == "thinking" and bool(first.get("signature")))
    if not signed:
        raise InvalidRequest(
            f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{kind}`. "
            "When `thinking` is enabled, a final `assistant` message must start with a thinking block "
            "(preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include "
            "thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please "
            "consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking")


def parse_messages(body: Any) -> SimRequest:
    """Validate an Anthropic Messages body."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    _reject_unknown(body, MESSAGES_FIELDS, "messages")
    for required in ("model", "max_tokens", "messages"):
        if required not in body:
            raise InvalidRequest(f"{required}: Field required")
    if not isinstance(body["model"], str) or not body["model"]:
        raise _a_type("model", "a valid string")
    max_tokens = body["max_tokens"]
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise _a_type("max_tokens", "a valid integer")
    if max_tokens < 1:
        raise InvalidRequest("max_tokens: Input should be greater than or equal to 1")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise _a_type("messages", "a valid list")
    req = SimRequest("messages", body["model"], [], max_tokens=max_tokens)
    system = body.get("system")
    if system is not None:
        if not isinstance(system, str | list):
            raise _a_type("system", "a valid string")
        if isinstance(system, list):
            for j, block in enumerate(system):
                if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(
                        block.get("text"), str):
                    raise InvalidRequest(f"system.{j}.type: Input should be 'text'")
                if not block["text"]:
                    raise InvalidRequest("system: text content blocks must be non-empty")
        req.texts.append({"role": "system", "content": _text_of(system)})
    previous_uses: set[str] = set()
    for i, m in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(m, dict):
            raise _a_type(where, "a valid dictionary")
        role = m.get("role")
        if role == "system":
            raise InvalidRequest('messages: Unexpected role "system". The Messages API accepts a top-level '
                                 '`system` parameter, not "system" as an input message role.')
        if role not in ("user", "assistant"):
            raise InvalidRequest(f"{where}.role: Input should be 'user' or 'assistant'")
        if "content" not in m:
            raise InvalidRequest(f"{where}.content: Field required")
        if m["content"] in ("", []) and not (role == "assistant" and i == len(messages) - 1):
            raise InvalidRequest(f"{where}: all messages must have non-empty content except for the optional "
                                 "final assistant message")
        uses = _a_blocks(m["content"], where, role, req, previous_uses)
        if previous_uses and role == "user":
            answered = {b.get("tool_use_id") for b in m["content"] if isinstance(b, dict)} \
                if isinstance(m["content"], list) else set()
            missing = sorted(previous_uses - answered)
            if missing:
                raise InvalidRequest(f"messages.{i - 1}: `tool_use` ids were found without `tool_result` "
                                     f"blocks immediately after: {', '.join(missing)}. Each `tool_use` block "
                                     "must have a corresponding `tool_result` block in the next message.")
        previous_uses = uses
        req.texts.append({"role": role, "content": _text_of(m["content"])})
    last = messages[-1] if messages else None
    req.after_tool = isinstance(last, dict) and isinstance(last.get("content"), list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in last["content"])
    _a_number(body, "temperature", 0, 1)
    _a_number(body, "top_p", 0, 1)
    top_k = body.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        raise InvalidRequest("top_k: Input should be greater than or equal to 0")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _a_type("stream", "a valid boolean")
    req.stream = bool(stream)
    stops = body.get("stop_sequences")
    if stops is not None and not (isinstance(stops, list) and all(isinstance(s, str) for s in stops)):
        raise _a_type("stop_sequences", "a valid list")
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            raise InvalidRequest("thinking.enabled.budget_tokens: Input should be greater than or equal to "
                                 "1024")
        if budget >= max_tokens:
            raise InvalidRequest("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult "
                                 "our documentation at https://docs.claude.com/en/docs/build-with-claude/"
                                 "extended-thinking#max-tokens-and-context-window-size")
        req.thinking = True
        _a_thinking_first(messages)
    tier = body.get("service_tier")
    if tier is not None and tier not in ("auto", "standard_only"):
        raise InvalidRequest("service_tier: Input should be 'auto' or 'standard_only'")
    req.tools = _a_tools(body)
    choice = body.get("tool_choice")
    if choice is not None:
        kind = choice.get("type") if isinstance(choice, dict) else None
        if kind not in ("auto", "any", "tool", "none"):
            raise InvalidRequest(f"tool_choice: Input tag '{kind}' found using 'type' does not match any of "
                                 "the expected tags: 'auto', 'any', 'tool', 'none'")
        allowed = {"type", "name", "disable_parallel_tool_use"} if kind == "tool" else \
            {"type"} if kind == "none" else {"type", "disable_parallel_tool_use"}
        for extra in sorted(set(choice) - allowed):
            raise InvalidRequest(f"tool_choice.{kind}.{extra}: Extra inputs are not permitted")
        if kind == "tool":
            if not isinstance(choice.get("name"), str):
                raise InvalidRequest("tool_choice.tool.name: Field required")
            if choice["name"] not in [t.name for t in req.tools]:
                raise InvalidRequest(f"Tool '{choice['name']}' not found in provided tools")
            req.tool_choice, req.forced_tool = "tool", choice["name"]
        else:
            req.tool_choice = {"any": "required"}.get(str(kind), str(kind))
    fmt = (body.get("output_config") or {}).get("format") if isinstance(body.get("output_config"), dict) \
        else body.get("output_format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
            raise InvalidRequest("output_config.format.type: Input should be 'json_schema'")
        if not isinstance(fmt.get("schema"), dict):
            raise InvalidRequest("output_config.format.schema: Field required")
        req.schema = _check_schema(fmt["schema"], "output_config.format.schema")
    return req


def parse_count_tokens(body: Any) -> SimRequest:
    """Validate an Anthropic ``messages/count_tokens`` body (a message's fields but the sampling ones)."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    _reject_unknown(body, COUNT_TOKENS_FIELDS, "messages")
    thinking = body.get("thinking")
    budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
    room = budget + 1 if isinstance(budget, int) and not isinstance(budget, bool) else 1
    return parse_messages({**body, "max_tokens": max(1, room)})


# ── OpenAI Responses ───────────────────────────────────────────────────────────────────────────────────

_RESPONSE_ROLES = ("assistant", "system", "developer", "user")
_RESPONSE_PARTS = ("input_text", "input_image", "input_file", "input_audio", "output_text", "refusal")


def _r_tools(body: dict[str, Any]) -> list[Tool]:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _oai.type_("tools", "an array", tools)
    out = []
    for i, t in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(t, dict) or not isinstance(t.get("type"), str):
            raise _oai.missing(f"{where}.type")
        if t["type"] != "function":
            continue  # a built-in tool (web_search, file_search...): offered, never called here
        name = t.get("name")
        if not isinstance(name, str):
            raise _oai.missing(f"{where}.name")
        if not _NAME.match(name):
            raise InvalidRequest(f"Invalid '{where}.name': string does not match pattern. Expected a string "
                                 "that matches the pattern '^[a-zA-Z0-9_-]+$'.", param=f"{where}.name",
                                 code="invalid_value")
        params = t.get("parameters") or {"type": "object", "properties": {}}
        out.append(Tool(name, _check_schema(params, f"{where}.parameters", function=name)))
    return out


def parse_responses(body: Any) -> SimRequest:
    """Validate a Responses API body."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    _reject_unknown(body, RESPONSES_FIELDS, "responses")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _oai.missing("model")
    req = SimRequest("responses", model, [])
    instructions = _oai.string(body, "instructions")
    if instructions:
        req.texts.append({"role": "system", "content": instructions})
    items = body.get("input")
    if items is None:
        raise _oai.missing("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    if not isinstance(items, list):
        raise _oai.type_("input", "one of a string or array of input items", items)
    calls: set[str] = set()
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise _oai.type_(where, "an object", item)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in _RESPONSE_ROLES:
                raise _oai.value(f"{where}.role", role, _RESPONSE_ROLES)
            content = item.get("content")
            if isinstance(content, list):
                for j, part in enumerate(content):
                    ptype = part.get("type") if isinstance(part, dict) else None
                    if ptype not in _RESPONSE_PARTS:
                        raise _oai.value(f"{where}.content[{j}].type", ptype, _RESPONSE_PARTS)
                    if ptype == "input_image":
                        if not (part.get("image_url") or part.get("file_id")):
                            raise _oai.missing(f"{where}.content[{j}].image_url")
                        req.extra_input_tokens += _IMAGE_TOKENS
            elif not isinstance(content, str):
                raise _oai.missing(f"{where}.content")
            req.texts.append({"role": "system" if role == "developer" else role,
                              "content": _text_of(content)})
        elif kind == "function_call":
            for name in ("call_id", "name", "arguments"):
                if not isinstance(item.get(name), str):
                    raise _oai.missing(f"{where}.{name}")
            calls.add(item["call_id"])
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str):
                raise _oai.missing(f"{where}.call_id")
            if call_id not in calls and not body.get("previous_response_id"):
                raise InvalidRequest(f"No tool call found for function call output with call_id {call_id}.",
                                     param="input")
        elif kind not in ("reasoning", "item_reference"):
            raise _oai.value(f"{where}.type", kind, ("message", "function_call", "function_call_output",
                                                     "reasoning", "item_reference"))
    req.after_tool = bool(items) and isinstance(items[-1], dict) and \
        items[-1].get("type") == "function_call_output"
    _oai.number(body, "temperature", 0, 2)
    _oai.number(body, "top_p", 0, 1)
    req.max_tokens = _oai.integer(body, "max_output_tokens", 16)
    req.stream = _oai.boolean(body, "stream")
    _oai.boolean(body, "parallel_tool_calls")
    req.tools = _r_tools(body)
    choice = body.get("tool_choice")
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise _oai.value("tool_choice", choice, ("none", "auto", "required"))
        req.tool_choice = choice
    elif isinstance(choice, dict) and choice.get("type") == "function":
        if choice.get("name") not in [t.name for t in req.tools]:
            raise InvalidRequest(f"Tool choice '{choice.get('name')}' not found in 'tools' parameter.",
                                 param="tool_choice")
        req.tool_choice, req.forced_tool = "tool", str(choice["name"])
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if isinstance(fmt, dict):
        kind = fmt.get("type")
        if kind not in ("text", "json_object", "json_schema"):
            raise _oai.value("text.format.type", kind, ("text", "json_object", "json_schema"))
        if kind == "json_schema":
            if not isinstance(fmt.get("name"), str):
                raise _oai.missing("text.format.name")
            req.schema = _check_schema(fmt.get("schema"), "text.format.schema")
        req.json_mode = kind == "json_object"
    req.echo = {k: body.get(k) for k in ("instructions", "metadata", "temperature", "top_p", "tools",
                                         "tool_choice", "text", "max_output_tokens", "parallel_tool_calls",
                                         "previous_response_id", "store", "user", "reasoning")}
    return req


__all__ = ["CHAT_FIELDS", "MESSAGES_FIELDS", "RESPONSES_FIELDS", "InvalidRequest", "SimRequest", "Tool",
           "parse_chat", "parse_messages", "parse_responses"]
