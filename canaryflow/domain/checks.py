"""Output checks (guardrails) a config declares, and the pure check of one answer against them.

In a config file::

    output_checks:
      valid_json: true          # the answer parses as JSON                       → invalid_json
      match_schema: true        # it matches the config's response_format schema  → schema_mismatch
      non_empty: true           # it has text (or a tool call)                     → empty
      refusal: true             # a safety refusal (content_filter, a refusal, "I can't help with that")
      regex: "^\\{"             # re.search must find it                           → pattern
      contains: ["status"]      # every one must appear                            → pattern
      not_contains: ["TODO"]    # none may appear                                  → pattern
      min_length: 1             # characters                                       → length
      max_length: 4000
      route_refusals: false     # a refusal is recorded, never re-routed, unless this is true

A non-streamed answer that fails a check is retried on the next fallback (then on stable); a refusal is only
recorded unless ``route_refusals`` says so (routing around a safety refusal must be a visible decision). An
answer that is a tool call is not text: only ``non_empty`` applies to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import jsonschema
import jsonschema.validators
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CHECK_FAILURES = ("invalid_json", "schema_mismatch", "empty", "refusal", "pattern", "length")
"""Typed reasons an answer fails its config's output checks (also ``error_type`` values)."""

REFUSAL = re.compile(
    r"^\W*(?:(?:i'?m|i am) sorry|sorry|i apologi[sz]e|unfortunately)?[\s,.!]*(?:but\s+)?"
    r"(?:i\s*(?:can'?t|cannot|can not|won'?t|will not|am unable to|'?m unable to|am not able to|"
    r"'?m not able to|must decline to)\s+(?:help|assist|comply|provide|do|answer|fulfil|support)"
    r"|i must decline|i'?m not able to help)",
    re.IGNORECASE)
"""A refusal written as text at the start of an answer (English; the provider's own signals come first)."""


def compiling(field: str, value: str | None) -> str | None:
    """``value`` if it is a Python regular expression that compiles (or None); else a ValueError naming
    ``field`` and the fix (for pydantic validators)."""
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{field} {value!r} does not compile ({exc}): write a Python regular "
                             "expression (escape backslashes in YAML double quotes)") from None
    return value


def provider_refused(answer: Mapping[str, Any] | None) -> bool:
    """Whether a whole answer (any API) carries the provider's own refusal: Chat Completions'
    ``message.refusal``, a Responses ``refusal`` content part, or Anthropic's ``stop_reason: refusal``."""
    if not answer:
        return False
    if answer.get("stop_reason") == "refusal":
        return True
    for choice in answer.get("choices") or ():
        if isinstance(choice, Mapping) and (choice.get("message") or {}).get("refusal"):
            return True
    for item in answer.get("output") or ():
        if isinstance(item, Mapping):
            for part in item.get("content") or ():
                if isinstance(part, Mapping) and part.get("type") == "refusal":
                    return True
    return False


class OutputChecks(BaseModel):
    """The output checks of a config version (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    valid_json: bool = False
    match_schema: bool = Field(default=False, description="needs the config's response_format")
    non_empty: bool = False
    refusal: bool = False
    regex: str | None = Field(default=None, description="a Python regular expression re.search must find")
    contains: list[str] = Field(default_factory=list)
    not_contains: list[str] = Field(default_factory=list)
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=1)
    route_refusals: bool = Field(default=False,
                                 description="re-route a refused request to the next fallback / stable")

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return compiling("regex", value)

    @model_validator(mode="after")
    def _bounds(self) -> OutputChecks:
        if self.min_length is not None and self.max_length is not None and self.min_length > self.max_length:
            raise ValueError(f"min_length {self.min_length} is above max_length {self.max_length}")
        return self


class Checker:
    """:class:`OutputChecks` compiled once per version, with the config's response schema."""

    __slots__ = ("_regex", "_validator", "checks")

    def __init__(self, checks: OutputChecks, schema: dict[str, Any] | None = None) -> None:
        self.checks = checks
        self._regex = re.compile(checks.regex) if checks.regex is not None else None
        self._validator: Any = None
        if checks.match_schema and schema is not None:
            cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
            self._validator = cls(schema)

    def check(self, text: str, *, finish_reason: str = "stop", tool_calls: int = 0,
              refused: bool = False) -> str | None:
        """The first check ``text`` fails (one of :data:`CHECK_FAILURES`), or ``None`` when it passes.

        Args:
            text: the answer's text.
            finish_reason: the provider's finish reason (OpenAI vocabulary); ``content_filter`` is a refusal.
            tool_calls: how many tool calls the answer made (a tool call is not checked as text).
            refused: the provider flagged a refusal (e.g. Chat Completions' ``message.refusal``).
        """
        c = self.checks
        if c.refusal and (refused or finish_reason == "content_filter"):
            return "refusal"
        if tool_calls or finish_reason == "tool_calls":
            return None
        if c.non_empty and not text.strip():
            return "empty"
        if c.refusal and REFUSAL.match(text):
            return "refusal"
        if (c.min_length is not None and len(text) < c.min_length) or (
                c.max_length is not None and len(text) > c.max_length):
            return "length"
        if c.valid_json or self._validator is not None:
            try:
                value = json.loads(text)
            except ValueError:
                return "invalid_json"
            if self._validator is not None and not self._validator.is_valid(value):
                return "schema_mismatch"
        if self._regex is not None and self._regex.search(text) is None:
            return "pattern"
        if any(s not in text for s in c.contains) or any(s in text for s in c.not_contains):
            return "pattern"
        return None

    def reroutes(self, reason: str) -> bool:
        """Whether a failure of ``reason`` is retried elsewhere (a refusal only with ``route_refusals``)."""
        return reason != "refusal" or self.checks.route_refusals


__all__ = ["CHECK_FAILURES", "REFUSAL", "Checker", "OutputChecks", "compiling", "provider_refused"]
