"""OpenAI Chat Completions requests → Anthropic Messages requests (see :mod:`canaryflow.domain.crossapi`)."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from canaryflow.domain.crossapi.common import (
    DEFAULT_MAX_TOKENS,
    THINKING_BUDGET,
    Untranslatable,
    _absent,
    _refuse,
    _str_list,
)
from canaryflow.domain.errors import ValidationFailed

_OPENAI_HANDLED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
        "user",
        "safety_identifier",
        "service_tier",
        "canaryflow",
    }
)
_OPENAI_NEUTRAL: dict[str, tuple[Any, ...]] = {  # a field at one of these values changes nothing
    "n": (1,),
    "logprobs": (False,),
    "store": (False,),
    "modalities": (["text"],),
    "presence_penalty": (0, 0.0),
    "frequency_penalty": (0, 0.0),
    "logit_bias": ({},),
    "metadata": ({},),
}


def _image_block(url: str, where: str) -> dict[str, Any]:
    if url.startswith("data:"):
        head, _, data = url.partition(",")
        media = head[5:].split(";")[0] or "image/png"
        if ";base64" not in head:
            raise Untranslatable("only base64 data URLs can be sent as Anthropic images", source=where)
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _image_options(image: Mapping[str, Any], where: str, drop: Collection[str]) -> None:
    """An image's ``detail`` other than ``auto`` (and any field beside ``url``) has no Anthropic counterpart:
    Claude sizes every image itself."""
    for name, value in image.items():
        if name == "url" or value is None or (name == "detail" and value == "auto"):
            continue
        why = (f"image detail {value!r} has no Anthropic counterpart (Claude sizes images itself; send "
               f"'auto' or leave it out)" if name == "detail" else
               f"image_url field {name!r} has no Anthropic counterpart")
        _refuse(f"{where}.{name}", why, drop)


def _openai_parts(content: Any, where: str, drop: Collection[str]) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise ValidationFailed("content must be a string or a list of parts", source=where)
    blocks: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        at = f"{where}[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            block: dict[str, Any] = {"type": "text", "text": str(part.get("text", ""))}
        elif kind == "refusal":  # an assistant's refusal in its history: its words
            block = {"type": "text", "text": str(part.get("refusal", ""))}
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise ValidationFailed("image_url.url must be a string", source=at)
            if isinstance(image, dict):
                _image_options(image, f"{at}.image_url", drop)
            block = _image_block(url, at)
        else:
            _refuse(f"{at}.type", f"content part type {kind!r} has no Anthropic counterpart", drop)
            continue
        if isinstance(part, dict) and part.get("cache_control") is not None:
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def _arguments(raw: Any, where: str) -> Any:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except (TypeError, ValueError) as exc:
        raise ValidationFailed("tool call arguments must be a JSON object", source=where) from exc
    if not isinstance(value, dict):
        raise ValidationFailed("tool call arguments must be a JSON object", source=where)
    return value


_MESSAGE_FIELDS = {  # what each role's message carries to Anthropic (other fields: refused unless empty)
    "system": frozenset({"role", "content"}),
    "developer": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    # reasoning_content is left out: Anthropic takes thinking back only as signed blocks (thinking_blocks)
    "assistant": frozenset({"role", "content", "tool_calls", "refusal", "audio", "thinking_blocks",
                            "reasoning_content"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
}


def _thinking_blocks(value: Any, where: str) -> list[dict[str, Any]]:
    """The signed thinking blocks an answer carried (``message.thinking_blocks``, see
    :func:`anthropic_answer_to_openai`) as they go back in the assistant's turn."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(
            isinstance(b, dict) and b.get("type") in ("thinking", "redacted_thinking") for b in value):
        raise ValidationFailed("thinking_blocks must be the list of thinking blocks an answer carried",
                               source=where)
    return [{k: v for k, v in b.items() if k != "index"} for b in value]  # index: of a streamed delta


def _openai_turns(messages: Any, drop: Collection[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if not isinstance(messages, list) or not messages:
        raise ValidationFailed("'messages' must be a non-empty list", source="messages")
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise ValidationFailed("each message must be an object with a role", source=where)
        role = m.get("role")
        carried = _MESSAGE_FIELDS.get(str(role), frozenset(m))  # an unknown role: refused below
        for key, value in m.items():
            if key not in carried and not _absent(value, ([], {}, "")):
                _refuse(f"{where}.{key}", f"the {role} message field '{key}' has no Anthropic counterpart",
                        drop)
        if role in ("system", "developer"):
            system.extend(_openai_parts(m.get("content"), f"{where}.content", drop))
        elif role == "user":
            blocks = _openai_parts(m.get("content"), f"{where}.content", drop)
            if not blocks:
                raise ValidationFailed("a user message needs content (Anthropic takes no empty turn)",
                                       source=f"{where}.content")
            add("user", blocks)
        elif role == "assistant":
            blocks = _thinking_blocks(m.get("thinking_blocks"), f"{where}.thinking_blocks")
            blocks += _openai_parts(m.get("content"), f"{where}.content", drop)
            if m.get("refusal"):
                blocks.append({"type": "text", "text": str(m["refusal"])})
            for j, call in enumerate(m.get("tool_calls") or []):
                fn = call.get("function") or {} if isinstance(call, dict) else {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": fn.get("name"),
                        "input": _arguments(fn.get("arguments"), f"{where}.tool_calls[{j}]"),
                    }
                )
            if m.get("audio") is not None:
                _refuse(f"{where}.audio", "assistant audio has no Anthropic counterpart", drop)
            add("assistant", blocks)
        elif role == "tool":
            content = m.get("content")
            result: Any = (
                content if isinstance(content, str) else _openai_parts(content, f"{where}.content", drop)
            )
            add("user", [{"type": "tool_result", "tool_use_id": m.get("tool_call_id"), "content": result}])
        else:
            _refuse(f"{where}.role", f"role {role!r} has no Anthropic counterpart", drop)
    return system, turns


def _openai_tool(tool: Any, where: str, drop: Collection[str]) -> dict[str, Any] | None:
    if (
        not isinstance(tool, dict)
        or tool.get("type") != "function"
        or not isinstance(tool.get("function"), dict)
    ):
        _refuse(where, "only function tools have an Anthropic counterpart", drop)
        return None
    fn = tool["function"]
    out: dict[str, Any] = {
        "name": fn.get("name"),
        "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
    }
    if fn.get("description"):
        out["description"] = fn["description"]
    if fn.get("strict") is not None:
        out["strict"] = fn["strict"]
    return out


def _anthropic_choice(choice: Any, drop: Collection[str]) -> dict[str, Any] | None:
    if isinstance(choice, dict):
        fn = choice.get("function")
        if choice.get("type") == "function" and isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return {"type": "tool", "name": fn["name"]}
        _refuse("tool_choice", f"a tool_choice of type {choice.get('type')!r} has no Anthropic counterpart "
                "(auto, none, required and a named function have)", drop)
        return None
    return {"type": {"required": "any"}.get(str(choice), str(choice))}


def openai_to_anthropic(body: Mapping[str, Any], *, drop: Collection[str] = ()) -> dict[str, Any]:
    """An OpenAI Chat Completions request body as an Anthropic Messages body (see the module table).

    Raises:
        Untranslatable: a field without an Anthropic counterpart (not in ``drop``).
        ValidationFailed: a malformed field.
    """
    for name, value in body.items():
        if name in _OPENAI_HANDLED:
            continue
        if not _absent(value, _OPENAI_NEUTRAL.get(name, ())):
            _refuse(name, f"'{name}' has no Anthropic Messages counterpart", drop)
    system, turns = _openai_turns(body.get("messages"), drop)
    out: dict[str, Any] = {"model": body.get("model"), "messages": turns}
    if system:
        plain = all(set(b) == {"type", "text"} for b in system)
        out["system"] = "\n\n".join(b["text"] for b in system) if plain else system
    limit = body.get("max_completion_tokens")
    if limit is None:
        limit = body.get("max_tokens")
    if limit is not None:  # else the config's limit, or the default (passthrough.apply_config)
        out["max_tokens"] = limit
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    stop = body.get("stop")
    if stop is not None:
        out["stop_sequences"] = _str_list(stop, "stop")
    if body.get("stream") is not None:
        out["stream"] = body["stream"]
    tier = body.get("service_tier")
    if tier == "default":  # standard capacity only (the reverse of anthropic_to_openai's mapping)
        out["service_tier"] = "standard_only"
    elif tier not in (None, "auto"):
        _refuse("service_tier", f"service_tier {tier!r} has no Anthropic counterpart (auto and default have)",
                drop)
    for name in ("user", "safety_identifier"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise ValidationFailed("must be a string (an id of the end user)", source=name)
    user = body.get("safety_identifier")
    if user is None:
        user = body.get("user")
    if user is not None:
        out["metadata"] = {"user_id": user}
    tools = [
        t
        for i, tool in enumerate(body.get("tools") or [])
        if (t := _openai_tool(tool, f"tools[{i}]", drop)) is not None
    ]
    if tools:
        out["tools"] = tools
    choice = body.get("tool_choice")
    translated = None if choice is None else _anthropic_choice(choice, drop)
    if translated is not None:
        out["tool_choice"] = translated
    if body.get("parallel_tool_calls") is False and out.get("tool_choice", {}).get("type") != "none":
        out["tool_choice"] = {**out.get("tool_choice", {"type": "auto"}), "disable_parallel_tool_use": True}
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema") or {}
        out["output_format"] = {"type": "json_schema", "schema": spec.get("schema") or {"type": "object"}}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        out["output_format"] = {"type": "json_schema", "schema": {"type": "object"}}
    elif fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        raise ValidationFailed(
            "response_format.type must be text, json_object or json_schema", source="response_format"
        )
    effort = body.get("reasoning_effort")
    if effort is not None and effort != "none":
        if effort not in THINKING_BUDGET:
            raise ValidationFailed(
                f"reasoning_effort {effort!r}: use minimal, low, medium or high", source="reasoning_effort"
            )
        budget = THINKING_BUDGET[effort]
        out["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if limit is None:  # room for the answer past the thinking; a caller's own limit stays as given
            out["max_tokens"] = budget + DEFAULT_MAX_TOKENS
    return out


def check_anthropic_body(body: Mapping[str, Any]) -> None:
    """What Anthropic would refuse in a body translated from OpenAI chat (the config applied), refused
    naming the caller's field: no user or assistant turn; no room for the thinking budget
    (:func:`check_thinking_room`).

    Raises:
        ValidationFailed: naming the caller's field.
    """
    if not body.get("messages"):
        raise ValidationFailed("Anthropic needs a user or assistant message besides the system ones",
                               source="messages")
    check_thinking_room(body)


def check_thinking_room(body: Mapping[str, Any]) -> None:
    """Refuse an Anthropic body (translated from OpenAI chat, the config applied) whose ``max_tokens`` does
    not exceed its thinking budget, as Anthropic would — naming ``reasoning_effort``, the caller's field,
    and the limit that left no room (the config's ``max_tokens`` caps it; a caller can only lower it).

    Raises:
        ValidationFailed: the budget is at or over ``max_tokens``.
    """
    thinking = body.get("thinking")
    if not isinstance(thinking, Mapping) or thinking.get("type") != "enabled":
        return
    budget, limit = thinking.get("budget_tokens"), body.get("max_tokens")
    if isinstance(budget, int) and isinstance(limit, int) and budget >= limit:
        raise ValidationFailed(
            f"this reasoning_effort is a thinking budget of {budget} tokens on the config's Anthropic "
            f"model, which needs max_tokens above it, but the token limit is {limit} (the config's "
            "max_tokens caps it and a caller's max_completion_tokens can only lower it): omit "
            "reasoning_effort or allow more tokens",
            source="reasoning_effort",
        )
