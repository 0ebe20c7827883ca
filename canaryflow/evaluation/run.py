"""Systematic evaluation: replay recorded traffic or a dataset against several versions, side by side.

The work is split so a Temporal workflow can drive it chunk by chunk (ids and numbers in its history, no
text): :func:`prepare` fixes the items (sampled traffic-log ids, or a dataset's row count), :func:`run_chunk`
replays items ``[start, end)`` against every version and returns per-version numbers, and
:func:`run_local` does the same loop in-process (``canaryflow eval --local``).

Dataset files are JSON Lines, one item per line::

    {"input": "What is the capital of France?", "expected": "Paris"}
    {"messages": [{"role": "user", "content": "..."}], "expected": "{\"a\": 1}", "variables": {"p": "X"}}
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canaryflow.domain.evaluation import VersionStats
from canaryflow.errors import NotFound, ValidationFailed
from canaryflow.evaluation.models import EvalChunk, EvalInput, EvalPlan, EvalResult, merge
from canaryflow.evaluation.replay import Pacer, call_version
from canaryflow.registry import Registry
from canaryflow.registry import traffic as tlog


@dataclass
class EvalItem:
    """One input: caller messages, template variables, the expected answer and a logged stable answer."""

    messages: list[dict[str, str]]
    variables: dict[str, Any] = field(default_factory=dict)
    expected: str | None = None
    reference: str | None = None


def load_dataset(path: str) -> list[EvalItem]:
    """Read a JSONL dataset. Raises ValidationFailed naming the line and the fix."""
    p = Path(path)
    if not p.is_file():
        raise ValidationFailed(f"dataset {path!r} does not exist or is not a file")
    items: list[EvalItem] = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationFailed(f"{path}:{n}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ValidationFailed(f"{path}:{n}: each line must be a JSON object")
        if isinstance(row.get("input"), str):
            messages = [{"role": "user", "content": row["input"]}]
        elif isinstance(row.get("messages"), list) and all(
            isinstance(m, dict) and isinstance(m.get("content"), str) for m in row["messages"]
        ):
            messages = [{"role": str(m.get("role", "user")), "content": m["content"]}
                        for m in row["messages"]]
        else:
            raise ValidationFailed(f"{path}:{n}: give 'input' (a string) or 'messages' (a list of "
                                   "{role, content})")
        expected = row.get("expected")
        if expected is not None and not isinstance(expected, str):
            expected = json.dumps(expected)
        items.append(EvalItem(messages, dict(row.get("variables") or {}), expected))
    if not items:
        raise ValidationFailed(f"dataset {path!r} has no items")
    return items


def prepare(inp: EvalInput, registry: Registry) -> EvalPlan:
    """Resolve the stable version, check every version exists, and fix the items."""
    stable = inp.stable_version
    if stable is None:
        stable = registry.serving_state(inp.config_key).stable_version
        if stable is None:
            raise ValidationFailed(f"config {inp.config_key!r} has no stable version: pass --stable N")
    versions = list(dict.fromkeys([stable, *inp.versions]))
    for v in versions:
        registry.get_version(inp.config_key, v)  # NotFound names the missing version
    if inp.dataset is not None:
        return EvalPlan(stable_version=stable, versions=versions, dataset_rows=len(load_dataset(inp.dataset)))
    records = tlog.sample_traffic(registry, inp.config_key, inp.sample or 100)
    if not records:
        raise NotFound(f"no recorded traffic for {inp.config_key!r}: serve some requests with the "
                       "traffic log on, or use --dataset FILE.jsonl")
    return EvalPlan(stable_version=stable, versions=versions, item_ids=[r.request_id for r in records])


def _items(chunk: EvalChunk, registry: Registry) -> list[EvalItem]:
    if chunk.input.dataset is not None:
        return load_dataset(chunk.input.dataset)[chunk.start : chunk.end]
    out = []
    for rid in chunk.plan.item_ids[chunk.start : chunk.end]:
        rec = tlog.find_request(registry, rid)
        if rec is None or not rec.request.get("messages"):
            continue
        text = rec.response.get("text")
        logged = text if rec.version == chunk.plan.stable_version and isinstance(text, str) else None
        out.append(EvalItem(list(rec.request["messages"]), dict(rec.request.get("variables") or {}),
                            None, logged))
    return out


async def run_chunk(chunk: EvalChunk, registry: Registry) -> list[VersionStats]:
    """Replay items ``[start, end)`` against every version; numbers per version (stable first)."""
    inp, plan = chunk.input, chunk.plan
    specs = {v: (await asyncio.to_thread(registry.get_version, inp.config_key, v)).spec
             for v in plan.versions}
    items = await asyncio.to_thread(_items, chunk, registry)
    stats = {v: VersionStats(version=v) for v in plan.versions}
    pacer = Pacer(inp.concurrency, inp.rate_per_s)

    async def one(item: EvalItem) -> None:
        outs = await asyncio.gather(*(
            pacer.run(lambda v=v: call_version(specs[v], item.messages, key=inp.config_key,  # type: ignore[misc]
                                               variables=item.variables, timeout=inp.timeout_s))
            for v in plan.versions))
        by_version = dict(zip(plan.versions, outs, strict=True))
        stable_out = by_version[plan.stable_version]
        reference = item.reference if item.reference is not None else (
            stable_out.text if stable_out.ok else None)
        for v, out in by_version.items():
            stats[v].add(out, reference=reference, expected=item.expected)

    await asyncio.gather(*(one(i) for i in items))
    return [stats[v] for v in plan.versions]


async def run_local(
    inp: EvalInput, registry: Registry, progress: Callable[[int, int], None] = lambda done, size: None
) -> EvalResult:
    """The whole evaluation in-process, chunk by chunk (what the workflow does, without Temporal)."""
    plan = await asyncio.to_thread(prepare, inp, registry)
    total: list[VersionStats] | None = None
    for start in range(0, plan.size, inp.chunk):
        end = min(plan.size, start + inp.chunk)
        total = merge(total, await run_chunk(EvalChunk(input=inp, plan=plan, start=start, end=end), registry))
        progress(end, plan.size)
    return EvalResult(config_key=inp.config_key, stable_version=plan.stable_version, items=plan.size,
                      stats=total or [VersionStats(version=v) for v in plan.versions])


__all__ = [
    "EvalChunk",
    "EvalInput",
    "EvalItem",
    "EvalPlan",
    "EvalResult",
    "load_dataset",
    "merge",
    "prepare",
    "run_chunk",
    "run_local",
]
