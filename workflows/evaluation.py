"""EvaluationWorkflow: replay recorded traffic or a dataset against several versions, chunk by chunk.

Each chunk is one activity whose numbers land in the history, so a restarted worker continues with the
next chunk; progress is visible in the Temporal UI (current details) and through the ``progress`` query.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from canaryflow.domain.evaluation import VersionStats
    from canaryflow.evaluation.models import EvalChunk, EvalInput, EvalPlan, EvalResult, merge

CHUNK_TIMEOUT = timedelta(minutes=30)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(seconds=30),
                    maximum_attempts=5, non_retryable_error_types=["ValidationFailed", "NotFound"])


@workflow.defn(name="EvaluationWorkflow")
class EvaluationWorkflow:
    """Side-by-side evaluation of configuration versions (see ``canaryflow eval``)."""

    def __init__(self) -> None:
        self._done = 0
        self._size = 0

    @workflow.query
    def progress(self) -> dict[str, int]:
        """``{"done": items replayed, "size": items in total}``."""
        return {"done": self._done, "size": self._size}

    @workflow.run
    async def run(self, inp: EvalInput) -> EvalResult:
        """Prepare the items, replay every chunk, return the per-version numbers."""
        plan: EvalPlan = await workflow.execute_activity(
            "eval_prepare", inp, result_type=EvalPlan, start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RETRY)
        self._size = plan.size
        total: list[VersionStats] | None = None
        for start in range(0, plan.size, inp.chunk):
            end = min(plan.size, start + inp.chunk)
            workflow.set_current_details(
                f"Evaluating {inp.config_key} v{', v'.join(map(str, plan.versions))}: "
                f"{start}/{plan.size} items done")
            part: list[VersionStats] = await workflow.execute_activity(
                "eval_chunk", EvalChunk(input=inp, plan=plan, start=start, end=end),
                result_type=list[VersionStats], start_to_close_timeout=CHUNK_TIMEOUT, retry_policy=RETRY)
            total = merge(total, part)
            self._done = end
        workflow.set_current_details(f"Evaluated {plan.size} items of {inp.config_key}")
        return EvalResult(config_key=inp.config_key, stable_version=plan.stable_version, items=plan.size,
                          stats=total or [VersionStats(version=v) for v in plan.versions])


__all__ = ["EvaluationWorkflow"]
