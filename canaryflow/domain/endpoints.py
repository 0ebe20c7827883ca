"""Named provider endpoints: the providers file's format, validated (no I/O here).

::

    providers:
      - name: local-vllm                 # what configs and fallbacks write as `provider:`
        api: openai                      # openai | anthropic | azure-openai
        base_url: http://127.0.0.1:8000/v1
        api_key_env: VLLM_API_KEY        # optional for servers that take no key
      - name: azure-east
        api: azure-openai
        base_url: https://my-resource.openai.azure.com
        api_version: "2024-10-21"
        api_key_env: AZURE_OPENAI_API_KEY
        headers: {x-team: support}

Keys come only from the environment: a literal ``api_key`` (or a credential header with a literal value)
is refused. Header values may be ``${VAR}``, read from the environment when the client is built.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from canaryflow.domain.config import ENDPOINT_PATTERN

Api = Literal["openai", "anthropic", "azure-openai"]
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_CREDENTIAL_HEADERS = {"authorization", "proxy-authorization", "api-key", "x-api-key", "x-goog-api-key"}
_LOOKS_LIKE_A_KEY = re.compile(r"(^|\s)(sk-|sk_|xai-|gsk_|AIza|Bearer\s)|^[A-Za-z0-9]{32,}$")


class Endpoint(BaseModel):
    """One provider endpoint a config can name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=ENDPOINT_PATTERN, description="[a-z0-9][a-z0-9._-]{0,62}")
    api: Api
    base_url: str | None = Field(default=None, pattern=r"^https?://\S+$", description="an http(s) URL")
    base_url_env: str | None = Field(default=None, pattern=ENV_NAME,
                                     description="an environment variable holding the base URL")
    api_key_env: str | None = Field(default=None, pattern=ENV_NAME,
                                    description="the environment variable holding the key")
    api_version: str | None = Field(default=None, min_length=1, description="azure-openai: e.g. 2024-10-21")
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _no_literal_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and "api_key" in data:
            raise ValueError("api_key: a literal key is refused: keys come only from the environment; "
                             "write api_key_env: NAME_OF_THE_VARIABLE and export the key there")
        return data

    @field_validator("api_key_env", mode="before")
    @classmethod
    def _a_name_not_a_key(cls, value: Any) -> Any:
        if isinstance(value, str) and _LOOKS_LIKE_A_KEY.search(value) and not value.isupper():
            raise ValueError("looks like a key: write the NAME of the environment variable holding it")
        return value

    @field_validator("headers")
    @classmethod
    def _no_literal_credentials(cls, value: dict[str, str]) -> dict[str, str]:
        for header, text in value.items():
            if ENV_REF.match(text):
                continue
            if header.lower() in _CREDENTIAL_HEADERS or _LOOKS_LIKE_A_KEY.search(text):
                raise ValueError(f"{header}: a literal credential is refused: write its value as ${{VAR}} "
                                 "(read from the environment) or use api_key_env")
        return value

    @model_validator(mode="after")
    def _api_fields(self) -> Endpoint:
        if self.api == "azure-openai":
            if self.base_url is None and self.base_url_env is None:
                raise ValueError("base_url: azure-openai needs the resource URL, "
                                 "e.g. https://my-resource.openai.azure.com")
            if self.api_version is None:
                raise ValueError("api_version: azure-openai needs an API version, e.g. \"2024-10-21\"")
        elif self.api_version is not None:
            raise ValueError(f"api_version: only azure-openai endpoints take an API version, not {self.api}")
        return self


DEFAULT_ENDPOINTS = (
    Endpoint(name="openai", api="openai", base_url_env="OPENAI_BASE_URL", api_key_env="OPENAI_API_KEY"),
    Endpoint(name="anthropic", api="anthropic", base_url_env="ANTHROPIC_BASE_URL",
             api_key_env="ANTHROPIC_API_KEY"),
)
"""Always defined (from the providers' standard variables); a providers file may redefine them."""


class ProvidersFile(BaseModel):
    """``providers: [...]`` with unique names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    providers: list[Endpoint] = Field(default_factory=list)

    @field_validator("providers")
    @classmethod
    def _unique(cls, value: list[Endpoint]) -> list[Endpoint]:
        names = [e.name for e in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate endpoint names {dupes}: each endpoint needs its own name")
        return value


def merge_endpoints(*groups: list[Endpoint] | tuple[Endpoint, ...]) -> dict[str, Endpoint]:
    """Endpoints by name; a later group's endpoint replaces an earlier one of the same name."""
    out: dict[str, Endpoint] = {}
    for group in groups:
        for endpoint in group:
            out[endpoint.name] = endpoint
    return out


__all__ = ["DEFAULT_ENDPOINTS", "Api", "Endpoint", "ProvidersFile", "merge_endpoints"]
