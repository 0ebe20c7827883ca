"""The gateway's added latency and throughput, against the simulator directly, a bare forwarding proxy (the
floor) and the LiteLLM proxy.

Four targets answer the same OpenAI chat request — with a tool and a JSON-schema ``response_format`` in it —
all in front of one provider simulator (latency 0, so only the proxies' own cost shows):

* ``direct``  — the simulator itself;
* ``floor``   — ``benchmarks/floor_proxy.py``: uvicorn + the gateway's provider transport forwarding the
  bytes, no parsing, no metrics (what Python on this stack can do);
* ``gateway`` — ``canaryflow gateway`` (metrics on, traffic log on at ``--traffic-rate``);
* ``litellm`` — the LiteLLM proxy, from ``benchmarks/.venv-litellm`` (never a project dependency):
  ``python3 -m venv benchmarks/.venv-litellm && benchmarks/.venv-litellm/bin/pip install 'litellm[proxy]'``.

``--tracing`` adds the gateway with OpenTelemetry tracing on, sampled at 100 % and at 10 %
(``OTEL_TRACES_SAMPLER=parentbased_traceidratio``), exporting OTLP/HTTP to a sink process that accepts and
drops the spans — beside the gateway with tracing off, in the same run.

Latency: sequential requests on one keep-alive connection, p50/p99; "added" = target − direct.
Throughput: ``--concurrency`` requests in flight for ``--duration`` seconds. Each server is its own process
with one worker, and each proxy runs only while it is measured (the simulator throughout), so an idle
LiteLLM does not share the 2 cores with the gateway's run; the load generator is this process. Run::

    .venv/bin/python benchmarks/bench_gateway.py [--requests 500] [--duration 10] [--concurrency 32] \\
        [--tracing] [--no-litellm] [--readme]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from canaryflow.sim import http1

ROOT = Path(__file__).resolve().parent.parent
LITELLM = ROOT / "benchmarks" / ".venv-litellm" / "bin" / "litellm"
CANARYFLOW = Path(sys.executable).parent / "canaryflow"
BODY = {
    "messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 50,
    "tools": [{"type": "function", "function": {
        "name": "lookup_city", "description": "Facts about a city",
        "parameters": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}}],
    "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
        "additionalProperties": False}}},
}
MASTER_KEY = "sk-bench-" + "0123456789abcdef" * 2
# An OTLP/HTTP sink: answers every POST with an empty ExportTraceServiceResponse (spans dropped).
OTLP_SINK = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200); self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0"); self.end_headers()
    def do_GET(self):
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not come up")


@contextlib.contextmanager
def process(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


class Conn:
    """One keep-alive connection posting one body (:class:`canaryflow.sim.http1.Conn`): the load generator
    must cost less than what it measures (httpx's pool slows down sharply at high concurrency)."""

    def __init__(self, url: str, body: dict[str, object], headers: dict[str, str]) -> None:
        self.conn = http1.Conn(url, headers)
        self.raw = self.conn.request(body)

    async def post(self) -> int:
        return await self.conn.post(self.raw)

    def close(self) -> None:
        self.conn.close()


async def latency(url: str, body: dict[str, object], headers: dict[str, str], n: int) -> list[float]:
    conn = Conn(url, body, headers)
    out = []
    for i in range(max(20, n // 10) + n):  # warm-up first
        t = time.perf_counter()
        status = await conn.post()
        if status != 200:
            raise RuntimeError(f"{url} answered {status}")
        if i >= max(20, n // 10):
            out.append(time.perf_counter() - t)
    conn.close()
    return out


async def throughput(url: str, body: dict[str, object], headers: dict[str, str], duration: float,
                     concurrency: int) -> tuple[float, int]:
    ok = errors = 0
    stop = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal ok, errors
        conn = Conn(url, body, headers)
        while time.perf_counter() < stop:
            try:
                if await conn.post() == 200:
                    ok += 1
                else:
                    errors += 1
            except (OSError, ValueError, asyncio.IncompleteReadError):
                errors += 1
                conn.close()
        conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok / (time.perf_counter() - start), errors


async def interleaved_latency(targets: list[tuple[str, dict[str, object], dict[str, str]]], n: int
                              ) -> list[list[float]]:
    """Sequential requests taking turns between ``targets`` (one keep-alive connection each), so the
    machine's load drifts alike for all of them."""
    conns = [Conn(*t) for t in targets]
    out: list[list[float]] = [[] for _ in targets]
    warm = max(20, n // 10)
    for i in range(warm + n):
        for conn, samples in zip(conns, out, strict=True):
            t = time.perf_counter()
            if await conn.post() != 200:
                raise RuntimeError("a gateway answered an error")
            if i >= warm:
                samples.append(time.perf_counter() - t)
    for conn in conns:
        conn.close()
    return out


def interleaved_throughput(targets: list[tuple[str, dict[str, object], dict[str, str]]], duration: float,
                           concurrency: int, rounds: int = 5) -> list[tuple[float, int]]:
    """``duration`` seconds of load per target, cut in ``rounds`` slices taken in turn."""
    done = [(0.0, 0) for _ in targets]
    for r in range(rounds):
        order = list(range(len(targets)))
        order = order[r % len(order):] + order[:r % len(order)]
        for i in order:
            rps, errors = asyncio.run(throughput(*targets[i], duration / rounds, concurrency))
            done[i] = (done[i][0] + rps / rounds, done[i][1] + errors)
    return done


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


def ratios(results: dict[str, dict[str, float]]) -> list[str]:
    """The goals as ratios of one run: added p50 vs LiteLLM's and the floor's, throughput vs LiteLLM's."""
    if "gateway" not in results:
        return []
    base = results["direct"]["p50"]
    added = results["gateway"]["p50"] - base
    out = []
    if "litellm" in results:
        ll_added = results["litellm"]["p50"] - base
        out.append(f"- added p50: gateway / LiteLLM = {added / ll_added:.3f} (goal ≤ 0.1)")
        rps = results["gateway"]["rps"] / results["litellm"]["rps"]
        out.append(f"- throughput: gateway / LiteLLM = {rps:.1f}× (goal ≥ 10×)")
    if "floor" in results:
        fl_added = results["floor"]["p50"] - base
        out.append(f"- added p50: gateway / floor = {added / fl_added:.2f} (goal ≤ 2)" if fl_added > 0 else
                   "- added p50: the floor added nothing measurable")
        floor_rps = results["gateway"]["rps"] / results["floor"]["rps"]
        out.append(f"- throughput: gateway / floor = {floor_rps:.2f}×")
    return out


def bench_registry(tmp: Path, sim: str) -> dict[str, str]:
    """A registry in ``tmp`` holding the ``bench`` config; the gateway's environment for it and ``sim``."""
    from canaryflow.domain.config import ConfigSpec
    from canaryflow.registry import Registry

    db = f"sqlite:///{tmp / 'registry.db'}"
    registry = Registry(db)
    registry.push_config(ConfigSpec.model_validate({
        "key": "bench", "provider": "openai", "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "You are a benchmark assistant."}],
        "parameters": {"max_tokens": 100}}))
    registry.close()
    return {"OPENAI_BASE_URL": f"{sim}/v1", "OPENAI_API_KEY": "sk-bench", "CANARYFLOW_DB_URL": db}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="sequential requests per target (latency)")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds of load per target (throughput)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--traffic-rate", type=float, default=0.1, help="gateway traffic-log sampling rate")
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--tracing", action="store_true",
                        help="also the gateway with OpenTelemetry tracing sampled at 100%% and 10%%")
    parser.add_argument("--readme", action="store_true", help="append the table to benchmarks/README.md")
    args = parser.parse_args()

    load_before = f"{os.getloadavg()[0]:.2f}"
    tmp = Path(tempfile.mkdtemp(prefix="cf-bench-"))
    sim_port, gw_port, ll_port, floor_port = free_port(), free_port(), free_port(), free_port()
    sim = f"http://127.0.0.1:{sim_port}"
    env = bench_registry(tmp, sim)
    # name -> (url, body, headers, command, env, readiness URL); each proxy runs only while it is measured
    Target = tuple[str, dict[str, object], dict[str, str], list[str] | None, dict[str, str], str]
    targets: dict[str, Target] = {
        "direct": (f"{sim}/v1/chat/completions", {**BODY, "model": "gpt-4o-mini"},
                   {"authorization": "Bearer sk-bench"}, None, {}, f"{sim}/healthz"),
        "floor": (f"http://127.0.0.1:{floor_port}/v1/chat/completions", {**BODY, "model": "gpt-4o-mini"},
                  {"authorization": "Bearer sk-bench"},
                  [sys.executable, str(ROOT / "benchmarks" / "floor_proxy.py"), "--port", str(floor_port),
                   "--upstream", sim], {"PYTHONPATH": str(ROOT)}, f"http://127.0.0.1:{floor_port}/healthz"),
        "gateway": (f"http://127.0.0.1:{gw_port}/v1/chat/completions", {**BODY, "model": "bench"}, {},
                    [str(CANARYFLOW), "gateway", "--port", str(gw_port), "--traffic-rate",
                     str(args.traffic_rate)], env, f"http://127.0.0.1:{gw_port}/healthz"),
    }
    sink_port = free_port()
    if args.tracing:
        for label, ratio in (("gw+trace100", "1.0"), ("gw+trace10", "0.1")):
            port = free_port()
            targets[label] = (
                f"http://127.0.0.1:{port}/v1/chat/completions", {**BODY, "model": "bench"}, {},
                [str(CANARYFLOW), "gateway", "--port", str(port), "--traffic-rate", str(args.traffic_rate)],
                {**env, "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
                 "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": ratio},
                f"http://127.0.0.1:{port}/healthz")
    litellm_note = ""
    if args.no_litellm:
        litellm_note = "not run (--no-litellm)"
    elif not LITELLM.exists():
        litellm_note = f"not installed ({LITELLM.relative_to(ROOT)} missing)"
    else:
        cfg = tmp / "litellm.yaml"
        cfg.write_text("model_list:\n  - model_name: bench\n    litellm_params:\n"
                       f"      model: openai/gpt-4o-mini\n      api_base: {sim}/v1\n"
                       "      api_key: sk-bench\n")
        targets["litellm"] = (
            f"http://127.0.0.1:{ll_port}/v1/chat/completions", {**BODY, "model": "bench"},
            {"authorization": f"Bearer {MASTER_KEY}"},
            [str(LITELLM), "--config", str(cfg), "--port", str(ll_port), "--host", "127.0.0.1",
             "--num_workers", "1"],
            {"LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
             "LITELLM_LOG": "ERROR"},
            f"http://127.0.0.1:{ll_port}/health/liveliness")
    results: dict[str, dict[str, float]] = {}
    with contextlib.ExitStack() as sink, \
            process([str(CANARYFLOW), "sim", "--port", str(sim_port), "--latency-scale", "0"], env,
                    tmp / "sim.log"):
        if args.tracing:
            sink_cmd = [sys.executable, "-c", OTLP_SINK, str(sink_port)]
            sink.enter_context(process(sink_cmd, {}, tmp / "sink.log"))
            wait_http(f"http://127.0.0.1:{sink_port}/")
        wait_http(f"{sim}/healthz")
        if args.tracing:  # the three gateways run together and take turns (drift hits them alike)
            names = ["gateway", "gw+trace100", "gw+trace10"]
            with contextlib.ExitStack() as gateways:
                for name in names:
                    _, _, _, cmd, extra_env, ready = targets[name]
                    assert cmd is not None
                    gateways.enter_context(process(cmd, extra_env, tmp / f"{name}.log"))
                for name in names:
                    wait_http(targets[name][5], timeout=180)
                trio = [(targets[n][0], targets[n][1], targets[n][2]) for n in names]
                lats = asyncio.run(interleaved_latency(trio, args.requests))
                loads = interleaved_throughput(trio, args.duration, args.concurrency)
            for name, lat, (rps, errors) in zip(names, lats, loads, strict=True):
                results[name] = {"p50": pct(lat, 0.5), "p99": pct(lat, 0.99),
                                 "mean": statistics.mean(lat) * 1000, "rps": rps, "errors": errors}
            targets = {k: v for k, v in targets.items() if k not in names}
        for name, (url, body, headers, cmd, extra_env, ready) in targets.items():
            with contextlib.ExitStack() as stack:
                if cmd is not None:
                    stack.enter_context(process(cmd, extra_env, tmp / f"{name}.log"))
                    try:
                        wait_http(ready, timeout=180)
                    except TimeoutError:
                        litellm_note = f"did not start (see {tmp / f'{name}.log'})"
                        continue
                lat = asyncio.run(latency(url, body, headers, args.requests))
                rps, errors = asyncio.run(throughput(url, body, headers, args.duration, args.concurrency))
            results[name] = {"p50": pct(lat, 0.5), "p99": pct(lat, 0.99),
                             "mean": statistics.mean(lat) * 1000, "rps": rps, "errors": errors}
    shutil.rmtree(tmp, ignore_errors=True)

    order = ["direct", "floor", "gateway", "gw+trace100", "gw+trace10", "litellm"]
    results = {k: results[k] for k in sorted(results, key=order.index)}
    for name, r in results.items():
        print(f"{name:11} p50 {r['p50']:.2f} ms  p99 {r['p99']:.2f} ms  {r['rps']:.0f} req/s "
              f"({r['errors']:.0f} errors)", flush=True)
    base = results["direct"]
    lines = [
        f"### bench_gateway.py — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
        "",
        f"`.venv/bin/python benchmarks/bench_gateway.py --requests {args.requests} "
        f"--duration {args.duration:g} "
        f"--concurrency {args.concurrency} --traffic-rate {args.traffic_rate:g}"
        f"{' --tracing' if args.tracing else ''}{' --no-litellm' if args.no_litellm else ''}` — "
        "simulator latency 0; "
        f"gateway with metrics and traffic log ({args.traffic_rate:g} sampled) on; load average before the "
        f"run {load_before}, after {os.getloadavg()[0]:.2f}.",
        "",
        "| target | p50 ms | p99 ms | added p50 ms | added p99 ms | throughput req/s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        added = ("—", "—") if name == "direct" else (f"{r['p50'] - base['p50']:.2f}",
                                                   f"{r['p99'] - base['p99']:.2f}")
        lines.append(f"| {name} | {r['p50']:.2f} | {r['p99']:.2f} | {added[0]} | {added[1]} "
                     f"| {r['rps']:.0f} |")
    if litellm_note:
        lines.append(f"| litellm | {litellm_note} | | | | |")
    off = results.get("gateway")
    for label in ("gw+trace100", "gw+trace10"):
        on = results.get(label)
        if off is not None and on is not None:
            lines += ["", f"Tracing sampled at {label.removeprefix('gw+trace')} % vs off: "
                          f"p50 {on['p50'] - off['p50']:+.2f} ms, p99 {on['p99'] - off['p99']:+.2f} ms, "
                          f"throughput {on['rps'] / off['rps']:.2f}× off."]
    lines += ["", *ratios(results)]
    table = "\n".join(lines)
    print("\n" + table)
    if args.readme:
        with open(ROOT / "benchmarks" / "README.md", "a") as f:
            f.write("\n" + table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
