"""OpenAI Responses bodies, checked as OpenAI does (see :mod:`canaryflow.sim.requests`)."""

from __future__ import annotations

from typing import Any

from canaryflow.sim.requests.common import (
    _IMAGE_TOKENS,
    RESPONSES_FIELDS,
    InvalidRequest,
    SimRequest,
    Tool,
    _check_schema,
    _function_tool,
    _oai,
    _reject_unknown,
    _text_of,
    _tool_list,
)

_RESPONSE_ROLES = ("assistant", "system", "developer", "user")
_RESPONSE_PARTS = ("input_text", "input_image", "input_file", "input_audio", "output_text", "refusal")


def _r_tools(body: dict[str, Any]) -> list[Tool]:
    out = []
    for i, t in enumerate(_tool_list(body)):
        where = f"tools[{i}]"
        if not isinstance(t, dict) or not isinstance(t.get("type"), str):
            raise _oai.missing(f"{where}.type")
        if t["type"] != "function":
            continue  # a built-in tool (web_search, file_search...): offered, never called here
        out.append(_function_tool(t.get("name"), t.get("parameters") or {"type": "object", "properties": {}},
                                  where))
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
