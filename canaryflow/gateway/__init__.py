"""The OpenAI- and Anthropic-compatible gateway (`canaryflow gateway`), an ASGI app over the traffic plane."""

from canaryflow.gateway.app import build_app
from canaryflow.gateway.server import build_gateway, serve

__all__ = ["build_app", "build_gateway", "serve"]
