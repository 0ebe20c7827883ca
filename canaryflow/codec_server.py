"""The codec server for the Temporal UI: ``POST /encode`` and ``POST /decode`` of ``{"payloads": [...]}``.

It holds the payload key (``CANARYFLOW_PAYLOAD_KEY``) so people with access to it can read encrypted
rollout histories in the UI; answers CORS preflights for the UI's origin only. Run it where only operators
reach it (loopback, or behind the same SSO as the UI).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payloads

from canaryflow.errors import CanaryflowError
from canaryflow.temporal_codec import AesGcmCodec


def build_codec_app(key: bytes, ui_origins: list[str]) -> Starlette:
    """The codec server app for ``key``, allowing browser calls from ``ui_origins``."""
    codec = AesGcmCodec(key)

    def cors(request: Request) -> dict[str, str]:
        origin = request.headers.get("origin", "")
        if origin not in ui_origins:
            return {}
        return {"access-control-allow-origin": origin, "access-control-allow-methods": "POST, OPTIONS",
                "access-control-allow-headers": "content-type, x-namespace, authorization",
                "access-control-allow-credentials": "true", "vary": "Origin"}

    def handler(encode: bool) -> Any:
        async def endpoint(request: Request) -> Response:
            headers = cors(request)
            if request.method == "OPTIONS":
                return Response(status_code=204, headers=headers)
            try:
                payloads = json_format.Parse(await request.body(), Payloads(), ignore_unknown_fields=True)
                done = await (codec.encode if encode else codec.decode)(payloads.payloads)
            except json_format.ParseError:
                return JSONResponse({"error": "body must be {\"payloads\": [...]} in protobuf JSON"},
                                    status_code=400, headers=headers)
            except CanaryflowError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400, headers=headers)
            return JSONResponse(json_format.MessageToDict(Payloads(payloads=done)), headers=headers)
        return endpoint

    return Starlette(routes=[Route("/encode", handler(True), methods=["POST", "OPTIONS"]),
                             Route("/decode", handler(False), methods=["POST", "OPTIONS"])])


__all__ = ["build_codec_app"]
