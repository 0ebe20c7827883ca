"""The ``analyze_stage`` activity: measure every gate of a stage once and return the judged report.

A few lines around :func:`canaryflow.metrics.measure.measure`, which is tested without Temporal. Metrics
problems come back as ERROR measurements inside the report, never as exceptions, so the workflow counts
them against each gate's consecutive-error limit.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from temporalio import activity

from canaryflow.domain.analysis import AnalysisReport, AnalysisRequest
from canaryflow.metrics.measure import measure
from canaryflow.metrics.source import PrometheusSource
from canaryflow.registry.worst import attach_worst


@activity.defn(name="analyze_stage")
async def analyze_stage(req: AnalysisRequest) -> AnalysisReport:
    """Query Prometheus for the stage's window and judge every gate (see :mod:`canaryflow.domain.judge`)."""
    source = PrometheusSource()
    try:
        return await measure(req, source, time.time())
    finally:
        source.close()


class AnalysisActivities:
    """``analyze_stage`` with the registry at hand: a failed quality gate's evidence also names the request
    ids of the candidate's worst answers (:mod:`canaryflow.registry.worst`)."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    @activity.defn(name="analyze_stage")
    async def analyze_stage(self, req: AnalysisRequest) -> AnalysisReport:
        """Measure and judge every gate, then look up the worst answers behind failed eval gates."""
        report = await analyze_stage(req)
        return await asyncio.to_thread(attach_worst, report, req, self.registry)


__all__ = ["AnalysisActivities", "analyze_stage", "measure"]
