"""Online evaluation: score a sample of answers in the background, never on the request path.

The traffic plane calls :meth:`OnlineEvaluation.offer` once per answered request (live, plain or streamed at
its end) and per shadow answer; it only looks the version's evaluators up, draws the request's sampling
point (a hash of the request id, so a mirrored request's stable and shadow answers are sampled together)
and puts a job on a **bounded** queue without waiting. When the queue is full the sample is dropped and
counted per evaluator (``canaryflow_eval_dropped_total{reason="queue_full"}``). Background workers score
the jobs, export the results (:mod:`canaryflow.metrics.evaluations`), emit a ``gen_ai.evaluation.result``
span when tracing is on, and store them in the registry in batches (:mod:`canaryflow.registry.evaluations`).

Which evaluators score a version's answers: its own; and while a rollout runs, stable's answers are also
scored by the candidate's evaluators (same definitions, same response schema), so the ``eval_score`` and
``eval_pass_rate`` gates compare candidate and stable by the same yardstick.

Plug-ins: pass a :class:`~canaryflow.domain.evaluators.ScorerRegistry` with the ``judge`` / ``pairwise``
factories registered (``scorers=``); without one those evaluators' samples are counted as dropped
(``reason="no_scorer"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from canaryflow import tracing
from canaryflow.domain.checks import provider_refused
from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.evaluators import (
    CompiledEvaluator,
    EvaluatorContext,
    Sample,
    Score,
    ScorerRegistry,
    chosen,
    compile_evaluators,
    sample_point,
)
from canaryflow.domain.judging import JudgeDropped
from canaryflow.domain.resolution import CompiledConfig, Resolution
from canaryflow.metrics.evaluations import EvalSeries
from canaryflow.metrics.instruments import Labels, Metrics
from canaryflow.providers.base import ChatResult
from canaryflow.registry import evaluations as rows

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Job:
    evaluators: tuple[CompiledEvaluator, ...]
    labels: Labels
    request_id: str
    source: str
    result: ChatResult
    caller: Sequence[Mapping[str, Any]]
    reference: str | None
    trace: Any


@dataclass
class EvaluationStats:
    """Counters of this process's evaluation worker (for tests, benchmarks and ``/healthz``)."""

    offered: int = 0
    enqueued: int = 0
    dropped: int = 0
    jobs: int = 0
    scores: int = 0
    errors: int = 0
    stored: int = 0
    store_errors: int = 0
    recent: list[tuple[str, str, float]] = field(default_factory=list)
    """The last scores: (request id, evaluator, score), at most 1000."""


class OnlineEvaluation:
    """The bounded background evaluation of one traffic plane.

    Args:
        metrics: the instruments.
        registry: where results are stored (a Registry or engine; None: exported only).
        scorers: the scorer factories per kind (default: the deterministic kinds only).
        max_queue: jobs waiting at most; more are dropped and counted.
        concurrency: jobs scored at once (judges wait on a model; the deterministic kinds never wait).
        flush_rows: results stored per batch at most.
        flush_s: how long a result waits at most before its batch is stored.
    """

    def __init__(self, metrics: Metrics, *, registry: Any = None, scorers: ScorerRegistry | None = None,
                 max_queue: int = 1000, concurrency: int = 2, flush_rows: int = 200,
                 flush_s: float = 0.5) -> None:
        self.metrics = metrics
        self.registry = registry
        self.scorers = scorers or ScorerRegistry()
        self.max_queue = max_queue
        self.concurrency = max(1, concurrency)
        self.flush_rows = flush_rows
        self.flush_s = flush_s
        self.series = EvalSeries(metrics)
        self.stats = EvaluationStats()
        self.wanted = False
        """Whether any version this process serves has evaluators (the hot path's one test)."""
        self._versions: dict[tuple[str, int], tuple[CompiledEvaluator, ...]] = {}
        self._compiled: dict[tuple[str, int, int | None], tuple[CompiledEvaluator, ...]] = {}
        self._queue: asyncio.Queue[_Job] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._rows: list[rows.EvaluationResult] = []
        self._flushed_at = time.monotonic()
        self._flush_lock: asyncio.Lock | None = None

    # ── which evaluators score which version ─────────────────────────────────────────────────────

    def _compile(self, key: str, spec: ConfigSpec, version: int, *, judged_by: tuple[int, ConfigSpec] | None
                 ) -> tuple[CompiledEvaluator, ...]:
        """``spec``'s own evaluators, plus (``judged_by``: the candidate) the candidate's, which win on a
        shared name. Compiled once per (version, candidate): versions are immutable."""
        cache_key = (key, version, None if judged_by is None else judged_by[0])
        found = self._compiled.get(cache_key)
        if found is not None:
            return found
        fmt = spec.response_format
        own = compile_evaluators(spec.evaluators or (), EvaluatorContext(
            key, version, None if fmt is None else fmt.json_schema), self.scorers)
        merged = {e.name: e for e in own}
        if judged_by is not None:
            cand_version, cand = judged_by
            cfmt = cand.response_format
            merged.update((e.name, e) for e in compile_evaluators(cand.evaluators or (), EvaluatorContext(
                key, cand_version, None if cfmt is None else cfmt.json_schema), self.scorers))
        out = self._compiled[cache_key] = tuple(merged.values())
        return out

    def prepare(self, compiled: CompiledConfig) -> None:
        """Compile the evaluators of every version ``compiled`` serves and create their series at 0 (the
        traffic plane calls it on every compile of the config)."""
        key = compiled.key
        label_sets = compiled.label_sets()
        candidates = {ls.version for ls in label_sets if ls.variation in ("candidate", "shadow")}
        cand = next(iter(candidates)) if len(candidates) == 1 else None
        judged_by = (cand, compiled.spec(cand)) if cand is not None else None
        versions: dict[int, tuple[CompiledEvaluator, ...]] = {}
        for ls in label_sets:
            if ls.version in versions:
                continue
            spec = compiled.spec(ls.version)
            stable_side = ls.variation == "stable" and judged_by is not None and judged_by[0] != ls.version
            versions[ls.version] = self._compile(key, spec, ls.version,
                                                 judged_by=judged_by if stable_side else None)
        for ls in label_sets:
            evs = versions[ls.version]
            if evs:
                labels = Labels(key, ls.version, ls.variation, ls.segment, ls.provider, ls.model)
                self.series.prepare(labels, (e.name for e in evs))
        fresh = {k: evs for k, evs in self._versions.items() if k[0] != key}
        fresh.update(((key, v), evs) for v, evs in versions.items() if evs)
        self._versions = fresh  # one swap: the request path (another thread) never sees it half-built
        for old in [k for k in self._compiled if k[0] == key and k[1] not in versions]:
            del self._compiled[old]
        self.series.retain(key, versions)
        self.wanted = bool(self._versions)

    def evaluators(self, key: str, version: int) -> tuple[CompiledEvaluator, ...]:
        """The evaluators scoring ``key`` v``version``'s answers in this process (empty: none)."""
        return self._versions.get((key, version), ())

    # ── the request path: O(1), never waits ──────────────────────────────────────────────────────

    def offer(self, res: Resolution, request_id: str, result: ChatResult,
              caller: Sequence[Mapping[str, Any]], *, source: str = "live", reference: str | None = None,
              trace: Any = None) -> bool:
        """Queue a sampled copy of an answer for its version's evaluators without waiting; False when
        nothing samples it or the queue is full (then each evaluator's drop is counted).

        Must be called from the event loop that serves requests."""
        evs = self._versions.get((res.config_key, res.version))
        if not evs:
            return False
        point = sample_point(request_id)
        picked = chosen(evs, point, source)
        if not picked:
            return False
        self.stats.offered += 1
        labels = Labels(res.config_key, res.version, res.variation, res.segment, res.provider, res.model)
        queue = self._queue if self._queue is not None and self._loop is asyncio.get_running_loop() \
            else self._start()
        try:
            queue.put_nowait(_Job(picked, labels, request_id, source, result, caller, reference,
                                  trace if trace is not None else tracing.capture()))
        except asyncio.QueueFull:
            self.stats.dropped += 1
            for e in picked:
                self.series.children(labels, e.name).dropped["queue_full"].inc()
            return False
        self.stats.enqueued += 1
        return True

    def _start(self) -> asyncio.Queue[_Job]:
        loop = asyncio.get_running_loop()
        self._loop = loop
        queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=self.max_queue)
        self._queue = queue
        self._flush_lock = asyncio.Lock()
        self._tasks = [loop.create_task(self._work(queue)) for _ in range(self.concurrency)]
        self._tasks.append(loop.create_task(self._flush_every()))
        return queue

    # ── the background ───────────────────────────────────────────────────────────────────────────

    async def _work(self, queue: asyncio.Queue[_Job]) -> None:
        while True:
            job = await queue.get()
            try:
                await self._score(job)
            except Exception:  # never take the worker down
                self.stats.errors += 1
                log.exception("online evaluation failed")
            finally:
                queue.task_done()

    async def _score(self, job: _Job) -> None:
        r, lab = job.result, job.labels
        sample = Sample(job.request_id, lab.config, lab.version, lab.variation, lab.segment, r.text,
                        source=job.source, finish_reason=r.finish_reason, tool_calls=len(r.tool_calls),
                        tool_call_results=r.tool_call_results, refused=provider_refused(r.raw),
                        messages=tuple(job.caller), reference=job.reference, provider=r.provider,
                        model=r.model)
        self.stats.jobs += 1
        for ev in job.evaluators:
            if ev.scorer is None:
                self.series.children(lab, ev.name).dropped["no_scorer"].inc()
                continue
            try:
                scores = await ev.scorer.score(sample)
            except JudgeDropped as exc:  # on purpose (a judge's budget is spent): counted, not an error
                self.series.children(lab, ev.name).dropped[exc.reason].inc()
                continue
            except Exception:
                self.stats.errors += 1
                self.series.children(lab, ev.name).dropped["error"].inc()
                log.warning("evaluator %s failed on %s", ev.name, job.request_id, exc_info=True)
                continue
            for s in scores:
                self._record(job, s)
        if len(self._rows) >= self.flush_rows:
            await self.flush()

    def _record(self, job: _Job, s: Score) -> None:
        lab = job.labels
        children = self.series.children(lab, s.evaluator)
        children.observe(s.score)
        (children.passed if s.passed else children.fail).inc()
        self.stats.scores += 1
        self.stats.recent.append((job.request_id, s.evaluator, s.score))
        del self.stats.recent[:-1000]
        if job.trace is not None:
            tracing.evaluation(job.trace, {
                "gen_ai.evaluation.name": s.evaluator, "gen_ai.evaluation.score.value": s.score,
                "gen_ai.evaluation.score.label": s.label or ("pass" if s.passed else "fail"),
                "gen_ai.evaluation.explanation": s.reason, "canaryflow.evaluation.passed": s.passed,
                "canaryflow.request_id": job.request_id, "canaryflow.config": lab.config,
                "canaryflow.version": lab.version, "canaryflow.variation": lab.variation,
                "canaryflow.evaluation.source": job.source})
        if self.registry is not None:
            self._rows.append(rows.EvaluationResult(
                job.request_id, lab.config, lab.version, lab.variation, lab.segment, s.evaluator, job.source,
                s.score, s.passed, s.label, s.reason))

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            if self._rows:
                await self.flush()

    async def flush(self) -> None:
        """Store the results waiting for their batch (in a thread: the event loop never waits on SQL)."""
        if not self._rows or self.registry is None:
            return
        lock = self._flush_lock or asyncio.Lock()
        async with lock:
            batch, self._rows = self._rows, []
            try:
                self.stats.stored += await asyncio.to_thread(rows.add_results, self.registry, batch)
            except Exception:  # the registry is down: the results stay exported, the rows are lost
                self.stats.store_errors += len(batch)
                log.warning("could not store %d evaluation results", len(batch), exc_info=True)

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queued job is scored and its results stored (tests, shutdown)."""
        if self._queue is not None:
            await asyncio.wait_for(self._queue.join(), timeout)
        await self.flush()

    async def close(self) -> None:
        """Store what is scored, then stop the workers (queued jobs are abandoned)."""
        with contextlib.suppress(Exception):
            await self.flush()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await task
        self._tasks = []
        self._queue = None


__all__ = ["EvaluationStats", "OnlineEvaluation"]
