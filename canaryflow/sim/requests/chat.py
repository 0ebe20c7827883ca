"""OpenAI Chat Completions bodies, checked as OpenAI does (see :mod:`canaryflow.sim.requests`)."""

from __future__ import annotations

import re
from typing import Any

from canaryflow.sim.requests.common import (
    _CHAT_PARTS,
    _CHAT_ROLES,
    _DATA_URL,
    _IMAGE_TOKENS,
    CHAT_FIELDS,
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


def _chat_tools(body: dict[str, Any]) -> list[Tool]:
    out = []
    for i, t in enumerate(_tool_list(body)):
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
        out.append(_function_tool(fn.get("name"), fn.get("parameters", {"type": "object", "properties": {}}),
                                  f"{where}.function"))
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
