"""The endpoints this process knows: the two defaults, then the providers file, then the settings section.

* ``CANARYFLOW_PROVIDERS_FILE``: a YAML file ``providers: [{name, api, base_url, api_key_env, ...}]``
  (format in :mod:`canaryflow.domain.endpoints`, reference in docs/providers.md);
* ``CANARYFLOW_PROVIDERS``: the same list as JSON, for deployments configured by environment only.

Later sources replace earlier endpoints of the same name, so a file may redefine ``openai`` (e.g. to add
headers). The file is re-read when its modification time or size changes; keys and ``${VAR}`` header
values are read from the environment at each lookup (a rotated key gets a new client).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from canaryflow.domain.endpoints import DEFAULT_ENDPOINTS, ENV_REF, Endpoint, ProvidersFile, merge_endpoints
from canaryflow.domain.validation import parse
from canaryflow.errors import ProviderError, ValidationFailed

FILE_VAR = "CANARYFLOW_PROVIDERS_FILE"
JSON_VAR = "CANARYFLOW_PROVIDERS"
_lock = threading.Lock()
_Stamp = tuple[str | None, tuple[int, int] | None, str | None]
_cached: tuple[_Stamp, dict[str, Endpoint]] | None = None


def _stamp() -> _Stamp:
    path = os.environ.get(FILE_VAR) or None
    stat = None
    if path:
        try:
            st = os.stat(path)
            stat = (st.st_mtime_ns, st.st_size)
        except OSError:
            stat = None
    return (path, stat, os.environ.get(JSON_VAR) or None)


def _load(path: str | None, raw_json: str | None) -> dict[str, Endpoint]:
    from canaryflow.files import load_model

    groups: list[list[Endpoint] | tuple[Endpoint, ...]] = [DEFAULT_ENDPOINTS]
    if path:
        if not Path(path).is_file():
            raise ValidationFailed(f"{FILE_VAR}={path}: no such file", source=FILE_VAR)
        groups.append(load_model(ProvidersFile, path).providers)
    if raw_json:
        try:
            data = json.loads(raw_json)
        except json.JSONDecodeError as exc:
            raise ValidationFailed(f"not JSON ({exc.msg} at position {exc.pos})", source=JSON_VAR) from exc
        if isinstance(data, list):
            data = {"providers": data}
        groups.append(parse(ProvidersFile, data, source=JSON_VAR).providers)
    return merge_endpoints(*groups)


def endpoints() -> dict[str, Endpoint]:
    """Every endpoint this process knows, by name.

    Raises:
        ValidationFailed: the providers file or the JSON section is invalid (file, line, field, fix).
    """
    global _cached
    stamp = _stamp()
    cached = _cached
    if cached is not None and cached[0] == stamp:
        return cached[1]
    with _lock:
        found = _load(stamp[0], stamp[2])
        _cached = (stamp, found)
    return found


def endpoint_names() -> list[str]:
    """The names configs may use as ``provider`` in this process."""
    return sorted(endpoints())


def get_endpoint(name: str) -> Endpoint:
    """The endpoint ``name``.

    Raises:
        ProviderError: no such endpoint here (``error_type="bad_request"``: the config names an endpoint
            this process has not defined, so no retry or fallback can fix that request).
    """
    found = endpoints().get(name)
    if found is None:
        raise ProviderError(
            f"unknown provider {name!r}: this process knows {endpoint_names()}; define it in the providers "
            f"file ({FILE_VAR}, see docs/providers.md)", error_type="bad_request", provider=name)
    return found


@dataclass(frozen=True)
class Connection:
    """What a client for an endpoint is built from, with the environment read now."""

    endpoint: Endpoint
    base_url: str | None
    api_key: str | None
    headers: tuple[tuple[str, str], ...]


def connection(endpoint: Endpoint, *, base_url: str | None = None, api_key: str | None = None) -> Connection:
    """Base URL, key and headers of ``endpoint`` from the environment (arguments override them).

    Raises:
        ProviderError: the key variable (or a ``${VAR}`` header) is not set (``error_type="auth"``).
    """
    url = base_url or endpoint.base_url or (os.environ.get(endpoint.base_url_env) if endpoint.base_url_env
                                            else None) or None
    key = api_key
    if key is None and endpoint.api_key_env is not None:
        key = os.environ.get(endpoint.api_key_env) or None
        if key is None:
            raise ProviderError(f"{endpoint.name}: no API key: set {endpoint.api_key_env}", error_type="auth",
                                provider=endpoint.name)
    headers = []
    for header, value in endpoint.headers.items():
        ref = ENV_REF.match(value)
        if ref:
            resolved = os.environ.get(ref.group(1))
            if not resolved:
                raise ProviderError(f"{endpoint.name}: header {header} needs {ref.group(1)}: set it",
                                    error_type="auth", provider=endpoint.name)
            value = resolved
        headers.append((header, value))
    return Connection(endpoint, url, key, tuple(headers))


__all__ = ["FILE_VAR", "JSON_VAR", "Connection", "connection", "endpoint_names", "endpoints", "get_endpoint"]
