"""OpenAI Chat Completions ⇄ Anthropic Messages, field by field. Pure; used only when the caller's API and
the provider's differ (the same API is a pass-through, :mod:`canaryflow.domain.passthrough`).

Requests (what maps to what; anything else is refused with :class:`Untranslatable` naming the field,
unless the config lists it in ``drop``):

===========================================  ===========================================================
OpenAI chat                                  Anthropic messages
===========================================  ===========================================================
system / developer messages                  ``system`` (text blocks keep ``cache_control``)
user text / ``image_url`` parts              text / ``image`` blocks (data URL → base64 source, else url)
user ``file`` parts (PDF ``file_data``)      ``document`` blocks with a base64 PDF source (title ⇄ filename)
assistant ``tool_calls``                     ``tool_use`` blocks (arguments parsed as JSON)
assistant ``refusal`` / ``thinking_blocks``  text / the signed thinking blocks (before the rest)
other message fields (``name``, …)           refused unless empty
``tool`` messages                            ``tool_result`` blocks in one user turn
``tools`` (function, ``strict``)             ``tools`` (``input_schema``, ``strict``; ``input_examples``,
                                             ``defer_loading``, ``allowed_callers`` refused)
``tool_choice`` auto/none/required/named     ``{"type": auto/none/any/tool}``
``parallel_tool_calls: false``               ``tool_choice.disable_parallel_tool_use``
``response_format`` json_schema/json_object  ``output_format`` / ``output_config.format`` json_schema
``reasoning_effort`` low/medium/high         ``output_config.effort`` (from Anthropic; else as below)
``reasoning_effort`` low/medium/high         ``thinking`` budget 1024/2048/4096 (LiteLLM's mapping);
                                             refused if the token limit leaves no room past it
``max_tokens``/``max_completion_tokens``     ``max_tokens``
``stop``, ``temperature``, ``top_p``         ``stop_sequences``, ``temperature``, ``top_p``
``safety_identifier`` (else ``user``)        ``metadata.user_id``
``service_tier`` auto / default              ``service_tier`` auto / standard_only (others refused)
``stream`` / ``stream_options``              ``stream`` (usage is always reported)
``cache_control`` on content parts           ``cache_control`` on blocks
===========================================  ===========================================================

Assistant ``thinking``/``redacted_thinking`` blocks in the history are left out: Chat Completions takes no
reasoning back (and Claude itself reads earlier turns' thinking only within the current tool loop), so what
the stream helper's message holds can be sent back as the next assistant turn.

Refused from Anthropic (no Chat counterpart): ``thinking`` other than ``enabled`` (with a budget) or
``disabled`` (``adaptive``, ``between_tools``), a ``tool_result`` with ``is_error: true`` (a tool message
cannot say the tool failed) and a non-empty last assistant message (a prefill Claude would continue; Chat
Completions answers after it). An empty last assistant message asks for nothing and is not sent.

Answers and stream events map back: text, tool calls, thinking (as ``reasoning_content``, and the signed
blocks as ``thinking_blocks`` — in a stream one indexed delta per finished block — which go back to
Anthropic when the message is appended to the history), the stop sequence matched where the server says
which (vLLM's ``stop_reason``; OpenAI does not, so ``end_turn``), refusals (as
text with ``stop_reason: refusal``, plain and streamed), stop reasons (``stop ⇄ end_turn``,
``length ⇄ max_tokens``, ``content_filter ⇄ refusal``, ``tool_calls ⇄ tool_use``) and usage (cached input
tokens included).
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping
from typing import Any

from canaryflow.domain.errors import ValidationFailed

THINKING_BUDGET = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096}
TO_ANTHROPIC_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "content_filter": "refusal",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
}
TO_OPENAI_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "refusal": "content_filter",
    "tool_use": "tool_calls",
    "model_context_window_exceeded": "length",
}
DEFAULT_MAX_TOKENS = 1024


class Untranslatable(ValidationFailed):
    """A request field with no counterpart in the provider's API (a 400 naming the field and why)."""


def _refuse(field: str, why: str, drop: Collection[str]) -> None:
    """Refuse ``field`` unless ``drop`` lists it: its top-level name, its whole path, or its own name (the
    last part of the path: ``is_error`` for every ``messages[i].content[j].is_error``)."""
    if field.split("[")[0].split(".")[0] in drop or field in drop or field.rsplit(".", 1)[-1] in drop:
        return
    raise Untranslatable(
        f"{why}; it cannot be carried to the config's provider and is refused rather than "
        f"dropped (a config may list it in its drop fields)",
        source=field,
    )


def _str_list(value: Any, field: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValidationFailed("must be a string or a list of strings", source=field)


def _absent(value: Any, neutral: tuple[Any, ...] = ()) -> bool:
    return value is None or any(value is n or (value == n and type(value) is type(n)) for n in neutral)


# ── OpenAI chat → Anthropic messages ───────────────────────────────────────────────────────────────

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


# ── Anthropic messages → OpenAI chat ───────────────────────────────────────────────────────────────

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


def _text_of(blocks: Any) -> str:
    if isinstance(blocks, str):
        return blocks
    return "".join(
        str(b.get("text", "")) for b in blocks or [] if isinstance(b, dict) and b.get("type") == "text"
    )


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
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": json.dumps(block.get("input") or {}, ensure_ascii=False),
                    },
                }
            )
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


# ── answers ────────────────────────────────────────────────────────────────────────────────────────


def _loads(raw: Any) -> Any:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except (TypeError, ValueError):
        return {"arguments": raw}
    return value if isinstance(value, dict) else {"arguments": value}


def _stop_sequence(choice: Mapping[str, Any], finish: Any) -> str | None:
    """The stop sequence an answer ended at, where the server says (vLLM's ``stop_reason``: the matched
    string; OpenAI does not say, so its answers end ``end_turn``)."""
    matched = choice.get("stop_reason")
    return matched if finish == "stop" and isinstance(matched, str) and matched else None


def openai_answer_to_anthropic(resp: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` as an Anthropic ``message`` (the first choice: ``n`` is refused)."""
    choice = (resp.get("choices") or [{}])[0] or {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("reasoning_content"):
        content.append({"type": "thinking", "thinking": message["reasoning_content"], "signature": ""})
    text = message.get("content")
    if text:
        content.append({"type": "text", "text": text if isinstance(text, str) else _text_of(text)})
    if message.get("refusal"):
        content.append({"type": "text", "text": message["refusal"]})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": fn.get("name"),
                "input": _loads(fn.get("arguments")),
            }
        )
    finish = "content_filter" if message.get("refusal") else choice.get("finish_reason")
    if message.get("tool_calls") and finish in (None, "stop"):
        finish = "tool_calls"  # OpenAI-compatible servers (Ollama, some vLLM) answer tool calls with "stop"
    matched = _stop_sequence(choice, finish)
    usage = resp.get("usage") or {}
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return {
        "id": f"msg_{resp.get('id', '')}",
        "type": "message",
        "role": "assistant",
        "model": resp.get("model"),
        "content": content,
        "stop_reason": "stop_sequence" if matched else TO_ANTHROPIC_STOP.get(finish or "stop", "end_turn"),
        "stop_sequence": matched,
        "usage": {
            "input_tokens": int(usage.get("prompt_tokens") or 0) - cached,
            "output_tokens": int(usage.get("completion_tokens") or 0),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached,
        },
    }


def _openai_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    cached = int(usage.get("cache_read_input_tokens") or 0)
    created = int(usage.get("cache_creation_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cached + created
    out = int(usage.get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": out,
        "total_tokens": prompt + out,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def anthropic_answer_to_openai(resp: Mapping[str, Any]) -> dict[str, Any]:
    """An Anthropic ``message`` as an OpenAI ``chat.completion``."""
    texts: list[str] = []
    thinking: list[str] = []
    blocks: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in resp.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": json.dumps(block.get("input") or {}, ensure_ascii=False),
                    },
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            blocks.append(dict(block))
            if kind == "thinking":
                thinking.append(str(block.get("thinking", "")))
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    if blocks:
        message["reasoning_content"] = "".join(thinking)
        message["thinking_blocks"] = blocks
    rid = str(resp.get("id", ""))
    return {
        "id": rid if rid.startswith("chatcmpl") else f"chatcmpl-{rid}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": resp.get("model"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": TO_OPENAI_FINISH.get(str(resp.get("stop_reason")), "stop"),
            }
        ],
        "usage": _openai_usage(resp.get("usage") or {}),
    }


# ── streams ────────────────────────────────────────────────────────────────────────────────────────


class AnthropicEventsToOpenAI:
    """Feed Anthropic stream events, get OpenAI ``chat.completion.chunk`` objects back."""

    def __init__(self, *, include_usage: bool = True) -> None:
        self.include_usage = include_usage
        self._id = "chatcmpl-"
        self._model: Any = None
        self._created = int(time.time())
        self._usage: dict[str, Any] = {}
        self._tools: dict[int, int] = {}  # Anthropic block index → OpenAI tool call index
        self._thinking: dict[int, dict[str, Any]] = {}  # Anthropic block index → the block, as it streams
        self._blocks = 0  # thinking blocks sent

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def feed(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Chunks for one event."""
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self._id = f"chatcmpl-{message.get('id', '')}"
            self._model = message.get("model")
            self._usage = dict(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") in ("thinking", "redacted_thinking"):
                self._thinking[int(event.get("index", 0))] = dict(block)
                return []
            if block.get("type") == "tool_use":
                index = self._tools[int(event.get("index", 0))] = len(self._tools)
                return [
                    self._chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "id": block.get("id"),
                                    "type": "function",
                                    "function": {"name": block.get("name"), "arguments": ""},
                                }
                            ]
                        }
                    )
                ]
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if dtype == "thinking_delta":
                block = self._thinking.get(int(event.get("index", 0)))
                if block is not None:
                    block["thinking"] = str(block.get("thinking") or "") + str(delta.get("thinking", ""))
                return [self._chunk({"reasoning_content": delta.get("thinking", "")})]
            if dtype == "signature_delta":
                block = self._thinking.get(int(event.get("index", 0)))
                if block is not None:
                    block["signature"] = str(block.get("signature") or "") + str(delta.get("signature", ""))
                return []
            if dtype == "input_json_delta":
                index = self._tools.get(int(event.get("index", 0)), 0)
                return [
                    self._chunk(
                        {
                            "tool_calls": [
                                {"index": index, "function": {"arguments": delta.get("partial_json", "")}}
                            ]
                        }
                    )
                ]
            return []
        if kind == "content_block_stop":
            block = self._thinking.pop(int(event.get("index", 0)), None)
            if block is None:
                return []
            self._blocks += 1
            # the whole signed block once, as a plain answer's message.thinking_blocks carries it (indexed,
            # so the openai stream helper accumulates several), to go back in the next turn's history
            return [self._chunk({"thinking_blocks": [{"index": self._blocks - 1, **block}]})]
        if kind == "message_delta":
            self._usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            stop = (event.get("delta") or {}).get("stop_reason")
            out = [self._chunk({}, TO_OPENAI_FINISH.get(str(stop), "stop"))]
            if self.include_usage:
                out.append(
                    {
                        "id": self._id,
                        "object": "chat.completion.chunk",
                        "created": self._created,
                        "model": self._model,
                        "choices": [],
                        "usage": _openai_usage(self._usage),
                    }
                )
            return out
        return []


class OpenAIChunksToAnthropic:
    """Feed OpenAI ``chat.completion.chunk`` objects, get Anthropic stream events back.

    The request must ask for ``stream_options.include_usage`` (so the last chunk carries the usage); the
    closing events are sent with it, or by :meth:`close`.
    """

    def __init__(self) -> None:
        self._started = False
        self._finish: str | None = None
        self._done = False
        self._open: tuple[str, int] | None = None  # ("text" | "tool" | "thinking", OpenAI tool index)
        self._refused = False
        self._called = False  # a tool call was streamed
        self._matched: str | None = None  # the stop sequence the server says the answer ended at
        self._index = -1

    def _stop_finish(self) -> str:
        if self._refused:
            return "content_filter"
        if self._called and self._finish in (None, "stop"):
            return "tool_calls"  # OpenAI-compatible servers (Ollama, some vLLM) end tool calls with "stop"
        return self._finish or "stop"

    def _start(self, chunk: Mapping[str, Any]) -> list[dict[str, Any]]:
        self._started = True
        return [
            {
                "type": "message_start",
                "message": {
                    "id": f"msg_{chunk.get('id', '')}",
                    "type": "message",
                    "role": "assistant",
                    "model": chunk.get("model"),
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                },
            }
        ]

    def _switch(self, kind: str, tool: int, block: dict[str, Any]) -> list[dict[str, Any]]:
        if self._open == (kind, tool):
            return []
        events = self._stop_block()
        self._index += 1
        self._open = (kind, tool)
        return [*events, {"type": "content_block_start", "index": self._index, "content_block": block}]

    def _stop_block(self) -> list[dict[str, Any]]:
        if self._open is None:
            return []
        self._open = None
        return [{"type": "content_block_stop", "index": self._index}]

    def feed(self, chunk: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Events for one chunk."""
        events: list[dict[str, Any]] = [] if self._started else self._start(chunk)
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                events += self._switch("thinking", -1, {"type": "thinking", "thinking": "", "signature": ""})
                events.append(
                    {
                        "type": "content_block_delta",
                        "index": self._index,
                        "delta": {"type": "thinking_delta", "thinking": delta["reasoning_content"]},
                    }
                )
            for key in ("content", "refusal"):  # a refusal is text with stop_reason refusal, as answers
                if not delta.get(key):
                    continue
                self._refused = self._refused or key == "refusal"
                events += self._switch("text", -1, {"type": "text", "text": ""})
                events.append(
                    {
                        "type": "content_block_delta",
                        "index": self._index,
                        "delta": {"type": "text_delta", "text": delta[key]},
                    }
                )
            for call in delta.get("tool_calls") or []:
                fn = call.get("function") or {}
                self._called = True
                events += self._switch(
                    "tool",
                    int(call.get("index", 0)),
                    {"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": {}},
                )
                if fn.get("arguments"):
                    events.append(
                        {
                            "type": "content_block_delta",
                            "index": self._index,
                            "delta": {"type": "input_json_delta", "partial_json": fn["arguments"]},
                        }
                    )
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
                self._matched = _stop_sequence(choice, self._finish)
        usage = chunk.get("usage")
        if usage and not self._done:
            events += self._end(usage)
        return events

    def _end(self, usage: Mapping[str, Any]) -> list[dict[str, Any]]:
        self._done = True
        cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        return [
            *self._stop_block(),
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": "stop_sequence" if self._matched and self._stop_finish() == "stop"
                    else TO_ANTHROPIC_STOP.get(self._stop_finish(), "end_turn"),
                    "stop_sequence": self._matched if self._stop_finish() == "stop" else None,
                },
                "usage": {
                    "input_tokens": int(usage.get("prompt_tokens") or 0) - cached,
                    "output_tokens": int(usage.get("completion_tokens") or 0),
                    "cache_read_input_tokens": cached,
                },
            },
            {"type": "message_stop"},
        ]

    def close(self) -> list[dict[str, Any]]:
        """The closing events if the stream ended without a usage chunk."""
        if self._done:
            return []
        events = [] if self._started else self._start({})
        return [*events, *self._end({})]


__all__ = [
    "THINKING_BUDGET",
    "TO_ANTHROPIC_STOP",
    "TO_OPENAI_FINISH",
    "AnthropicEventsToOpenAI",
    "OpenAIChunksToAnthropic",
    "Untranslatable",
    "anthropic_answer_to_openai",
    "anthropic_to_openai",
    "check_anthropic_body",
    "check_thinking_room",
    "openai_answer_to_anthropic",
    "openai_to_anthropic",
]
