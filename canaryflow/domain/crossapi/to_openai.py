"""Anthropic Messages requests → OpenAI Chat Completions requests (see :mod:`canaryflow.domain.crossapi`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from canaryflow.domain.crossapi.common import _absent, _refuse, _str_list, _text_of, tool_call_of
from canaryflow.domain.errors import ValidationFailed

_ANTHROPIC_HANDLED = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "stop_sequences",
        "stream",
        "tools",
        "tool_choice",
        "thinking",
        "metadata",
        "output_format",
        "output_config",
        "service_tier",
        "cache_control",  # automatic caching of the prompt: OpenAI caches prompt prefixes by itself
        "canaryflow",
    }
)


_TOOL_CARRIED = frozenset({"name", "description", "input_schema", "strict", "type", "cache_control",
                           "eager_input_streaming"})
"""A client tool's fields with an OpenAI counterpart (``cache_control``: OpenAI caches by itself;
``eager_input_streaming``: OpenAI streams arguments as they come); any other is refused when set."""


def _image_url(source: Any, where: str, drop: Collection[str]) -> dict[str, Any] | None:
    if isinstance(source, dict) and source.get("type") == "base64":
        return {
            "type": "image_url",
            "image_url": {"url": f"data:{source.get('media_type')};base64,{source.get('data')}"},
        }
    if isinstance(source, dict) and source.get("type") == "url":
        return {"type": "image_url", "image_url": {"url": source.get("url")}}
    _refuse(where, "only base64 and url image sources have an OpenAI counterpart", drop)
    return None


def _file_part(block: dict[str, Any], where: str, drop: Collection[str]) -> dict[str, Any] | None:
    source = block.get("source")
    if not (isinstance(source, dict) and source.get("type") == "base64"
            and source.get("media_type") == "application/pdf"):
        _refuse(f"{where}.source", "only base64 PDF documents have an OpenAI counterpart (a file part)", drop)
        return None
    citations = block.get("citations")
    if isinstance(citations, dict) and citations.get("enabled"):
        _refuse(f"{where}.citations", "document citations have no OpenAI counterpart", drop)
    if block.get("context"):
        _refuse(f"{where}.context", "a document's context has no OpenAI counterpart", drop)
    title = str(block.get("title") or "document")
    filename = title if title.lower().endswith(".pdf") else f"{title}.pdf"
    return {"type": "file", "file": {"filename": filename,
                                     "file_data": f"data:application/pdf;base64,{source.get('data')}"}}


_BLOCK_CARRIED: dict[str, tuple[str, ...]] = {
    "text": ("type", "text", "cache_control"),
    "image": ("type", "source", "cache_control"),
    "document": ("type", "source", "title", "context", "citations", "cache_control"),
    "tool_use": ("type", "id", "name", "input", "cache_control"),
    "tool_result": ("type", "tool_use_id", "content", "is_error", "cache_control"),
}
"""The fields of each block type that are carried (or checked) across APIs; any other set one is refused."""


def _refuse_extra(item: Mapping[str, Any], carried: Collection[str], where: str, what: str,
                  drop: Collection[str]) -> None:
    for name, value in item.items():
        if name not in carried and not _absent(value, (False, [], {})):
            _refuse(f"{where}.{name}", f"{what} {name!r} has no OpenAI Chat counterpart", drop)


def _anthropic_turn(m: dict[str, Any], where: str, drop: Collection[str]) -> list[dict[str, Any]]:
    role = m.get("role")
    content = m.get("content")
    if role not in ("user", "assistant"):
        raise ValidationFailed(
            f"role {role!r}: Anthropic messages are user or assistant", source=f"{where}.role"
        )
    _refuse_extra(m, ("role", "content"), where, "a message's", drop)
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise ValidationFailed("content must be a string or a list of blocks", source=f"{where}.content")
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        at = f"{where}.content[{i}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if isinstance(block, dict) and kind in _BLOCK_CARRIED:
            _refuse_extra(block, _BLOCK_CARRIED[str(kind)], at, f"a {kind} block's", drop)
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image" and role == "user":
            image = _image_url(block.get("source"), f"{at}.source", drop)
            if image is not None:
                parts.append(image)
        elif kind == "document" and role == "user":
            document = _file_part(block, at, drop)
            if document is not None:
                parts.append(document)
        elif kind == "tool_use" and role == "assistant":
            calls.append(tool_call_of(block))
        elif kind in ("thinking", "redacted_thinking") and role == "assistant":
            continue  # Chat Completions takes no reasoning back (see the module doc)
        elif kind == "tool_result" and role == "user":
            if block.get("is_error"):
                _refuse(f"{at}.is_error", "a failed tool result has no OpenAI counterpart (a tool message "
                        "cannot say that the tool failed)", drop)
            result = block.get("content")
            if isinstance(result, list) and any(
                isinstance(b, dict) and b.get("type") != "text" for b in result
            ):
                _refuse(f"{at}.content", "tool results other than text have no OpenAI counterpart", drop)
            out.append(
                {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": _text_of(result)}
            )
        else:
            _refuse(f"{at}.type", f"{'an' if role == 'assistant' else 'a'} {role} block of type {kind!r} has "
                    "no OpenAI Chat counterpart", drop)
    if role == "assistant":
        msg: dict[str, Any] = {"role": "assistant", "content": _text_of(parts) or None}
        if calls:
            msg["tool_calls"] = calls
        if msg["content"] is not None or calls:  # a turn of thinking alone leaves nothing to send
            out.append(msg)
    elif parts:
        plain = all(p["type"] == "text" for p in parts)
        out.append({"role": "user", "content": _text_of(parts) if plain else parts})
    return out


def anthropic_to_openai(body: Mapping[str, Any], *, drop: Collection[str] = ()) -> dict[str, Any]:
    """An Anthropic Messages request body as an OpenAI Chat Completions body.

    ``cache_control`` markers (on blocks, tools or the whole request) are not carried: OpenAI caches
    prompt prefixes automatically.

    Raises:
        Untranslatable: a field without an OpenAI counterpart (not in ``drop``).
        ValidationFailed: a malformed field.
    """
    for name, value in body.items():
        if name not in _ANTHROPIC_HANDLED and value is not None:
            _refuse(name, f"'{name}' has no OpenAI Chat Completions counterpart", drop)
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _text_of(system)})
    turns = body.get("messages")
    if not isinstance(turns, list) or not turns:
        raise ValidationFailed("'messages' must be a non-empty list", source="messages")
    for i, m in enumerate(turns):
        if not isinstance(m, dict):
            raise ValidationFailed("each message must be an object", source=f"messages[{i}]")
        if i == len(turns) - 1 and i > 0 and m.get("role") == "assistant":
            if not m.get("content"):
                continue  # an empty prefill asks for nothing
            _refuse(f"messages[{i}]", "a last assistant message is a prefill Claude continues; Chat "
                    "Completions has no counterpart (it would answer after it)", drop)
        messages.extend(_anthropic_turn(m, f"messages[{i}]", drop))
    out: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if body.get("max_tokens") is not None:
        out["max_completion_tokens"] = body["max_tokens"]
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = _str_list(body["stop_sequences"], "stop_sequences")
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    meta = body.get("metadata")
    if isinstance(meta, dict) and meta.get("user_id") is not None:
        out["user"] = str(meta["user_id"])
    tools = []
    for i, tool in enumerate(body.get("tools") or []):
        if (
            not isinstance(tool, dict)
            or "input_schema" not in tool
            or tool.get("type") not in (None, "custom")
        ):
            _refuse(f"tools[{i}]", "only client tools (name + input_schema) have an OpenAI counterpart", drop)
            continue
        fn = {"name": tool.get("name"), "parameters": tool["input_schema"]}
        if tool.get("description"):
            fn["description"] = tool["description"]
        if tool.get("strict") is not None:
            fn["strict"] = tool["strict"]
        for name, value in tool.items():
            if name not in _TOOL_CARRIED and not _absent(value, (False, [], {})):
                _refuse(f"tools[{i}].{name}", f"a tool's {name!r} has no OpenAI counterpart", drop)
        tools.append({"type": "function", "function": fn})
    if tools:
        out["tools"] = tools
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        elif kind in ("auto", "any", "none"):
            out["tool_choice"] = {"any": "required"}.get(str(kind), str(kind))
        if choice.get("disable_parallel_tool_use"):
            out["parallel_tool_calls"] = False
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else thinking
    if kind == "enabled":
        budget = int(thinking.get("budget_tokens") or 0)  # type: ignore[union-attr]
        out["reasoning_effort"] = "low" if budget <= 1024 else "medium" if budget <= 2048 else "high"
        for name, value in thinking.items():  # type: ignore[union-attr]
            if name in ("type", "budget_tokens") or value is None or (name, value) == ("display",
                                                                                        "summarized"):
                continue
            _refuse(f"thinking.{name}", f"thinking {name} {value!r} has no OpenAI counterpart (the reasoning "
                    "a compatible server returns is shown as it comes)", drop)
    elif thinking is not None and kind != "disabled":
        _refuse("thinking.type", f"thinking of type {kind!r} has no OpenAI counterpart (enabled with a "
                "budget_tokens becomes reasoning_effort; disabled is no reasoning)", drop)
    options = body.get("output_config")
    if options is not None and not isinstance(options, dict):
        raise ValidationFailed("'output_config' must be an object {format, effort}", source="output_config")
    options = options or {}
    for name, value in options.items():
        if name not in ("format", "effort") and value is not None:
            _refuse(f"output_config.{name}", f"output_config.{name} has no OpenAI counterpart", drop)
    effort = options.get("effort")
    if effort in ("low", "medium", "high"):
        out["reasoning_effort"] = effort
    elif effort is not None:
        _refuse("output_config.effort", f"effort {effort!r} has no OpenAI counterpart (reasoning_effort "
                "takes low, medium or high)", drop)
    fmt = options.get("format") or body.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": fmt.get("schema") or {}},
        }
    tier = body.get("service_tier")
    if tier is not None:
        out["service_tier"] = {"standard_only": "default"}.get(str(tier), str(tier))
    return out
