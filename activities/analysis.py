"""The ``analyze_stage`` activity: measure every gate of a stage once and return the judged report.

A few lines around :func:`canaryflow.metrics.measure.measure`, which is tested without Temporal. Metrics
problems come back as ERROR measurements inside the report, never as exceptions, so the workflow counts
them against each gate's consecutive-error limit.
"""

from __future__ import annotations

import time

from temporalio import activity

from canaryflow.domain.analysis import AnalysisReport, AnalysisRequest
from canaryflow.metrics.measure import measure
from canaryflow.metrics.source import PrometheusSource


@activity.defn(name="analyze_stage")
async def analyze_stage(req: AnalysisRequest) -> AnalysisReport:
    """Query Prometheus for the stage's window and judge every gate (see :mod:`canaryflow.domain.judge`)."""
    source = PrometheusSource()
    try:
        return await measure(req, source, time.time())
    finally:
        source.close()


__all__ = ["analyze_stage", "measure"]
