"""How fast ``Client.resolve`` answers from its warm cache, and what a cache refresh costs.

Run: ``.venv/bin/python benchmarks/bench_resolve.py`` (or ``make bench``). Uses a throwaway SQLite registry
with the example configs and segments. Prints one row per scenario: median ns per resolve over batches of
calls, and operations per second.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from canaryflow.domain.serving import Exposure  # noqa: E402
from canaryflow.files import load_configs, load_segments  # noqa: E402
from canaryflow.registry import Registry  # noqa: E402
from canaryflow.serving import Client  # noqa: E402

BATCH = 20_000
ROUNDS = 15
VARS = {"product": "Acme"}


def timed(fn: Callable[[int], object], batch: int = BATCH, rounds: int = ROUNDS) -> tuple[float, float]:
    """Medians over ``rounds`` of (wall time, thread CPU time) of ``batch`` calls / batch, in ns.

    CPU time leaves out the time the OS gave other processes, so it is steadier on a busy machine.
    """
    fn(0)
    wall, cpu = [], []
    for _ in range(rounds):
        start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        for i in range(batch):
            fn(i)
        cpu.append((time.thread_time_ns() - start_cpu) / batch)
        wall.append((time.perf_counter_ns() - start) / batch)
    return statistics.median(wall), statistics.median(cpu)


def per_call_ns(fn: Callable[[int], object], batch: int = BATCH, rounds: int = ROUNDS) -> float:
    """Median wall time per call, in ns."""
    return timed(fn, batch, rounds)[0]


def setup(db: Path) -> Registry:
    reg = Registry(f"sqlite:///{db}")
    for spec in load_configs(sorted((ROOT / "examples").glob("support-bot.v*.yaml"))):
        reg.push_config(spec, author="bench")
    for i, spec in enumerate(load_configs(sorted((ROOT / "examples").glob("support-bot.v*.yaml")))):
        reg.push_config(spec.model_copy(update={"key": f"bot-{i}"}), author="bench")
    reg.push_segments(load_segments(ROOT / "examples" / "segments.yaml"), by="bench")
    reg.apply_exposure("bot-1", Exposure(candidate_version=1, stage="x", stage_kind="none"), by="bench",
                       reason="", source="bench")
    return reg


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        reg = setup(Path(tmp) / "bench.db")
        client = Client(reg, refresh_interval=0.5)
        users = [{"key": f"user-{i}", "attributes": {"email": f"u{i}@example.com", "plan": "pro"}}
                 for i in range(4096)]
        internal = {"key": "emp-1", "attributes": {"email": "emp@acme.com", "beta": False}}
        rows: list[tuple[str, float, float]] = []

        def bench(name: str, fn: Callable[[int], object]) -> None:
            rows.append((name, *timed(fn)))

        resolve = client.resolve
        bench("stable (no rollout), 2 segments, 4096 users",
              lambda i: resolve("support-bot", users[i & 4095], VARS))
        canary = Exposure(candidate_version=2, stage="canary-10", stage_kind="percent", percent=10, salt="s1")
        reg.apply_exposure("support-bot", canary, by="bench", reason="", source="bench")
        client.refresh(force=True)
        bench("percent rollout 10 %, 4096 distinct users",
              lambda i: resolve("support-bot", users[i & 4095], VARS))
        internal_stage = Exposure(candidate_version=2, stage="internal", stage_kind="segments",
                                  segments=["internal"])
        reg.apply_exposure("support-bot", internal_stage, by="bench", reason="", source="bench")
        client.refresh(force=True)
        bench("segments stage, matching user (internal)", lambda i: resolve("support-bot", internal, VARS))
        bench("segments stage, non-matching user", lambda i: resolve("support-bot", users[i & 4095], VARS))
        bench("bare context {'key': ...} without attributes",
              lambda i: resolve("support-bot", {"key": "u"}, VARS))

        check = per_call_ns(lambda i: client.refresh(force=True), batch=50, rounds=9)
        state = {"n": 0}

        def changed(i: int) -> None:
            state["n"] += 1
            reg.pin("support-bot", "beta", 1 + state["n"] % 2, by="bench", reason="", source="bench")
            client.refresh(force=True)

        change = per_call_ns(changed, batch=10, rounds=5)
        pin_only = per_call_ns(lambda i: reg.pin("support-bot", "beta", 1 + i % 2, by="bench", reason="",
                                                 source="bench"), batch=10, rounds=5)
        client.close()

    print(f"Python {sys.version.split()[0]}, batches of {BATCH} calls, median of {ROUNDS} rounds")
    print(f"{'scenario':58} {'median ns':>10} {'ops/s':>12} {'CPU ns':>8}")
    for name, ns, cpu_ns in rows:
        print(f"{name:58} {ns:10.0f} {1e9 / ns:12,.0f} {cpu_ns:8.0f}")
    print(f"{'cache refresh, nothing changed (one revisions() query)':58} {check / 1000:8.0f}µs")
    print(f"{'cache refresh after a change (query + snapshot + compile)':58} "
          f"{max(change - pin_only, 0) / 1000:8.0f}µs")


if __name__ == "__main__":
    main()
