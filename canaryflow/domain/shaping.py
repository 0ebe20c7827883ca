"""Caller body + a target's decisions → the provider's body; the provider's answer → the caller's. Pure.

Same API: :func:`~canaryflow.domain.passthrough.apply_config` only. Different APIs (OpenAI chat ⇄
Anthropic messages): :mod:`~canaryflow.domain.crossapi` translates the caller's body first, then the config
is applied in the provider's API; answers and stream events are translated back. The Responses API is
served by OpenAI-API endpoints only.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from canaryflow.domain import crossapi
from canaryflow.domain.errors import ValidationFailed
from canaryflow.domain.passthrough import API_OF_PROVIDER, Decisions, apply_config

_Event = dict[str, Any]


def provider_api(caller_api: str, provider_kind: str) -> str:
    """The API to speak to a provider of ``provider_kind`` (``openai``, ``azure-openai``, ``anthropic``).

    Raises:
        Untranslatable: a Responses API request for an Anthropic provider.
    """
    api = API_OF_PROVIDER.get(provider_kind, "chat")
    if caller_api == "responses":
        if api != "chat":
            raise crossapi.Untranslatable(
                "the Responses API (/v1/responses) is served by configs whose provider speaks the OpenAI "
                f"API; this config's provider is {provider_kind!r}: call /v1/chat/completions or "
                "/v1/messages instead",
                source="model",
            )
        return "responses"
    return api


API_HEADERS: dict[str, tuple[str, ...]] = {"messages": ("anthropic-beta", "anthropic-version")}
"""Request headers of each API that change what the provider does, sent on with the body (same API)."""


def shape_headers(caller_api: str, headers: Mapping[str, str], api: str, *, drop: Collection[str] = ()
                  ) -> dict[str, str]:
    """The caller's API headers (:data:`API_HEADERS`) to send to a provider speaking ``api``.

    Same API: all of them. Across APIs ``anthropic-version`` is the gateway's to honour (it answers in the
    caller's API) and is not sent; a beta (``anthropic-beta``) has no counterpart and is refused by name,
    unless the config lists it in ``drop``.

    Raises:
        Untranslatable: a beta header across APIs.
    """
    if caller_api == api:
        return dict(headers)
    if headers.get("anthropic-beta") and "anthropic-beta" not in drop:
        raise crossapi.Untranslatable(
            f"the anthropic-beta header ({headers['anthropic-beta']}) asks for Anthropic beta features, "
            "which the config's provider does not have; it is refused rather than ignored (a config may list "
            "anthropic-beta in its drop fields)", source="anthropic-beta")
    return {}


@contextmanager
def _wrong_types(api: str) -> Iterator[None]:
    """A body whose fields have types the shaping cannot read: a 400 naming ``body``, not a crash."""
    try:
        yield
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
        raise ValidationFailed(f"a field has the wrong type for the {api} API ({type(exc).__name__}: {exc}); "
                               "check the body against the API reference", source="body") from exc


def shape_count_tokens(body: Mapping[str, Any], decisions: Decisions, provider_kind: str) -> dict[str, Any]:
    """The body of ``POST /v1/messages/count_tokens`` for the config's provider: the config applied as to a
    message (model, system, messages, tools, tool choice, output format), without the sampling fields the
    config sets, which counting takes none of (a caller's own reach the provider, which judges them).

    Raises:
        Untranslatable: the config's provider speaks the OpenAI API, which has no token counting endpoint.
    """
    if API_OF_PROVIDER.get(provider_kind, "chat") != "messages":
        raise crossapi.Untranslatable(
            "messages/count_tokens counts for configs whose provider speaks the Anthropic API; this config's "
            f"provider is {provider_kind!r}, whose API has no token counting endpoint", source="model")
    with _wrong_types("messages"):
        out = apply_config("messages", body, decisions)
    for name in ("max_tokens", "temperature", "top_p", "stop_sequences"):
        if name not in body:
            out.pop(name, None)
    return out


def _stream_usage(caller_api: str, body: dict[str, Any]) -> dict[str, Any]:
    if caller_api == "chat" and body.get("stream") is True:
        opts = body.get("stream_options")
        body["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
    return body


def _check_capped_thinking(body: Mapping[str, Any], out: Mapping[str, Any]) -> None:
    """A caller's thinking budget that fitted its own ``max_tokens`` but not the config's cap on it is the
    config's doing: refused naming ``thinking.budget_tokens`` and the cap, not sent for Claude's 400 about a
    ``max_tokens`` the caller did not send. (A budget the caller's own limit leaves no room for is the
    provider's to refuse.)"""
    thinking = out.get("thinking")
    if not isinstance(thinking, Mapping) or thinking.get("type") != "enabled":
        return
    budget, asked, limit = thinking.get("budget_tokens"), body.get("max_tokens"), out.get("max_tokens")
    if not (isinstance(budget, int) and isinstance(limit, int)) or budget < limit:
        return
    if asked is None or (isinstance(asked, int) and asked > budget):
        raise ValidationFailed(
            f"a thinking budget of {budget} tokens needs max_tokens above it, but the config caps max_tokens "
            f"at {limit} (a caller's max_tokens can only lower it): lower budget_tokens below {limit} or "
            "omit thinking", source="thinking.budget_tokens")


def _without_tool_options(out: dict[str, Any]) -> None:
    """Anthropic takes ``tool_choice`` auto/none (and ``disable_parallel_tool_use``) without tools; OpenAI
    refuses them there. With no tool to call they ask for nothing, so they are not sent (a choice that names
    a tool or requires one still is: the provider says why it cannot be)."""
    if out.get("tool_choice") in ("auto", "none"):
        del out["tool_choice"]
    out.pop("parallel_tool_calls", None)


def shape_request(
    caller_api: str, body: Mapping[str, Any], decisions: Decisions, api: str, *, drop: Collection[str] = ()
) -> dict[str, Any]:
    """The body to send to a provider speaking ``api``.

    A streamed chat request always asks for usage (``stream_options.include_usage``) so it can be metered;
    :class:`EventShaper` removes the usage the caller did not ask for.
    """
    with _wrong_types(api):
        if caller_api == api:
            source = dict(body)
        elif caller_api == "chat" and api == "messages":
            source = crossapi.openai_to_anthropic(body, drop=drop)
        elif caller_api == "messages" and api == "chat":
            source = crossapi.anthropic_to_openai(body, drop=drop)
        else:
            raise crossapi.Untranslatable(f"no translation from the {caller_api} API to the {api} API",
                                          source="model")
        out = apply_config(api, source, decisions)  # type: ignore[arg-type]
        if caller_api == "chat" and api == "messages":
            crossapi.check_anthropic_body(out)
        elif caller_api == api == "messages":
            _check_capped_thinking(body, out)
        if caller_api == "messages" and api == "chat" and not out.get("tools"):
            _without_tool_options(out)
        return _stream_usage(api, out)


def shape_answer(caller_api: str, api: str, answer: dict[str, Any]) -> dict[str, Any]:
    """The provider's whole answer in the caller's API (unchanged when the APIs are the same)."""
    if caller_api == api:
        return answer
    if caller_api == "chat" and api == "messages":
        return crossapi.anthropic_answer_to_openai(answer)
    if caller_api == "messages" and api == "chat":
        return crossapi.openai_answer_to_anthropic(answer)
    return answer


def wants_usage(caller_api: str, body: Mapping[str, Any]) -> bool:
    """Whether a streamed chat caller asked for the usage chunk."""
    opts = body.get("stream_options")
    return caller_api != "chat" or bool(isinstance(opts, dict) and opts.get("include_usage"))


class EventShaper:
    """The provider's stream events as the caller's (same API: unchanged, but for a usage chunk a chat
    caller did not ask for)."""

    def __init__(self, caller_api: str, api: str, *, include_usage: bool = True) -> None:
        self.caller_api = caller_api
        self.api = api
        self.include_usage = include_usage
        self._a2o = (
            crossapi.AnthropicEventsToOpenAI(include_usage=include_usage)
            if (caller_api, api) == ("chat", "messages")
            else None
        )
        self._o2a = crossapi.OpenAIChunksToAnthropic() if (caller_api, api) == ("messages", "chat") else None

    def feed(self, event: _Event) -> list[_Event]:
        """The caller's events for one provider event."""
        if self._a2o is not None:
            return self._a2o.feed(event)
        if self._o2a is not None:
            return self._o2a.feed(event)
        if self.api == "chat" and not self.include_usage and "usage" in event:
            if not event.get("choices"):
                return []
            event = {k: v for k, v in event.items() if k != "usage"}
        return [event]

    def close(self) -> list[_Event]:
        """Events still owed when the provider's stream ended."""
        return self._o2a.close() if self._o2a is not None else []


__all__ = ["API_HEADERS", "EventShaper", "provider_api", "shape_answer", "shape_count_tokens",
           "shape_headers", "shape_request", "wants_usage"]
