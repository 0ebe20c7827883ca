"""What the simulator's three APIs share: the known fields, :class:`SimRequest`, :class:`InvalidRequest`, the
OpenAI-worded type checks and the JSON Schema check of tool parameters."""

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


def _tool_list(body: dict[str, Any]) -> list[Any]:
    """An OpenAI body's ``tools`` (none: empty), refused as OpenAI does when it is not an array."""
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _oai.type_("tools", "an array", tools)
    return tools


def _function_tool(name: Any, params: Any, where: str) -> Tool:
    """An OpenAI function tool whose ``name`` and ``parameters`` sit at ``where``, checked as OpenAI does."""
    if not isinstance(name, str):
        raise _oai.missing(f"{where}.name")
    if not _NAME.match(name):
        raise InvalidRequest(f"Invalid '{where}.name': string does not match pattern. Expected a string "
                             "that matches the pattern '^[a-zA-Z0-9_-]+$'.", param=f"{where}.name",
                             code="invalid_value")
    return Tool(name, _check_schema(params, f"{where}.parameters", function=name))
