"""canaryflow: durable, metric-gated rollouts of AI configurations on Temporal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.resolution import Resolution
from canaryflow.domain.segments import Segment
from canaryflow.errors import CanaryflowError

if TYPE_CHECKING:
    from canaryflow.serving.client import AsyncClient, Client

__version__ = "0.1.0"

__all__ = ["AsyncClient", "CanaryflowError", "Client", "ConfigSpec", "Resolution", "Segment", "__version__"]


def __getattr__(name: str) -> Any:
    """``canaryflow.Client`` / ``AsyncClient`` load the registry stack on first use only, so importing the
    pure domain (e.g. inside Temporal's workflow sandbox) stays light."""
    if name in ("Client", "AsyncClient"):
        from canaryflow.serving import client

        return getattr(client, name)
    raise AttributeError(f"module 'canaryflow' has no attribute {name!r}")
