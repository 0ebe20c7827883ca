"""One provider call from the official ``openai`` client to the simulator, by transport and call style.

Sequential p50/mean of: the default client (httpx's transport) with ``chat.completions.create``, the same
through :class:`canaryflow.providers.transport.LeanTransport`, ``with_raw_response.create``, the client's
``post`` with the JSON read as is (what ``OpenAIProvider.complete`` does) and a bare ``httpx2`` POST; the
simulator alone is the floor (see ``direct`` in ``bench_gateway.py``). Run::

    .venv/bin/python benchmarks/bench_provider_call.py [--requests 1500]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx2
import openai

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gateway import CANARYFLOW, free_port, wait_http

from canaryflow.providers.transport import LeanTransport

MESSAGES = [{"role": "system", "content": "You are a benchmark assistant."},
            {"role": "user", "content": "What is the capital of France?"}]
BODY = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_completion_tokens": 100}


async def measure(name: str, call: Callable[[], Awaitable[None]], n: int) -> None:
    for _ in range(max(50, n // 10)):
        await call()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    times.sort()
    print(f"{name:46} p50 {times[len(times) // 2] * 1e3:.3f} ms  mean {statistics.mean(times) * 1e3:.3f} ms",
          flush=True)


def calls(client: openai.AsyncOpenAI, http: httpx2.AsyncClient, url: str
          ) -> dict[str, Callable[[], Awaitable[None]]]:
    async def create() -> None:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,  # type: ignore[arg-type]
                                             max_completion_tokens=100, timeout=60)

    async def raw() -> None:
        resp = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES, max_completion_tokens=100, timeout=60)  # type: ignore[arg-type]
        json.loads(resp.content)

    async def post() -> None:
        resp = await client.post("/chat/completions", body=BODY, cast_to=httpx2.Response,
                                 options={"timeout": 60})
        json.loads(resp.content)

    async def bare() -> None:
        resp = await http.post(f"{url}/chat/completions", json=BODY, headers={"authorization": "Bearer sk-b"})
        resp.json()

    return {"chat.completions.create": create, "with_raw_response.create": raw, "client.post + json": post,
            "bare httpx2 POST": bare}


async def run(url: str, n: int) -> None:
    default_http = httpx2.AsyncClient(timeout=60)
    default = openai.AsyncOpenAI(api_key="sk-b", base_url=url, max_retries=0)
    for name, call in calls(default, default_http, url).items():
        await measure(f"default transport: {name}", call, n)
    lean_http = httpx2.AsyncClient(transport=LeanTransport(), timeout=60)
    lean = openai.AsyncOpenAI(api_key="sk-b", base_url=url, max_retries=0, http_client=lean_http)
    for name, call in calls(lean, lean_http, url).items():
        await measure(f"LeanTransport: {name}", call, n)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500)
    args = parser.parse_args()
    port = free_port()
    sim = subprocess.Popen([str(CANARYFLOW), "sim", "--port", str(port), "--latency-scale", "0"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        import uvloop

        uvloop.run(run(f"http://127.0.0.1:{port}/v1", args.requests))
    finally:
        sim.terminate()
        sim.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
