"""The floor for bench_gateway.py: a bare forwarding proxy on the gateway's stack, and nothing else.

uvicorn (uvloop, httptools, no access log — as ``canaryflow gateway``) and the same provider transport
(:class:`canaryflow.providers.transport.LeanTransport` under ``httpx2``), but no JSON parsing, no config, no
metrics: the request body is sent to ``--upstream`` + the path as it came, and the answer's bytes come back.
What the gateway adds beyond this is what canaryflow itself costs. Run::

    .venv/bin/python benchmarks/floor_proxy.py --port 8099 --upstream http://127.0.0.1:8091
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import httpx2

from canaryflow.providers.transport import LeanTransport


def floor_app(upstream: str) -> Any:
    """The ASGI app forwarding every POST to ``upstream``."""
    client = httpx2.AsyncClient(transport=LeanTransport(), timeout=60.0)
    base = upstream.rstrip("/")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]
                   if k.lower() in (b"content-type", b"authorization")}
        answer = await client.post(base + scope["path"], content=body, headers=headers)
        await send({"type": "http.response.start", "status": answer.status_code,
                    "headers": [(b"content-type", answer.headers.get("content-type", "").encode()),
                                (b"content-length", str(len(answer.content)).encode())]})
        await send({"type": "http.response.body", "body": answer.content})

    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    import uvicorn

    uvicorn.run(floor_app(args.upstream), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False, loop="uvloop", http="httptools", timeout_keep_alive=75)
    return 0


if __name__ == "__main__":
    sys.exit(main())
