"""Temporal workflows: :class:`RolloutWorkflow` (``workflows.rollout``)."""
