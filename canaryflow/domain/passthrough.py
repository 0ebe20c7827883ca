"""Apply a config's decisions to the caller's request body — and nothing else. Pure.

The caller's body travels whole; :func:`apply_config` returns a copy with only these changes, per API
(``chat`` = OpenAI Chat Completions, ``responses`` = OpenAI Responses, ``messages`` = Anthropic Messages):

* ``model`` becomes the config's model; the ``canaryflow`` extension is removed;
* the config's rendered messages come first (Anthropic: its system messages go before the caller's
  ``system``, as a string or as a first text block when the caller sent blocks, so ``cache_control`` markers
  stay where they were; Responses: its system messages go in ``instructions``, before the caller's, so a
  ``previous_response_id`` chain does not repeat them every turn; the others are prepended to ``input``);
* the config's parameters are set (they win over the caller's); a caller's token limit can only lower the
  config's (``max_tokens`` / ``max_completion_tokens`` / ``max_output_tokens``, whichever the caller used);
* tools — **merge rule**: the provider gets the caller's tools followed by the config's; a config tool
  replaces a caller tool of the same name. ``tool_choice`` and the output format (``response_format``,
  Responses ``text.format``, Anthropic ``output_format``, or ``output_config.format`` when the caller sent
  ``output_config``, as ``messages.parse`` does) are the config's when it sets them, else the
  caller's (a caller's Anthropic ``disable_parallel_tool_use`` stays on the config's choice).

Every other field (tool history, multimodal parts, ``n``, ``logprobs``, ``seed``, ``user``, ``metadata``,
reasoning settings, ``service_tier``, ``stream_options``, ``cache_control``, fields that do not exist yet)
reaches the provider unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from canaryflow.domain.errors import ValidationFailed

Api = Literal["chat", "responses", "messages"]
API_OF_PROVIDER = {"openai": "chat", "azure-openai": "chat", "anthropic": "messages"}
EXTENSION = "canaryflow"
DEFAULT_MAX_TOKENS = 1024  # Anthropic requires max_tokens; used when neither the caller nor the config set it
_TOKEN_KEYS: dict[str, tuple[str, ...]] = {"chat": ("max_completion_tokens", "max_tokens"),
                                           "messages": ("max_tokens",), "responses": ("max_output_tokens",)}


@dataclass(frozen=True)
class Decisions:
    """What a config decides about a request (from a resolution, for one target)."""

    model: str
    messages: Sequence[Mapping[str, str]] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    tools: Sequence[Mapping[str, Any]] = ()
    """Neutral tool definitions: ``{name, description?, parameters?}`` (JSON Schema parameters)."""
    tool_choice: Any = None
    """``auto`` | ``none`` | ``required`` | a tool name | ``{"name": ...}`` (None: the caller's)."""
    response_format: Mapping[str, Any] | None = None
    """``{type: json_schema, name, schema, strict?}`` or ``{type: json_object}`` (None: the caller's)."""


def _limit(api: str, out: dict[str, Any], config_max: Any) -> None:
    """Cap every token limit the caller set at the config's (none set: the config's, under the API's first
    name); a limit that is not an integer is refused by name rather than replaced."""
    used = [k for k in _TOKEN_KEYS[api] if out.get(k) is not None]
    for key in used:
        caller = out[key]
        if isinstance(caller, bool) or not isinstance(caller, int):
            raise ValidationFailed(f"must be an integer, got {caller!r}", source=key)
        if config_max is not None:
            out[key] = min(caller, int(config_max))
    if not used and config_max is not None:
        out[_TOKEN_KEYS[api][0]] = config_max


def _neutral_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    return {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}


def _tool_name(api: str, tool: Any) -> str | None:
    if not isinstance(tool, Mapping):
        return None
    if api == "chat" and isinstance(tool.get("function"), Mapping):
        name = tool["function"].get("name")
    else:
        name = tool.get("name")
    return name if isinstance(name, str) else None


def tool_for(api: str, tool: Mapping[str, Any]) -> dict[str, Any]:
    """A neutral tool definition in ``api``'s shape."""
    t = _neutral_tool(tool)
    schema = t.get("parameters") or {"type": "object", "properties": {}}
    if api == "messages":
        out: dict[str, Any] = {"name": t["name"], "input_schema": schema}
        if "description" in t:
            out["description"] = t["description"]
        return out
    fn: dict[str, Any] = {"name": t["name"], "parameters": schema}
    for k in ("description", "strict"):
        if k in t:
            fn[k] = t[k]
    if api == "responses":
        return {"type": "function", **fn}
    return {"type": "function", "function": fn}


def _merge_tools(api: str, caller: Any, config: Sequence[Mapping[str, Any]]) -> list[Any]:
    names = {str(t.get("name")) for t in config}
    kept = [t for t in caller if _tool_name(api, t) not in names] if isinstance(caller, list) else []
    return [*kept, *(tool_for(api, t) for t in config)]


def tool_choice_for(api: str, choice: Any) -> Any:
    """A neutral ``tool_choice`` in ``api``'s shape."""
    name = choice.get("name") if isinstance(choice, Mapping) else None
    if isinstance(choice, str) and choice not in ("auto", "none", "required", "any"):
        name = choice
    if api == "messages":
        if name:
            return {"type": "tool", "name": name}
        return {"type": {"required": "any"}.get(str(choice), str(choice))}
    if name:
        return {"type": "function", "name": name} if api == "responses" else \
            {"type": "function", "function": {"name": name}}
    return {"any": "required"}.get(str(choice), str(choice))


def format_for(api: str, fmt: Mapping[str, Any]) -> tuple[str, Any]:
    """A neutral output format as ``(field, value)`` in ``api``'s shape."""
    kind = fmt.get("type", "json_schema")
    schema = fmt.get("schema") or {"type": "object"}
    if api == "messages":
        return "output_format", {"type": "json_schema", "schema": schema}
    if kind == "json_object":
        value: dict[str, Any] = {"type": "json_object"}
    elif kind == "text":
        value = {"type": "text"}
    else:
        spec: dict[str, Any] = {"name": fmt.get("name") or "output", "schema": schema}
        if fmt.get("strict") is not None:
            spec["strict"] = fmt["strict"]
        if fmt.get("description"):
            spec["description"] = fmt["description"]
        value = {"type": "json_schema", **spec} if api == "responses" else {"type": "json_schema",
                                                                            "json_schema": spec}
    return ("text", value) if api == "responses" else ("response_format", value)


def _prepend_messages(api: str, out: dict[str, Any], messages: Sequence[Mapping[str, str]]) -> None:
    if not messages:
        return
    if api == "messages":
        system = [str(m["content"]) for m in messages if m.get("role") in ("system", "developer")]
        rest = [{"role": m["role"], "content": m["content"]} for m in messages
                if m.get("role") not in ("system", "developer")]
        if system:
            text = "\n\n".join(system)
            caller = out.get("system")
            if isinstance(caller, list):
                out["system"] = [{"type": "text", "text": text}, *caller]
            elif isinstance(caller, str) and caller:
                out["system"] = f"{text}\n\n{caller}"
            elif caller is None or caller == "":
                out["system"] = text
            else:
                raise ValidationFailed("'system' must be a string or a list of text blocks", source="system")
        if rest:
            out["messages"] = [*rest, *(out.get("messages") or [])]
        return
    config = [{"role": m["role"], "content": m["content"]} for m in messages]
    if api == "responses":
        _prepend_responses(out, config)
    else:
        out["messages"] = [*config, *(out.get("messages") or [])]


def _prepend_responses(out: dict[str, Any], config: list[dict[str, str]]) -> None:
    """Responses: the config's system messages become ``instructions`` (before the caller's), which OpenAI
    applies to this turn only — the ``input`` is kept in the conversation that ``previous_response_id``
    continues, so a prompt put there would be repeated once more every turn; the others go before
    ``input``."""
    system = [m["content"] for m in config if m["role"] in ("system", "developer")]
    rest = [m for m in config if m["role"] not in ("system", "developer")]
    if system:
        text = "\n\n".join(system)
        caller = out.get("instructions")
        if caller is not None and not isinstance(caller, str):
            raise ValidationFailed("'instructions' must be a string", source="instructions")
        out["instructions"] = f"{text}\n\n{caller}" if caller else text
    if rest:
        given = out.get("input")
        turns = [{"role": "user", "content": given}] if isinstance(given, str) else list(given or [])
        out["input"] = [*rest, *turns]


def _text_options(out: Mapping[str, Any]) -> dict[str, Any]:
    text = out.get("text")
    if text is None:
        return {}
    if not isinstance(text, Mapping):
        raise ValidationFailed("'text' must be an object ({format, verbosity})", source="text")
    return dict(text)


def _set_parameters(api: str, out: dict[str, Any], params: Mapping[str, Any]) -> None:
    for name in ("temperature", "top_p"):
        if params.get(name) is not None:
            out[name] = params[name]
    if api == "chat":
        for name in ("presence_penalty", "frequency_penalty", "seed"):
            if params.get(name) is not None:
                out[name] = params[name]
        if params.get("stop") is not None:
            out["stop"] = list(params["stop"])
        if isinstance(params.get("response_format"), str):
            out["response_format"] = {"type": params["response_format"]}
    elif api == "messages" and params.get("stop") is not None:
        out["stop_sequences"] = list(params["stop"])
    elif api == "responses" and isinstance(params.get("response_format"), str):
        out["text"] = {**_text_options(out), "format": {"type": params["response_format"]}}
    _limit(api, out, params.get("max_tokens"))


def apply_config(api: Api, body: Mapping[str, Any], decisions: Decisions) -> dict[str, Any]:
    """The provider's body: ``body`` with only the config's ``decisions`` applied (see the module doc).

    Args:
        api: the API both the body and the provider speak.
        body: the caller's request body (not modified).
        decisions: the config's decisions for the target that is called.
    """
    out = {k: v for k, v in body.items() if k != EXTENSION}
    out["model"] = decisions.model
    _prepend_messages(api, out, decisions.messages)
    _set_parameters(api, out, decisions.parameters)
    if api == "messages" and out.get("max_tokens") is None:
        out["max_tokens"] = DEFAULT_MAX_TOKENS
    if decisions.tools:
        out["tools"] = _merge_tools(api, out.get("tools"), decisions.tools)
    if decisions.tool_choice is not None:
        choice = tool_choice_for(api, decisions.tool_choice)
        given = out.get("tool_choice")
        if (api == "messages" and isinstance(given, Mapping) and given.get("disable_parallel_tool_use")
                and choice.get("type") != "none"):  # the caller's parallel setting stays its own
            choice["disable_parallel_tool_use"] = True
        out["tool_choice"] = choice
    if decisions.response_format is not None:
        key, value = format_for(api, decisions.response_format)
        if api == "responses":
            out["text"] = {**_text_options(out), "format": value}
        elif api == "messages" and isinstance(out.get("output_config"), Mapping):
            out["output_config"] = {**out["output_config"], "format": value}  # where the caller's went
        else:
            out[key] = value
    return out


__all__ = ["API_OF_PROVIDER", "DEFAULT_MAX_TOKENS", "EXTENSION", "Api", "Decisions", "apply_config",
           "format_for", "tool_choice_for", "tool_for"]
