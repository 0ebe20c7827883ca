"""The SDK: :class:`Client` / :class:`AsyncClient` resolve configs from a cache of the registry."""

from canaryflow.serving.client import AsyncClient, Client

__all__ = ["AsyncClient", "Client"]
