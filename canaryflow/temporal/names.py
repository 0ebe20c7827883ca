"""Names every Temporal surface shares: task queue, workflow type and id, activity names, search attributes.

Only :mod:`temporalio.common` is imported, so workflow code may import this module in the sandbox.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy, SearchAttributeKey

TASK_QUEUE = "canaryflow"
WORKFLOW_TYPE = "RolloutWorkflow"

SA_CONFIG_KEY = SearchAttributeKey.for_keyword("CanaryflowConfigKey")
SA_STAGE = SearchAttributeKey.for_keyword("CanaryflowStage")
SA_PERCENT = SearchAttributeKey.for_float("CanaryflowPercent")
SA_STATE = SearchAttributeKey.for_keyword("CanaryflowState")
#: The search attributes of DESIGN.md (register them before a rollout starts).
SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[str] | SearchAttributeKey[float], ...] = (
    SA_CONFIG_KEY,
    SA_STAGE,
    SA_PERCENT,
    SA_STATE,
)

# Activity names (fixed; other helpers and the README rely on them).
VALIDATE_ROLLOUT = "validate_rollout"
APPLY_EXPOSURE = "apply_exposure"
RESTORE_STABLE = "restore_stable"
PROMOTE_CANDIDATE = "promote_candidate"
RECORD_AUDIT = "record_audit"
NOTIFY = "notify"
ANALYZE_STAGE = "analyze_stage"
SHADOW_REPLAY = "shadow_replay"
SHADOW_REPLAY_STAGE = "shadow_replay_stage"
RECORD_MEASUREMENTS = "record_measurements"
#: The workflow logic version of new rollouts, as a ``workflow.patched`` id (see docs/operations.md).
PATCH_LOGIC_2 = "canaryflow-logic-2-bounded-state-frozen-plan"

#: Registry writes: quick, retried a few times, then the workflow compensates.
REGISTRY_TIMEOUT = timedelta(seconds=10)
REGISTRY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
    non_retryable_error_types=["ValidationFailed", "NotFound"],
)
#: Restoring stable must eventually succeed: retried without a limit.
RESTORE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
#: One round of restore attempts (~25 s); after a failed round the rollout shows ``restore_failed``, notifies,
#: waits ``RESTORE_PAUSE`` and starts another round — for ever, never ending with the candidate exposed.
RESTORE_ROUND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10), maximum_attempts=6
)
RESTORE_PAUSE = timedelta(seconds=30)
#: The reconciler: a Temporal Schedule that restores stable where the owning rollout no longer runs.
RECONCILE_WORKFLOW_TYPE = "ReconcileWorkflow"
RECONCILE_SCHEDULE_ID = "canaryflow-reconciler"
RECONCILE_EXPOSURES = "reconcile_exposures"
RECONCILE_EVERY = timedelta(minutes=5)
ANALYSIS_TIMEOUT = timedelta(seconds=45)
ANALYSIS_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), maximum_interval=timedelta(seconds=20), maximum_attempts=3
)
#: Shadow replay at a shadow stage's start: long, heartbeated after every batch, resumed where it was.
REPLAY_TIMEOUT = timedelta(minutes=30)
REPLAY_HEARTBEAT = timedelta(seconds=60)
REPLAY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(seconds=30),
                           maximum_attempts=5, non_retryable_error_types=["ValidationFailed", "NotFound"])
NOTIFY_TIMEOUT = timedelta(seconds=30)
NOTIFY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=3)


def workflow_id(config_key: str) -> str:
    """The rollout workflow's id for ``config_key``: ``rollout-<key>`` (one live rollout per config)."""
    return f"rollout-{config_key}"


__all__ = [
    "ANALYZE_STAGE",
    "APPLY_EXPOSURE",
    "NOTIFY",
    "PATCH_LOGIC_2",
    "PROMOTE_CANDIDATE",
    "RECONCILE_EVERY",
    "RECONCILE_EXPOSURES",
    "RECONCILE_SCHEDULE_ID",
    "RECONCILE_WORKFLOW_TYPE",
    "RECORD_AUDIT",
    "RECORD_MEASUREMENTS",
    "RESTORE_PAUSE",
    "RESTORE_ROUND_RETRY",
    "RESTORE_STABLE",
    "SA_CONFIG_KEY",
    "SA_PERCENT",
    "SA_STAGE",
    "SA_STATE",
    "SEARCH_ATTRIBUTES",
    "SHADOW_REPLAY",
    "SHADOW_REPLAY_STAGE",
    "TASK_QUEUE",
    "VALIDATE_ROLLOUT",
    "WORKFLOW_TYPE",
    "workflow_id",
]
