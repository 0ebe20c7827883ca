"""Settings from the environment (prefix ``CANARYFLOW_``), e.g. ``CANARYFLOW_DB_URL``.

Read fresh on every :func:`get_settings` call (cheap), never cached at import time, so tests and
commands that set environment variables see them.
"""

from __future__ import annotations

from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where canaryflow finds its database, Temporal, Prometheus and local ports."""

    model_config = SettingsConfigDict(env_prefix="CANARYFLOW_", extra="ignore")

    db_url: str = "sqlite:///canaryflow.db"
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "canaryflow"
    temporal_tls: bool = False
    prometheus_url: str = "http://localhost:9090"
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    sim_port: int = 8091
    temporal_ui_port: int = 8233
    gateway_keys_file: str = ".canaryflow/gateway-keys.json"
    gateway_allow_anonymous: bool = False
    feedback_window_s: float = 86400.0
    """Seconds after a request was served during which feedback on it is accepted (or replaced); later
    feedback is refused with 409 (``CANARYFLOW_FEEDBACK_WINDOW_S``)."""
    providers_file: str | None = None
    """Named provider endpoints (YAML, docs/providers.md); read by :mod:`canaryflow.providers.endpoints`."""
    providers: list[dict[str, Any]] | None = None
    """The same endpoints as a JSON list in ``CANARYFLOW_PROVIDERS`` (merged over the file's)."""


def get_settings() -> Settings:
    """The current settings, read from the environment now."""
    return Settings()


__all__ = ["Settings", "get_settings"]
