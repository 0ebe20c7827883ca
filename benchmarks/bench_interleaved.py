"""Added p50 of gateways from several source trees against the floor, with sequential requests taking turns
(direct, floor, each gateway, again...), so a busy machine's drift hits all targets alike — the A/B
measure for a change to the hot path. Every tree's gateway must accept this tree's registry (same
migrations). Run::

    git worktree add /tmp/before <commit>
    .venv/bin/python benchmarks/bench_interleaved.py --requests 1000 before=/tmp/before after=.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_gateway as bench


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests per target")
    parser.add_argument("trees", nargs="+", help="NAME=PATH of a source tree (PYTHONPATH of its gateway)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cf-interleaved-"))
    sim_port, floor_port = bench.free_port(), bench.free_port()
    sim = f"http://127.0.0.1:{sim_port}"
    env = bench.bench_registry(tmp, sim)
    direct_body = {**bench.BODY, "model": "gpt-4o-mini"}
    key = {"authorization": "Bearer sk-bench"}
    targets = [("direct", f"{sim}/v1/chat/completions", direct_body, key),
               ("floor", f"http://127.0.0.1:{floor_port}/v1/chat/completions", direct_body, key)]
    with contextlib.ExitStack() as stack:
        stack.enter_context(bench.process([str(bench.CANARYFLOW), "sim", "--port", str(sim_port),
                                           "--latency-scale", "0"], env, tmp / "sim.log"))
        bench.wait_http(f"{sim}/healthz")
        stack.enter_context(bench.process(
            [sys.executable, str(bench.ROOT / "benchmarks" / "floor_proxy.py"), "--port", str(floor_port),
             "--upstream", sim], {"PYTHONPATH": str(bench.ROOT)}, tmp / "floor.log"))
        for spec in args.trees:
            name, _, tree = spec.partition("=")
            port = bench.free_port()
            stack.enter_context(bench.process(
                [str(bench.CANARYFLOW), "gateway", "--port", str(port), "--traffic-rate", "0.1"],
                {**env, "PYTHONPATH": str(Path(tree).resolve())}, tmp / f"{name}.log"))
            targets.append((name, f"http://127.0.0.1:{port}/v1/chat/completions",
                            {**bench.BODY, "model": "bench"}, {}))
        for _, url, _, _ in targets[1:]:
            bench.wait_http(url.replace("/v1/chat/completions", "/healthz"), timeout=180)
        load = os.getloadavg()[0]
        lats = asyncio.run(bench.interleaved_latency([t[1:] for t in targets], args.requests))
    p50 = {t[0]: bench.pct(lat, 0.5) for t, lat in zip(targets, lats, strict=True)}
    floor_added = p50["floor"] - p50["direct"]
    print(f"load {load:.2f} → {os.getloadavg()[0]:.2f}; p50 ms: "
          + ", ".join(f"{k} {v:.3f}" for k, v in p50.items()))
    for name, _, _, _ in targets[2:]:
        added = p50[name] - p50["direct"]
        print(f"  {name}: added p50 {added:.3f} ms, floor's {floor_added:.3f} ms, "
              f"gateway / floor = {added / floor_added:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
