"""Temporal worker: the rollout workflow and every canaryflow activity on the ``canaryflow`` task queue.

Run it with ``python worker.py`` or ``canaryflow worker``. Settings come from the environment
(``CANARYFLOW_TEMPORAL_ADDRESS``, ``CANARYFLOW_TEMPORAL_NAMESPACE``, ``CANARYFLOW_TASK_QUEUE``,
``CANARYFLOW_TEMPORAL_TLS``, ``CANARYFLOW_DB_URL``). SIGINT/SIGTERM shut it down gracefully: running
activities finish (up to 30 s), then it exits. Missing search attributes are registered at start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.analysis import AnalysisActivities, analyze_stage
from activities.evaluation import eval_chunk, eval_prepare
from activities.evidence import EvidenceActivities
from activities.exposure import ExposureActivities
from activities.notify import notify
from activities.reconcile import ReconcileActivities
from activities.shadow import shadow_replay, shadow_replay_stage
from canaryflow import tracing
from canaryflow.registry import Registry
from canaryflow.settings import Settings, get_settings
from canaryflow.temporal import connect, ensure_search_attributes, names
from canaryflow.temporal.reconcile import ensure_schedule
from workflows.evaluation import EvaluationWorkflow
from workflows.reconcile import ReconcileWorkflow
from workflows.rollout import RolloutWorkflow

log = logging.getLogger("canaryflow.worker")

#: Workflows and activities besides the rollout and its registry/notify activities.
EXTRA_WORKFLOWS: tuple[type, ...] = (EvaluationWorkflow,)
EXTRA_ACTIVITIES: tuple[Callable[..., Any], ...] = (
    analyze_stage, shadow_replay, shadow_replay_stage, eval_prepare, eval_chunk,
)
#: Pure, deterministic modules the sandbox may share between workflow runs (keeps parked rollouts small).
PASSTHROUGH = ("pydantic", "pydantic_core", "annotated_types", "canaryflow", "opentelemetry")


def build_worker(
    client: Client,
    registry: Registry,
    *,
    task_queue: str = "canaryflow",
    activities: Sequence[Callable[..., Any]] | None = None,
    **kwargs: Any,
) -> Worker:
    """A worker for the rollout and reconciler workflows with the registry, notify and reconciler
    activities plus ``activities``.

    By default (``activities=None``) it also runs the analysis, shadow replay and evaluation activities and
    the evaluation workflow; tests pass their own ``activities`` and get the rollout only.
    """
    extra = list(activities) if activities is not None else list(EXTRA_ACTIVITIES)
    if activities is None:  # the analysis with the registry: failed quality gates name their worst answers
        extra = [AnalysisActivities(registry).analyze_stage if a is analyze_stage else a for a in extra]
    core: list[type] = [RolloutWorkflow, ReconcileWorkflow]
    workflows = core if activities is not None else [*core, *EXTRA_WORKFLOWS]
    reconciler = ReconcileActivities(registry, client).reconcile_exposures
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows,
        activities=[*ExposureActivities(registry).all(), *EvidenceActivities(registry).all(), notify,
                    reconciler, *extra],
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
        ),
        graceful_shutdown_timeout=timedelta(seconds=30),
        **kwargs,
    )


async def run_worker(settings: Settings | None = None) -> None:
    """Connect, register search attributes, and run until SIGINT/SIGTERM."""
    settings = settings or get_settings()
    tracing.configure(service_name="canaryflow-worker")
    client = await connect(settings)
    added = await ensure_search_attributes(client)
    if added:
        log.info("registered search attributes: %s", ", ".join(added))
    if await ensure_schedule(client, settings.task_queue):
        log.info("created the reconciler schedule %r", names.RECONCILE_SCHEDULE_ID)
    registry = await asyncio.to_thread(Registry, settings.db_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    worker = build_worker(client, registry, task_queue=settings.task_queue)
    print(
        f"worker: task queue {settings.task_queue!r} on {settings.temporal_address} "
        f"(namespace {settings.temporal_namespace}); Ctrl-C to stop",
        flush=True,
    )
    async with worker:
        await stop.wait()
        print("worker: shutting down (letting running activities finish)", flush=True)
    registry.close()
    tracing.shutdown()  # flush spans before main's os._exit


def main() -> None:
    """``python worker.py``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_worker())
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # temporalio's core may crash the interpreter at exit (sdk-python#300)


if __name__ == "__main__":
    main()
