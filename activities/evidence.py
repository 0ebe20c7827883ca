"""The ``record_measurements`` activity: append one analysis's full evidence to the registry.

The workflow carries only each gate's running counters and last measurements; this is where everything
else goes (``canaryflow rollout status`` reads it back). A thin wrapper over
:meth:`canaryflow.registry.Registry.record_measurements`, run in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from temporalio import activity

from canaryflow.registry import Registry
from canaryflow.temporal import names
from canaryflow.temporal.messages import MeasurementsRecord


class EvidenceActivities:
    """The evidence activities, bound to one registry (built once per worker)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    @activity.defn(name=names.RECORD_MEASUREMENTS)
    async def record_measurements(self, req: MeasurementsRecord) -> int:
        """Append the measurements; returns how many were written."""
        return await asyncio.to_thread(
            lambda: self.registry.record_measurements(
                rollout_id=req.rollout_id, config_key=req.config_key,
                candidate_version=req.candidate_version, stage=req.stage, measurements=req.measurements))

    def all(self) -> list[Callable[..., object]]:
        """Every activity of this class, for the worker."""
        return [self.record_measurements]


__all__ = ["EvidenceActivities"]
