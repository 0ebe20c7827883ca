"""ReconcileWorkflow: one pass of the reconciler, started every few minutes by the Temporal Schedule
``canaryflow-reconciler`` (created by the worker at start; visible under Schedules in the Temporal UI)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from canaryflow.temporal import names
    from canaryflow.temporal.messages import ReconcileReport, ReconcileRequest


@workflow.defn(name=names.RECONCILE_WORKFLOW_TYPE)
class ReconcileWorkflow:
    """Restore stable wherever an exposure's owning rollout is no longer running."""

    @workflow.run
    async def run(self, req: ReconcileRequest) -> ReconcileReport:
        """One pass; returns what it found and fixed."""
        report: ReconcileReport = await workflow.execute_activity(
            names.RECONCILE_EXPOSURES, req, result_type=ReconcileReport,
            start_to_close_timeout=timedelta(minutes=2), retry_policy=names.REGISTRY_RETRY,
            summary="restore stable where the owning rollout no longer runs")
        return report


__all__ = ["ReconcileWorkflow"]
