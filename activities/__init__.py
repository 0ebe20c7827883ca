"""Temporal activities: thin wrappers over canaryflow's registry, analysis and notification code.

``exposure`` (validate_rollout, apply_exposure, restore_stable, promote_candidate, record_audit),
``notify`` (webhooks), ``analysis`` (analyze_stage) and ``shadow`` (shadow_replay).
"""
