"""The gateway's own work per request, in-process, against the floor's: Python opcodes (deterministic) and
main-thread CPU time, with the provider's answer canned so no network or other process is measured.

Both apps get the benchmark's request (a tool and a JSON-schema ``response_format``); the provider transport
(:class:`canaryflow.providers.transport.LeanTransport`, used by both) returns the simulator's real answer to
that request, captured once. ``--ops`` counts opcodes executed per request (``sys.settrace``), per file with
``--files``; without it, median and min thread CPU µs per request over rounds. Run::

    .venv/bin/python benchmarks/bench_hotpath.py --ops --files
    .venv/bin/python benchmarks/bench_hotpath.py --requests 1000
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_gateway as bench
from floor_proxy import floor_app

from canaryflow.domain.config import ConfigSpec
from canaryflow.providers import transport
from canaryflow.registry import Registry

SYSTEM = "You are a benchmark assistant."


async def _call(app: Any, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    sent: list[dict[str, Any]] = []
    done = False

    async def receive() -> dict[str, Any]:
        nonlocal done
        if done:
            await asyncio.sleep(3600)
        done = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
             "query_string": b"", "root_path": "", "headers": headers, "client": ("127.0.0.1", 5000),
             "server": ("127.0.0.1", 8000)}
    await app(scope, receive, send)
    if sent[0]["status"] != 200:
        raise RuntimeError(f"answered {sent}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per timing round")
    parser.add_argument("--ops", action="store_true", help="count opcodes per request instead of timing")
    parser.add_argument("--files", action="store_true", help="with --ops: per file")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cf-hotpath-"))
    port = bench.free_port()
    sim = f"http://127.0.0.1:{port}"
    db = f"sqlite:///{tmp / 'registry.db'}"
    registry = Registry(db)
    registry.push_config(ConfigSpec.model_validate({
        "key": "bench", "provider": "openai", "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": SYSTEM}], "parameters": {"max_tokens": 100}}))
    registry.close()
    env = {"OPENAI_BASE_URL": f"{sim}/v1", "OPENAI_API_KEY": "sk-bench", "CANARYFLOW_DB_URL": db}
    os.environ.update(env)
    with bench.process([str(bench.CANARYFLOW), "sim", "--port", str(port), "--latency-scale", "0"], env,
                       tmp / "sim.log"):
        bench.wait_http(f"{sim}/healthz")
        caller_messages: list[Any] = bench.BODY["messages"]  # type: ignore[assignment]
        sent = {**bench.BODY, "model": "gpt-4o-mini",
                "messages": [{"role": "system", "content": SYSTEM}, *caller_messages]}
        answer = httpx.post(f"{sim}/v1/chat/completions", json=sent,
                            headers={"authorization": "Bearer sk-bench"})
    canned, canned_headers = answer.content, [(k.encode(), v.encode()) for k, v in answer.headers.items()]

    async def canned_answer(self: Any, request: httpx2.Request) -> httpx2.Response:
        await request.aread()
        return httpx2.Response(200, headers=canned_headers, content=canned, request=request)

    transport.LeanTransport.handle_async_request = canned_answer  # type: ignore[method-assign]
    from canaryflow.gateway.auth import protect
    from canaryflow.gateway.server import build_gateway

    gateway, _ = build_gateway(db, traffic_rate=0.1)
    floor_body = json.dumps({**bench.BODY, "model": "gpt-4o-mini"}).encode()
    gw_body = json.dumps({**bench.BODY, "model": "bench"}).encode()
    common = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")]
    apps = {
        "floor": (floor_app(sim), floor_body, [*common, (b"authorization", b"Bearer sk-bench"),
                                               (b"content-length", str(len(floor_body)).encode())]),
        "gateway": (protect(gateway, "127.0.0.1"), gw_body,
                    [*common, (b"content-length", str(len(gw_body)).encode())]),
    }

    async def run() -> None:
        for app in apps.values():
            for _ in range(300):  # warm: caches, series, connections
                await _call(*app)
        if args.ops:
            for name, app in apps.items():
                per: collections.Counter[str] = collections.Counter()

                def line(frame: FrameType, event: str, arg: Any,
                         per: collections.Counter[str] = per) -> Any:
                    if event == "opcode":
                        path = frame.f_code.co_filename
                        per[path.split("site-packages/")[-1].split("python3.11/")[-1]] += 1
                    return line  # (the tracer of this frame's later events)

                def call(frame: FrameType, event: str, arg: Any) -> Any:
                    frame.f_trace_opcodes = True
                    return line

                n = 200
                sys.settrace(call)
                for _ in range(n):
                    await _call(*app)
                sys.settrace(None)
                print(f"{name:8} {sum(per.values()) / n:8.0f} opcodes per request")
                if args.files:
                    for path, count in per.most_common(25):
                        print(f"   {count / n:7.0f} {path.replace(str(bench.ROOT) + '/', '')}")
            return
        rounds: dict[str, list[float]] = {name: [] for name in apps}
        for _ in range(7):
            for name, app in apps.items():
                started = time.thread_time()
                for _ in range(args.requests):
                    await _call(*app)
                rounds[name].append((time.thread_time() - started) / args.requests * 1e6)
        for name, values in rounds.items():
            print(f"{name:8} thread CPU per request: median {statistics.median(values):6.1f} µs, "
                  f"min {min(values):6.1f} µs")

    import uvloop

    uvloop.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
