"""The worst answers behind a failed quality gate: request ids from the evaluation results (no text).

The analysis activity measures gates on Prometheus; when an ``eval_score``, ``eval_pass_rate`` or
``win_rate`` gate FAILs, :func:`attach_worst` adds the request ids of the candidate's lowest-scored answers
in the stage (for ``win_rate``: pairs it lost) to the measurement's evidence, so the rollout's failure
message points at answers to read (``canaryflow feedback``, the traffic log).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from canaryflow.domain.analysis import AnalysisReport, AnalysisRequest
from canaryflow.domain.gates import EVAL_GATES, MAX_EXAMPLES, Verdict
from canaryflow.registry import evaluations


def attach_worst(report: AnalysisReport, req: AnalysisRequest, registry: Any) -> AnalysisReport:
    """``report`` with the worst answers' request ids on its failed eval gates (unchanged on any error)."""
    by_label = {g.label: g for g in req.gates}
    since = datetime.fromtimestamp(req.window_start, UTC)
    for m in report.measurements:
        gate = by_label.get(m.gate)
        if gate is None or gate.metric not in EVAL_GATES or m.verdict != Verdict.FAIL or not gate.evaluator:
            continue
        try:
            rows = evaluations.lowest(registry, req.config_key, req.candidate_version,
                                      evaluator=gate.evaluator, limit=MAX_EXAMPLES, since=since)
        except Exception:  # the registry is down: the verdict stands without its examples
            continue
        m.evidence.examples = [r.request_id for r in rows]
    return report


__all__ = ["attach_worst"]
