"""The simulator's own cost per request: CPU time of validate + plan + write in process (steady under a
loaded machine), then HTTP p50 sequential on one keep-alive connection (latency 0; noisy when loaded).

Bodies: a plain chat request, the same with a tool and a JSON-schema response format (validated as the
real API does, a tool call generated from the schema), an Anthropic message, a Responses request::

    .venv/bin/python benchmarks/bench_sim.py [--requests 2000] [--no-http] [--tree PATH]

``--tree`` measures the simulator of another checkout (``git worktree add /tmp/before fd12da0``: the
simulator before request validation and tools existed; only the plain chat row applies to it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if "--tree" in sys.argv:
    ROOT = Path(sys.argv[sys.argv.index("--tree") + 1]).resolve()
sys.path.insert(0, str(ROOT))
from canaryflow.sim.server import pick_port  # noqa: E402

ORDER = {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}
ASK = [{"role": "system", "content": "You are a benchmark assistant."},
       {"role": "user", "content": "What is the capital of France?"}]
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "chat (plain)": ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": ASK, "max_tokens": 100}),
    "chat + tool + json_schema": ("/v1/chat/completions", {
        "model": "gpt-4o-mini", "messages": ASK, "max_tokens": 100,
        "tools": [{"type": "function", "function": {"name": "lookup_order", "parameters": ORDER}}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": ORDER}}}),
    "messages (plain)": ("/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 100,
                                          "messages": ASK[1:], "system": ASK[0]["content"]}),
    "responses (plain)": ("/v1/responses", {"model": "gpt-4o-mini", "input": ASK[1]["content"]}),
}


def _before(n: int) -> None:
    """The simulator before validation and tools: parse the messages, plan, write (plain chat only)."""
    import importlib
    import json

    from canaryflow.sim.engine import Simulator

    openai_messages = importlib.import_module("canaryflow.providers.translate").openai_messages
    openai_completion = importlib.import_module("canaryflow.providers.wire").openai_completion
    _result = importlib.import_module("canaryflow.sim.app")._result

    sim = Simulator(seed=1, latency_scale=0)
    body = CASES["chat (plain)"][1]

    def once() -> str:
        messages = openai_messages(body)
        out = sim.plan(body["model"], messages, body["max_tokens"])
        return str(json.dumps(openai_completion(_result(out, body["model"], "openai"), response_id="id")))

    for _ in range(500):
        once()
    started = time.process_time()
    for _ in range(n):
        once()
    print(f"{'chat (plain), before':28} {(time.process_time() - started) / n * 1e6:52.1f}")


def in_process(n: int) -> None:
    """CPU µs per request of the simulator's own work (no HTTP)."""
    import json

    from canaryflow.sim.engine import Simulator

    try:
        from canaryflow.sim import wire
        from canaryflow.sim.requests import SimRequest, parse_chat, parse_messages, parse_responses
    except ImportError:
        _before(n)
        return
    sim = Simulator(seed=1, latency_scale=0)
    parsers = {"/v1/chat/completions": parse_chat, "/v1/messages": parse_messages,
               "/v1/responses": parse_responses}
    print(f"{'request':28} {'CPU µs/request (validate + plan + write, in process)':>52}")
    for name, (path, body) in CASES.items():
        parse = parsers[path]

        def once(parse: Callable[[Any], SimRequest] = parse, body: dict[str, Any] = body) -> str:
            req = parse(body)
            out = sim.plan(req.model, req.texts, req.max_tokens, request=req)
            if req.api == "chat":
                return json.dumps(wire.chat_completion(out, req.model, "id"))
            if req.api == "messages":
                return json.dumps(wire.anthropic_message(out, req.model, "id"))
            return json.dumps(wire.response_object(out, req.model, "id", req.echo))

        for _ in range(500):
            once()
        started = time.process_time()
        for _ in range(n):
            once()
        print(f"{name:28} {(time.process_time() - started) / n * 1e6:52.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--no-http", action="store_true", help="only the in-process CPU table")
    parser.add_argument("--tree", help="measure the simulator of this checkout instead")
    args = parser.parse_args()
    in_process(args.requests * 10)
    if args.no_http:
        return 0
    port = pick_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", "from canaryflow.cli import main; main()", "sim",
                             "--port", str(port), "--latency-scale", "0"], env=env, stdout=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10,
                          headers={"authorization": "Bearer k", "x-api-key": "k"}) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.get("/healthz")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit("the simulator did not start") from None
                    time.sleep(0.1)
            print(f"{'request':28} {'p50 ms':>8} {'mean ms':>8}   ({args.requests} sequential, load "
                  f"{os.getloadavg()[0]:.2f})")
            for name, (path, body) in CASES.items():
                for _ in range(200):
                    client.post(path, json=body)
                times = []
                for _ in range(args.requests):
                    started = time.perf_counter()
                    r = client.post(path, json=body)
                    times.append((time.perf_counter() - started) * 1000)
                    if r.status_code != 200:
                        print(f"{name}: HTTP {r.status_code} {r.text[:200]}")
                        break
                print(f"{name:28} {statistics.median(times):8.3f} {statistics.fmean(times):8.3f}")
    finally:
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
