"""The gateway's OpenAPI 3.1 description, served at ``GET /openapi.json`` (used by the API fuzzer).

Only what the gateway itself needs is required; every other field of the OpenAI/Anthropic bodies passes
through to the provider, so the schemas allow additional properties.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from canaryflow.domain.implicit import EVENTS as IMPLICIT_EVENTS

_CTX = {"type": "object", "description": "canaryflow context (extra_body)", "properties": {
    "user": {"type": "string"}, "attributes": {"type": "object"}, "variables": {"type": "object"}}}
_MESSAGE = {"type": "object", "required": ["role", "content"], "properties": {
    "role": {"type": "string"}, "content": {"oneOf": [{"type": "string"}, {"type": "array"}]}}}
_ERROR = {"description": "refused: the body names the field (OpenAI 'param' or the message)",
          "content": {"application/json": {"schema": {"type": "object", "required": ["error"]}}}}


def _op(summary: str, schema: dict[str, Any] | None, example: dict[str, Any] | None,
        errors: tuple[str, ...] = ("400", "401", "404")) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {"200": {"description": "ok"},
                                                             **{code: _ERROR for code in errors}}}
    if schema is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": schema, "example": example}}}
    return op


CHAT = {"type": "object", "required": ["model", "messages"], "properties": {
    "model": {"type": "string", "description": "the config key"},
    "messages": {"type": "array", "items": _MESSAGE}, "stream": {"type": "boolean"},
    "max_tokens": {"type": "integer"}, "max_completion_tokens": {"type": "integer"},
    "temperature": {"type": "number"}, "top_p": {"type": "number"}, "seed": {"type": "integer"},
    "stop": {"oneOf": [{"type": "string"}, {"type": "array"}]}, "response_format": {"type": "object"},
    "stream_options": {"type": "object"}, "user": {"type": "string"}, "canaryflow": _CTX}}
MESSAGES = {"type": "object", "required": ["model", "messages", "max_tokens"], "properties": {
    "model": {"type": "string", "description": "the config key"}, "system": {"type": "string"},
    "messages": {"type": "array", "items": _MESSAGE}, "max_tokens": {"type": "integer"},
    "temperature": {"type": "number"}, "top_p": {"type": "number"}, "stop_sequences": {"type": "array"},
    "stream": {"type": "boolean"}, "metadata": {"type": "object"}, "canaryflow": _CTX}}
COUNT_TOKENS = {"type": "object", "required": ["model", "messages"], "properties": {
    "model": {"type": "string", "description": "the key of a config whose provider speaks the Anthropic API"},
    "system": {"type": "string"}, "messages": {"type": "array", "items": _MESSAGE},
    "tools": {"type": "array"}, "canaryflow": _CTX}}
RESPONSES = {"type": "object", "required": ["model", "input"], "properties": {
    "model": {"type": "string", "description": "the config key"},
    "input": {"oneOf": [{"type": "string"}, {"type": "array"}]}, "instructions": {"type": "string"},
    "stream": {"type": "boolean"}, "max_output_tokens": {"type": "integer"},
    "temperature": {"type": "number"},
    "tools": {"type": "array"}, "text": {"type": "object"}, "canaryflow": _CTX}}
RESOLVE = {"type": "object", "required": ["config"], "properties": {
    "config": {"type": "string"}, "user": {"type": "string"}, "attributes": {"type": "object"},
    "variables": {"type": "object"}}}
FEEDBACK = {"type": "object", "required": ["request_id", "sentiment"], "properties": {
    "request_id": {"type": "string"}, "sentiment": {"enum": ["positive", "negative"]},
    "comment": {"type": "string"}}}
TRACK = {"type": "object", "required": ["request_id", "event"], "additionalProperties": False, "properties": {
    "request_id": {"type": "string"}, "event": {"enum": list(IMPLICIT_EVENTS)},
    "value": {"type": "number", "minimum": 0,
              "description": "edited: edit distance; dwell_seconds: seconds"}}}


def openapi_spec(config_example: str = "support-bot",
                 anthropic_example: str = "claude-bot") -> dict[str, Any]:
    """The description, with request examples naming ``config_example`` (``anthropic_example`` where only a
    config on an Anthropic provider can answer)."""
    ctx = {"user": "u-1", "attributes": {"email": "a@acme.com"}, "variables": {"product": "Acme"}}
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "canaryflow gateway", "version": "1"},
        "paths": {
            "/v1/chat/completions": {"post": _op(
                "OpenAI Chat Completions (model = config key)", CHAT,
                {"model": config_example, "messages": msgs, "canaryflow": ctx})},
            "/v1/responses": {"post": _op(
                "OpenAI Responses (model = config key)", RESPONSES,
                {"model": config_example, "input": "What is the capital of France?", "canaryflow": ctx})},
            "/v1/models": {"get": _op("The config keys that can be served", None, None, ())},
            "/v1/models/{key}": {"get": _op("One config key that can be served", None, None, ())},
            "/v1/messages": {"post": _op(
                "Anthropic Messages (model = config key)", MESSAGES,
                {"model": config_example, "max_tokens": 100, "messages": msgs, "canaryflow": ctx})},
            "/v1/messages/count_tokens": {"post": _op(
                "Anthropic token count of the message the config would send", COUNT_TOKENS,
                {"model": anthropic_example, "messages": msgs, "canaryflow": ctx})},
            "/v1/resolve": {"post": _op("Which version serves this user, and why", RESOLVE,
                                        {"config": config_example, **ctx})},
            "/v1/feedback": {"post": _op("Feedback on a response", FEEDBACK,
                                         {"request_id": "0" * 32, "sentiment": "negative"})},
            "/v1/track": {"post": _op("Implicit feedback on a response (edited, copied, …)", TRACK,
                                      {"request_id": "0" * 32, "event": "edited", "value": 12})},
            "/metrics": {"get": _op("Prometheus exposition", None, None, ())},
            "/healthz": {"get": _op("Registry reachable, cache fresh (503 otherwise)", None, None, ())},
            "/openapi.json": {"get": _op("This description", None, None, ())},
        },
    }


async def openapi_endpoint(request: Request) -> Response:
    """``GET /openapi.json``."""
    return JSONResponse(openapi_spec())


__all__ = ["openapi_endpoint", "openapi_spec"]
