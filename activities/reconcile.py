"""The reconciler activity: restore stable where the owning rollout no longer runs (see
:mod:`canaryflow.temporal.reconcile`). Bound to the worker's registry and Temporal client."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from canaryflow.registry import Registry
from canaryflow.temporal import names
from canaryflow.temporal.messages import ReconcileReport, ReconcileRequest
from canaryflow.temporal.reconcile import reconcile


class ReconcileActivities:
    """``reconcile_exposures``, with the registry and the client it needs."""

    def __init__(self, registry: Registry, client: Client) -> None:
        self.registry, self.client = registry, client

    @activity.defn(name=names.RECONCILE_EXPOSURES)
    async def reconcile_exposures(self, req: ReconcileRequest) -> ReconcileReport:
        """Assess every owned or exposed config; restore stable where the owner no longer runs."""
        report = await reconcile(self.registry, self.client, fix=req.fix)
        for f in report.fixes:
            activity.logger.warning("reconciler: %s %s (%s)", f.fix, f.config_key, f.why)
        return report


__all__ = ["ReconcileActivities"]
