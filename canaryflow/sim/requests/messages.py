"""Anthropic Messages (and count_tokens) bodies, checked as Claude does (see
:mod:`canaryflow.sim.requests`)."""

from __future__ import annotations

import re
from typing import Any

from canaryflow.sim.requests.common import (
    _ANTHROPIC_BLOCKS,
    _IMAGE_TOKENS,
    _IMAGE_TYPES,
    COUNT_TOKENS_FIELDS,
    MESSAGES_FIELDS,
    InvalidRequest,
    SimRequest,
    Tool,
    _check_schema,
    _reject_unknown,
    _text_of,
)


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
