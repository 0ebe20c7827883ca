"""The reconciler's effects: look up each owning rollout in Temporal, restore stable where it no longer
runs (a compare-and-set on the owner, audited as ``reconcile_restore`` by ``reconciler``), and keep the
Temporal Schedule that runs it every few minutes. ``canaryflow doctor`` calls :func:`reconcile` directly.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)
from temporalio.service import RPCError, RPCStatusCode

from canaryflow.domain.reconcile import assess
from canaryflow.errors import CanaryflowError
from canaryflow.registry import Registry
from canaryflow.temporal import names
from canaryflow.temporal.messages import ReconcileReport, ReconcileRequest

ACTOR = "reconciler"


async def owner_status(client: Client, workflow_id: str) -> str:
    """The owning workflow's status (``RUNNING``, ``TERMINATED``…), ``NOT_FOUND`` if Temporal has none."""
    try:
        desc = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return "NOT_FOUND"
        raise CanaryflowError(f"cannot describe workflow {workflow_id} in Temporal: {exc.message}") from exc
    return desc.status.name if desc.status is not None else "UNKNOWN"


async def reconcile(registry: Registry, client: Client, *, fix: bool) -> ReconcileReport:
    """Assess every owned or exposed config; with ``fix``, restore stable where the owner no longer runs."""
    findings = []
    for state in await asyncio.to_thread(registry.owned_states):
        status = await owner_status(client, state.owner) if state.owner else None
        finding = assess(state, status)
        if fix and finding.fix != "none":
            await asyncio.to_thread(registry.release, state.config_key, state.owner, by=ACTOR,
                                    reason=finding.why, source=ACTOR)
            finding = finding.model_copy(update={"applied": True})
        findings.append(finding)
    return ReconcileReport(findings=findings)


async def ensure_schedule(client: Client, task_queue: str,
                          every: timedelta = names.RECONCILE_EVERY) -> bool:
    """Create the reconciler's Schedule (id ``canaryflow-reconciler``) unless it exists; returns whether
    it was created. Overlapping runs are skipped."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            names.RECONCILE_WORKFLOW_TYPE, ReconcileRequest(fix=True), id="canaryflow-reconcile",
            task_queue=task_queue, execution_timeout=timedelta(minutes=10),
            static_summary="restore stable where the owning rollout no longer runs"),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        await client.create_schedule(names.RECONCILE_SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:
        return False
    return True


__all__ = ["ACTOR", "ReconcileReport", "ReconcileRequest", "ensure_schedule", "owner_status", "reconcile"]
