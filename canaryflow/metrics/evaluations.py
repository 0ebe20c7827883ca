"""Prometheus series of the online evaluators (exporter side), created at 0 before their first event.

``canaryflow_eval_score{evaluator}`` (histogram of scores 0–1: its ``_sum`` / ``_count`` feed the
``eval_score`` gate), ``canaryflow_eval_total{evaluator, result=pass|fail}`` (the ``eval_pass_rate`` gate)
and ``canaryflow_eval_dropped_total{evaluator, reason}`` (``queue_full``: the evaluation queue was full;
``no_scorer``: no scorer for the kind in this process; ``error``: the scorer raised; ``budget``: a judge's
``budget_per_hour`` was spent; ``judge_config``: the judge version served has no usable output schema),
each with the common labels of :mod:`canaryflow.metrics.instruments` (the answer's config, version,
variation, segment and the variation's own provider/model).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from canaryflow.metrics.instruments import Labels, Metrics, Series, observer

DROP_REASONS = ("queue_full", "no_scorer", "error", "budget", "judge_config")
RESULTS = ("pass", "fail")


class EvalChildren:
    """The children of one label set and evaluator."""

    __slots__ = ("dropped", "fail", "observe", "passed", "series")

    def __init__(self, m: Metrics, series: Series, evaluator: str) -> None:
        values = (*series.values, evaluator)
        self.series = series
        self.observe = observer(m.eval_score.labels(*values))
        self.passed = m.eval_results.labels(*values, "pass")
        self.fail = m.eval_results.labels(*values, "fail")
        self.dropped: dict[str, Any] = {r: m.eval_dropped.labels(*values, r) for r in DROP_REASONS}


class EvalSeries:
    """Looks up (and creates at 0) the evaluation children of a label set; a version the exporter forgot
    and serves again gets fresh children (its :class:`Series` is new)."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics
        self._children: dict[tuple[Labels, str], EvalChildren] = {}

    def children(self, labels: Labels, evaluator: str) -> EvalChildren:
        """The children of ``labels`` and ``evaluator``."""
        series = self._m.series(labels)
        found = self._children.get((labels, evaluator))
        if found is None or found.series is not series:
            found = self._children[(labels, evaluator)] = EvalChildren(self._m, series, evaluator)
        return found

    def prepare(self, labels: Labels, evaluators: Iterable[str]) -> None:
        """Create every series of these evaluators for ``labels`` at 0."""
        for name in evaluators:
            self.children(labels, name)

    def retain(self, config: str, versions: Iterable[int]) -> None:
        """Forget the cached children of ``config``'s versions not in ``versions`` (bounded memory; the
        exporter removes their series itself, :meth:`Metrics.forget`)."""
        keep = set(versions)
        for key in [k for k in self._children if k[0].config == config and k[0].version not in keep]:
            del self._children[key]


__all__ = ["DROP_REASONS", "RESULTS", "EvalChildren", "EvalSeries"]
