"""AI configuration versions: the YAML format of DESIGN.md as pydantic models, hashing and rendering."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from canaryflow.domain.checks import OutputChecks
from canaryflow.domain.errors import RenderError
from canaryflow.domain.evaluators import EvaluatorSpec, check_evaluators
from canaryflow.domain.tools import JsonSchemaFormat, Tool, ToolChoice, check_tool_choice, check_tool_names

KEY_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
PROVIDERS = ("openai", "anthropic")
"""The endpoints that always exist (from ``OPENAI_*`` / ``ANTHROPIC_*``); a providers file adds more."""
ENDPOINT_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
Provider = Annotated[str, Field(pattern=ENDPOINT_PATTERN,
                                description="an endpoint: openai, anthropic or one of the providers file")]
ConfigKey = Annotated[str, Field(pattern=KEY_PATTERN, description="config key: [a-z0-9][a-z0-9._-]{0,62}")]

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_ANY_BRACES = re.compile(r"\{\{(.*?)\}\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(_Strict):
    """One prompt message, prepended to the caller's messages."""

    role: Literal["system", "user", "assistant"]
    content: str

    @field_validator("content")
    @classmethod
    def _placeholders_well_formed(cls, value: str) -> str:
        for inner in _ANY_BRACES.findall(value):
            if not re.fullmatch(r"\s*[A-Za-z_][A-Za-z0-9_]*\s*", inner):
                raise ValueError(
                    f"placeholder {{{{{inner}}}}} cannot be filled by any variable: use {{{{name}}}} with a "
                    "name of letters, digits and underscores"
                )
        stripped = _ANY_BRACES.sub("", value)
        if "{{" in stripped or "}}" in stripped:
            raise ValueError("unbalanced '{{' or '}}': write placeholders as {{name}}")
        return value


class Parameters(_Strict):
    """Sampling parameters passed to the provider."""

    temperature: float | None = Field(default=None, ge=0.0, le=2.0, description="allowed: 0–2")
    top_p: float | None = Field(default=None, gt=0.0, le=1.0, description="allowed: (0, 1]")
    max_tokens: int | None = Field(default=None, gt=0, le=1_000_000, description="a positive integer")
    stop: list[str] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    seed: int | None = None
    response_format: Literal["text", "json_object"] | None = None

    def as_kwargs(self) -> dict[str, Any]:
        """The parameters that are set, as keyword arguments."""
        return self.model_dump(exclude_none=True)


class Fallback(_Strict):
    """A provider/model to use when the ones before it fail."""

    provider: Provider
    model: str = Field(min_length=1)
    parameters: Parameters | None = None


class Metadata(_Strict):
    """Who wrote a version and why; not part of the content hash."""

    author: str | None = None
    rationale: str | None = None
    labels: list[str] = Field(default_factory=list)


class ConfigSpec(_Strict):
    """One version of an AI configuration, as written in a config file."""

    key: ConfigKey
    description: str = ""
    provider: Provider
    model: str = Field(min_length=1)
    messages: list[Message] = Field(default_factory=list)
    parameters: Parameters = Field(default_factory=Parameters)
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    response_format: JsonSchemaFormat | None = None
    fallback: list[Fallback] = Field(default_factory=list)
    output_checks: OutputChecks | None = None
    evaluators: list[EvaluatorSpec] | None = Field(
        default=None, description="online evaluators: a sample of answers scored off the request path "
        "(see canaryflow.domain.evaluators); gates eval_score / eval_pass_rate name one")
    drop: list[str] | None = Field(
        default=None, description="request fields (top-level names, or paths such as messages[0].audio) "
        "that may be dropped when a request must be translated to the other API and has no counterpart "
        "there; any other such field is refused with a 400 naming it")
    metadata: Metadata = Field(default_factory=Metadata)

    @field_validator("tools")
    @classmethod
    def _unique_tools(cls, value: list[Tool] | None) -> list[Tool] | None:
        check_tool_names(value or ())
        return value or None  # `tools: []` is no tools (and hashes like a file without the field)

    @field_validator("drop")
    @classmethod
    def _drop_names(cls, value: list[str] | None) -> list[str] | None:
        for name in value or ():
            if not name.strip() or name != name.strip():
                raise ValueError(f"{name!r} is not a field name: list request fields, e.g. seed, logprobs")
        return sorted(set(value)) if value else None  # `drop: []` hashes like a file without the field

    @field_validator("tool_choice", mode="before")
    @classmethod
    def _choice_shape(cls, value: Any) -> Any:
        if value is None or isinstance(value, Mapping) or value in ("auto", "none", "required"):
            return value
        raise ValueError(f"{value!r} is not a tool choice: use auto, none, required or {{name: TOOL}}")

    @field_validator("response_format", mode="before")
    @classmethod
    def _format_shape(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and value.get("type") in ("text", "json_object"):
            raise ValueError(f"type {value['type']} goes in parameters.response_format; here only "
                             "{type: json_schema, name, schema} is allowed")
        return value

    @field_validator("tool_choice")
    @classmethod
    def _choice_names_a_tool(cls, value: ToolChoice | None, info: ValidationInfo) -> ToolChoice | None:
        if "tools" in info.data:  # else tools failed validation and already has its own error
            check_tool_choice(info.data["tools"] or (), value)
        return value

    @field_validator("response_format")
    @classmethod
    def _one_response_format(cls, value: JsonSchemaFormat | None,
                             info: ValidationInfo) -> JsonSchemaFormat | None:
        params = info.data.get("parameters")
        if value is not None and params is not None and params.response_format is not None:
            raise ValueError("also set in parameters.response_format: keep one (a json_schema here, or "
                             "text / json_object in parameters)")
        return value

    @field_validator("output_checks")
    @classmethod
    def _schema_to_match(cls, value: OutputChecks | None, info: ValidationInfo) -> OutputChecks | None:
        if value is not None and value.match_schema and info.data.get("response_format") is None \
                and "response_format" in info.data:
            raise ValueError("match_schema needs a schema to match: set response_format "
                             "{type: json_schema, name, schema} (or use valid_json: true)")
        return value

    @field_validator("evaluators")
    @classmethod
    def _evaluators_fit(cls, value: list[EvaluatorSpec] | None,
                        info: ValidationInfo) -> list[EvaluatorSpec] | None:
        if not value:
            return None  # `evaluators: []` hashes like a file without the field
        if "response_format" in info.data:  # else response_format has its own error
            check_evaluators(value, has_schema=info.data["response_format"] is not None)
        return value

    def evaluator(self, name: str) -> EvaluatorSpec | None:
        """The evaluator called ``name``, if this version declares one."""
        return next((e for e in self.evaluators or () if e.name == name), None)

    def content(self) -> dict[str, Any]:
        """What identifies the version: everything but the metadata (unset fields are left out)."""
        return self.model_dump(mode="json", exclude={"metadata"}, exclude_none=True, by_alias=True)

    def content_hash(self) -> str:
        """sha256 of the canonical JSON of :meth:`content`."""
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def placeholders(self) -> list[str]:
        """Every variable name the messages use, in order of first use."""
        seen: dict[str, None] = {}
        for message in self.messages:
            for name in PLACEHOLDER.findall(message.content):
                seen.setdefault(name, None)
        return list(seen)


def render_text(text: str, variables: Mapping[str, object], *, config_key: str) -> str:
    """Fill ``{{name}}`` placeholders; a missing variable raises :class:`RenderError`."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise RenderError(
                f"config {config_key!r} needs variable {name!r}: pass it in variables "
                f"(SDK variables={{'{name}': ...}}, CLI --var {name}=..., gateway canaryflow.variables)"
            )
        return str(variables[name])

    return PLACEHOLDER.sub(fill, text)


__all__ = ["ENDPOINT_PATTERN", "PROVIDERS", "ConfigSpec", "Fallback", "Message", "Metadata", "Parameters",
           "render_text"]
