"""Shadow mirror: during a ``shadow`` stage, replay a fraction of stable requests on the candidate.

The user's response is never delayed: :meth:`ShadowMirror.offer` only decides (``shadow_fraction``) and puts
a job on a bounded queue without waiting; a fixed number of worker tasks call the candidate in the background.
When the queue is full the mirror is dropped and counted in ``canaryflow_shadow_dropped_total``. Each finished
mirror is recorded by the caller-supplied ``call`` (as variation ``shadow``) and its answer is scored against
the stable answer with :func:`canaryflow.domain.agreement.score_agreement` into
``canaryflow_shadow_agreement``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from canaryflow.domain.agreement import score_agreement
from canaryflow.domain.resolution import Resolution
from canaryflow.metrics.instruments import Labels, Metrics, record_shadow, record_shadow_dropped

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ShadowJob:
    """One mirrored request: the candidate's resolution, the caller's messages and the stable answer."""

    resolution: Resolution
    caller_messages: Sequence[Mapping[str, str]]
    reference_text: str
    labels: Labels
    trace: Any = None  # the mirrored request's OpenTelemetry context (canaryflow.tracing), None when off
    request_id: str = ""  # the mirrored request's id (its shadow answer is sampled for evaluation alike)


ShadowCall = Callable[[ShadowJob], Awaitable[str | None]]
"""Calls the candidate and records its request metrics; returns its answer, or None when it failed."""


@dataclass
class ShadowStats:
    """Counters of this process's mirror (for tests and ``/healthz``)."""

    offered: int = 0
    enqueued: int = 0
    dropped: int = 0
    completed: int = 0
    failed: int = 0
    scores: list[float] = field(default_factory=list)


class ShadowMirror:
    """Bounded background mirror of stable traffic to a shadow candidate.

    Args:
        call: runs one job on the candidate (see :data:`ShadowCall`).
        max_concurrency: candidate calls in flight at most.
        max_queue: jobs waiting at most; more are dropped and counted.
        metrics: where agreement and drops are recorded.
        rng: the random source for the ``shadow_fraction`` draw (seed it in tests).
    """

    def __init__(self, call: ShadowCall, *, max_concurrency: int = 4, max_queue: int = 100,
                 metrics: Metrics | None = None, rng: random.Random | None = None) -> None:
        self._call = call
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._queue: asyncio.Queue[ShadowJob] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stats = ShadowStats()

    def _start(self) -> asyncio.Queue[ShadowJob]:
        loop = asyncio.get_running_loop()
        if self._queue is None or self._loop is not loop:
            self._loop = loop
            self._queue = asyncio.Queue(maxsize=self.max_queue)
            self._workers = [loop.create_task(self._work(self._queue)) for _ in range(self.max_concurrency)]
        return self._queue

    def wants(self, resolution: Resolution) -> bool:
        """Draw whether this stable request is mirrored (False when no candidate is in shadow)."""
        if resolution.shadow_version is None or resolution.shadow_fraction <= 0.0:
            return False
        return resolution.shadow_fraction >= 1.0 or self._rng.random() < resolution.shadow_fraction

    def offer(self, job: ShadowJob) -> bool:
        """Queue a mirror without waiting; returns False (and counts a drop) when the queue is full.

        Must be called from the event loop that serves requests.
        """
        self.stats.offered += 1
        queue = self._start()
        try:
            queue.put_nowait(job)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            record_shadow_dropped(job.labels, metrics=self._metrics)
            return False
        self.stats.enqueued += 1
        return True

    async def _work(self, queue: asyncio.Queue[ShadowJob]) -> None:
        while True:
            job = await queue.get()
            try:
                answer = await self._call(job)
                if answer is None:
                    self.stats.failed += 1
                else:
                    score = score_agreement(answer, job.reference_text).score
                    record_shadow(job.labels, score, metrics=self._metrics)
                    self.stats.scores.append(score)
                    del self.stats.scores[:-1000]
                    self.stats.completed += 1
            except Exception:  # a mirror must never take the worker down
                self.stats.failed += 1
                log.exception("shadow mirror failed")
            finally:
                queue.task_done()

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queued mirror has finished (tests, shutdown)."""
        if self._queue is not None:
            await asyncio.wait_for(self._queue.join(), timeout)

    async def close(self) -> None:
        """Stop the workers (queued jobs are abandoned)."""
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await task
        self._workers = []
        self._queue = None


__all__ = ["ShadowCall", "ShadowJob", "ShadowMirror", "ShadowStats"]
