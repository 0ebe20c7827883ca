"""Online evaluators: their cost on the gateway's hot path, and the background worker's throughput.

1. **Hot path.** One ``canaryflow gateway`` process (traffic log at 10 %) in front of the provider simulator
   (latency 0) serves three configs that differ only in their evaluators: ``eval-off`` (none), ``eval-10``
   (five deterministic evaluators sampling 10 % of answers) and ``eval-100`` (the same at 100 %, the worst
   case). Sequential requests take turns between the simulator itself and the three configs on one
   keep-alive connection each (drift hits them alike); "added" = config − direct, p50 and p99.
2. **Worker throughput.** In this process: :class:`~canaryflow.serving.evaluation.OnlineEvaluation` scores a
   queue of answers (five deterministic evaluators each, JSON answers matching the schema), exported to
   Prometheus instruments, without and with storing the results in a SQLite registry — scores per second.

Run::

    .venv/bin/python benchmarks/bench_evaluators.py [--requests 1000] [--jobs 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gateway import BODY, CANARYFLOW, free_port, interleaved_latency, pct, process, wait_http

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
          "additionalProperties": False}


def evaluators(sample: float) -> list[dict[str, Any]]:
    """Five deterministic evaluators at ``sample``."""
    return [{"name": "json_ok", "kind": "valid_json", "sample": sample},
            {"name": "schema", "kind": "match_schema", "sample": sample},
            {"name": "short", "kind": "length", "max": 800, "sample": sample},
            {"name": "has_city", "kind": "contains", "values": ["city"], "sample": sample},
            {"name": "no_refusal", "kind": "refusal", "sample": sample}]


def config(key: str, evals: list[dict[str, Any]] | None) -> Any:
    from canaryflow.domain.config import ConfigSpec

    body: dict[str, Any] = {"key": key, "provider": "openai", "model": "gpt-4o-mini",
                            "messages": [{"role": "system", "content": "You are a benchmark assistant."}],
                            "parameters": {"max_tokens": 100},
                            "response_format": {"type": "json_schema", "name": "answer", "schema": SCHEMA}}
    if evals:
        body["evaluators"] = evals
    return ConfigSpec.model_validate(body)


def hot_path(n: int, tmp: Path) -> dict[str, tuple[float, float]]:
    from canaryflow.registry import Registry

    db = f"sqlite:///{tmp / 'registry.db'}"
    registry = Registry(db)
    for key, evals in (("eval-off", None), ("eval-10", evaluators(0.1)), ("eval-100", evaluators(1.0))):
        registry.push_config(config(key, evals))
    registry.close()
    sim_port, gw_port = free_port(), free_port()
    sim, gw = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{gw_port}"
    env = {"OPENAI_BASE_URL": f"{sim}/v1", "OPENAI_API_KEY": "sk-bench", "CANARYFLOW_DB_URL": db}
    names = ["direct", "eval-off", "eval-10", "eval-100"]
    direct = (f"{sim}/v1/chat/completions", {**BODY, "model": "gpt-4o-mini"},
              {"authorization": "Bearer sk-bench"})
    targets: list[tuple[str, dict[str, object], dict[str, str]]] = [direct]
    targets += [(f"{gw}/v1/chat/completions", {**BODY, "model": key}, {}) for key in names[1:]]
    with process([str(CANARYFLOW), "sim", "--port", str(sim_port), "--latency-scale", "0"], env,
                 tmp / "sim.log"), \
            process([str(CANARYFLOW), "gateway", "--port", str(gw_port), "--traffic-rate", "0.1"], env,
                    tmp / "gateway.log"):
        wait_http(f"{sim}/healthz")
        wait_http(f"{gw}/healthz", timeout=180)
        samples = asyncio.run(interleaved_latency(targets, n))
    return {name: (pct(s, 0.5), pct(s, 0.99)) for name, s in zip(names, samples, strict=True)}


async def worker_throughput(jobs: int, registry: Any) -> tuple[float, int]:
    from canaryflow.domain.resolution import CompiledConfig
    from canaryflow.domain.serving import ServingState
    from canaryflow.metrics.instruments import Metrics
    from canaryflow.providers.base import ChatResult
    from canaryflow.serving.evaluation import OnlineEvaluation

    spec = config("bench", evaluators(1.0))
    compiled = CompiledConfig(ServingState(config_key="bench", stable_version=1), {1: spec}, [])
    ev = OnlineEvaluation(Metrics(), registry=registry, max_queue=jobs + 1, concurrency=1, flush_rows=500)
    ev.prepare(compiled)
    res = compiled.resolve({"key": "u"}, {})
    answer = ChatResult('{"city": "Paris"}', "stop", 10, 5, 0, "openai", "gpt-4o-mini", None)
    caller = [{"role": "user", "content": "What is the capital of France?"}]
    ev.offer(res, "warm-up", answer, caller)
    await ev.drain()
    before = ev.stats.scores
    start = time.perf_counter()
    for i in range(jobs):
        ev.offer(res, f"req-{i}", answer, caller)
    await ev.drain(timeout=600)
    elapsed = time.perf_counter() - start
    await ev.close()
    scored = ev.stats.scores - before
    return scored / elapsed, scored


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests per target")
    parser.add_argument("--jobs", type=int, default=5000, help="answers the worker scores")
    args = parser.parse_args()
    load = f"{os.getloadavg()[0]:.2f}"
    tmp = Path(tempfile.mkdtemp(prefix="cf-bench-eval-"))
    latencies = hot_path(args.requests, tmp)
    from canaryflow.registry import Registry

    exported, n = asyncio.run(worker_throughput(args.jobs, None))
    registry = Registry(f"sqlite:///{tmp / 'scores.db'}")
    with contextlib.closing(registry):
        stored, m = asyncio.run(worker_throughput(args.jobs, registry))
    direct = latencies["direct"]
    print(f"load average before: {load}; {args.requests} sequential requests per target, taking turns")
    print(f"{'target':<10} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} {'added p99':>10}")
    for name, (p50, p99) in latencies.items():
        added = "" if name == "direct" else f"{p50 - direct[0]:>10.3f} {p99 - direct[1]:>10.3f}"
        print(f"{name:<10} {p50:>8.3f} {p99:>8.3f} {added}")
    off = latencies["eval-off"][0] - direct[0]
    ten = latencies["eval-10"][0] - direct[0]
    print(f"added p50 with sampling at 10 %: {ten:.3f} ms vs off {off:.3f} ms ({ten - off:+.3f} ms)")
    print(f"worker: {exported:,.0f} scores/s exported only ({n} scores), {stored:,.0f} scores/s "
          f"exported and stored in SQLite ({m} scores); five deterministic evaluators per answer")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
