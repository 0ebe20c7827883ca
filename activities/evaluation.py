"""Evaluation activities: fix the items of an evaluation, then replay one chunk of them.

Thin wrappers over :mod:`canaryflow.evaluation.run`; ids and numbers in and out (no prompt or answer text
reaches the workflow history). Bad input (unknown version, unreadable dataset) is non-retryable.
"""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.exceptions import ApplicationError

from canaryflow.domain.evaluation import VersionStats
from canaryflow.errors import NotFound, ValidationFailed
from canaryflow.evaluation.run import EvalChunk, EvalInput, EvalPlan, prepare, run_chunk
from canaryflow.registry import Registry


@activity.defn(name="eval_prepare")
async def eval_prepare(inp: EvalInput) -> EvalPlan:
    """Resolve the stable version, check the versions and fix the sampled traffic ids / dataset size."""
    try:
        registry = await asyncio.to_thread(Registry, inp.db_url)
        return await asyncio.to_thread(prepare, inp, registry)
    except (ValidationFailed, NotFound) as exc:
        raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from exc


@activity.defn(name="eval_chunk")
async def eval_chunk(chunk: EvalChunk) -> list[VersionStats]:
    """Replay items ``[start, end)`` against every version; per-version numbers (stable first)."""
    try:
        registry = await asyncio.to_thread(Registry, chunk.input.db_url)
        return await run_chunk(chunk, registry)
    except (ValidationFailed, NotFound) as exc:
        raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from exc


__all__ = ["eval_chunk", "eval_prepare"]
