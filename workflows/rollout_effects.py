"""The rollout workflow's effects: every activity it runs, named once with its timeout, retry policy and
the summary the Temporal UI shows. Workflow code only (these call ``workflow.execute_activity``); each
function updates the rollout's state with what the activity did, and the workflow then refreshes the UI.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError, FailureError

with workflow.unsafe.imports_passed_through():
    from canaryflow.domain.analysis import AnalysisReport, AnalysisRequest
    from canaryflow.domain.gates import Evidence, Measurement, Verdict
    from canaryflow.domain.plan import Plan
    from canaryflow.domain.rollout_outcome import promotion_outcome
    from canaryflow.domain.rollout_status import SIGNALS, Event, RolloutStatus
    from canaryflow.domain.rollout_view import describe_exposure, exposure_for, verdict_line
    from canaryflow.domain.stages import Rollback, assess, gates_to_measure
    from canaryflow.temporal import names
    from canaryflow.temporal.messages import (
        AuditRecord,
        ExposureChange,
        MeasurementsRecord,
        Notification,
        NotifyResult,
        PromoteVersion,
        RolloutTarget,
        ShadowReplayStage,
        ValidateRollout,
    )

REFUSALS = {"approve": "approval_refused", "promote": "promotion_refused"}
#: Exposure changes wait for a cancelled attempt to end, so no write lands after the compensation's restore.
WAIT = workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED


def actor(name: str | None, default: str = "canaryflow") -> str:
    """Who the registry records: a normalised name, never blank."""
    return (name or "").strip()[:200] or default


def cause(err: ActivityError) -> str:
    """The activity's own error message (not the chain behind it)."""
    inner = err.cause
    if isinstance(inner, FailureError):
        return inner.message
    return str(inner or err)


def reraise_cancellation(err: ActivityError) -> None:
    """An activity cut short because the workflow was cancelled: let the cancellation through."""
    if isinstance(err.cause, CancelledError):
        raise asyncio.CancelledError() from err


def now() -> float:
    """Workflow time, seconds since the epoch."""
    return workflow.now().timestamp()


async def validate(s: RolloutStatus, plan: str | Plan) -> RolloutTarget:
    """The config exists, the candidate exists and is not stable, the plan's segments exist; a preset name
    is resolved here, once (the result, in history, freezes it)."""
    request = ValidateRollout(config_key=s.config_key, candidate_version=s.candidate_version, plan=plan,
                              requested_by=actor(s.requested_by))
    target: RolloutTarget = await workflow.execute_activity(
        names.VALIDATE_ROLLOUT, request, result_type=RolloutTarget,
        start_to_close_timeout=names.REGISTRY_TIMEOUT, retry_policy=names.REGISTRY_RETRY,
        cancellation_type=WAIT, summary=f"validate {s.config_key} v{s.candidate_version} and the plan")
    return target


async def apply_stage(s: RolloutStatus, index: int) -> None:
    """Apply stage ``index``'s exposure (idempotent) and start the stage's clock."""
    stage = s.plan.stages[index]
    by = actor(s.stage_by or s.requested_by)  # the approver whose approval opened this stage, if any
    change = ExposureChange(config_key=s.config_key, exposure=exposure_for(s, index), by=by,
                            reason=f"rollout stage {stage.name}")
    await workflow.execute_activity(
        names.APPLY_EXPOSURE, change, result_type=int,
        start_to_close_timeout=names.REGISTRY_TIMEOUT, retry_policy=names.REGISTRY_RETRY,
        cancellation_type=WAIT, summary=f"expose v{s.candidate_version}: {describe_exposure(stage)}")
    t = now()
    s.start_stage(index, t)
    s.record(Event(at=t, action="stage_started", by=by, detail=stage.name))


async def measure(s: RolloutStatus) -> None:
    """Measure the stage's gates once; an analysis that fails past its retries is an ERROR measurement
    (analysis as data: counted against the gates' consecutive-error limit, not an exception)."""
    stage = s.plan.stages[s.stage_index]
    v2 = s.logic >= 2
    gates = gates_to_measure(s.plan, s, now()) if v2 else s.plan.gates_for(s.stage_index)
    assert s.stage_started_at is not None
    request = AnalysisRequest(
        config_key=s.config_key, stable_version=s.stable_version or 0, candidate_version=s.candidate_version,
        stage=stage.name, stage_kind=stage.kind, window_start=s.stage_started_at, gates=gates,
        min_samples=stage.min_samples, interval=s.plan.analysis_interval.total_seconds() if v2 else None,
        args=s.plan.args, segments=list(stage.segments or []) if stage.kind == "segments" else [])
    try:
        report = await workflow.execute_activity(
            names.ANALYZE_STAGE, request, result_type=AnalysisReport,
            start_to_close_timeout=names.ANALYSIS_TIMEOUT, retry_policy=names.ANALYSIS_RETRY,
            summary=f"measure {len(gates)} gate(s) of {stage.name}")
    except ActivityError as err:
        reraise_cancellation(err)
        t = now()
        report = AnalysisReport(at=t, measurements=[
            Measurement(gate=g.label, verdict=Verdict.ERROR, at=t, dry_run=g.dry_run,
                        evidence=Evidence(note=f"analysis failed: {cause(err)[:200]}")) for g in gates])
    s.add_report(report)
    s.last_analysis_at = now()
    s.add_verdict(assess(s.plan, s).record(stage.name, s.last_analysis_at))
    await record_evidence(s, stage.name, report)


async def record_evidence(s: RolloutStatus, stage: str, report: AnalysisReport) -> None:
    """The report's full evidence goes to the registry (the workflow keeps counters and the last ones).
    A registry that refuses it past its retries is recorded as an event, and the rollout goes on: the
    counters that decide are in the workflow."""
    if s.logic < 2 or not report.measurements:
        return
    info = workflow.info()
    record = MeasurementsRecord(rollout_id=f"{info.workflow_id}/{info.first_execution_run_id}",
                                config_key=s.config_key, candidate_version=s.candidate_version, stage=stage,
                                measurements=report.measurements)
    try:
        await workflow.execute_activity(
            names.RECORD_MEASUREMENTS, record, result_type=int,
            start_to_close_timeout=names.REGISTRY_TIMEOUT, retry_policy=names.REGISTRY_RETRY,
            summary=f"record {len(report.measurements)} measurement(s) of {stage}")
    except ActivityError as err:
        reraise_cancellation(err)
        s.record(Event(at=now(), action="evidence_not_recorded", detail=cause(err)[:200]))


async def replay(s: RolloutStatus) -> None:
    """A shadow stage with ``replay_sample``: replay logged requests against the candidate before live
    traffic reaches it; the judged report joins the stage's analyses (a failed replay is an ERROR report)."""
    stage = s.plan.stages[s.stage_index]
    if stage.kind != "shadow" or not stage.replay_sample:
        return
    gates = s.plan.gates_for(s.stage_index)
    request = ShadowReplayStage(config_key=s.config_key, stable_version=s.stable_version or 0,
                                candidate_version=s.candidate_version, sample=stage.replay_sample,
                                gates=gates)
    try:
        report = await workflow.execute_activity(
            names.SHADOW_REPLAY_STAGE, request, result_type=AnalysisReport,
            start_to_close_timeout=names.REPLAY_TIMEOUT, heartbeat_timeout=names.REPLAY_HEARTBEAT,
            retry_policy=names.REPLAY_RETRY,
            summary=f"replay {stage.replay_sample} logged requests against v{s.candidate_version}")
    except ActivityError as err:
        reraise_cancellation(err)
        t = now()
        report = AnalysisReport(at=t, measurements=[
            Measurement(gate=g.label, verdict=Verdict.ERROR, at=t, dry_run=g.dry_run,
                        evidence=Evidence(note=f"shadow replay failed: {cause(err)[:200]}")) for g in gates])
    if report.measurements:
        s.add_report(report)
        s.add_verdict(assess(s.plan, s).record(stage.name, now()))
        await record_evidence(s, stage.name, report)


async def promote(s: RolloutStatus, by: str) -> None:
    """The candidate becomes stable (idempotent; retried until it succeeds)."""
    await promote_candidate(s, by)
    promoted(s, by)


async def promote_candidate(s: RolloutStatus, by: str) -> None:
    """Run the promote activity: a compare-and-set on this rollout's ownership, retried until it succeeds
    (or is cancelled: a cancelled attempt is waited for, so the caller knows whether it was applied)."""
    by = actor(by)
    outcome = promotion_outcome(s, by)
    change = PromoteVersion(config_key=s.config_key, version=s.candidate_version, by=by,
                            reason=f"rollout promoted: {outcome}"[:500])
    await workflow.execute_activity(
        names.PROMOTE_CANDIDATE, change, result_type=int,
        start_to_close_timeout=names.REGISTRY_TIMEOUT, retry_policy=names.RESTORE_RETRY,
        cancellation_type=WAIT, summary=f"promote v{s.candidate_version} to stable")


def promoted(s: RolloutStatus, by: str) -> None:
    """Record the promotion in the state."""
    s.state, s.outcome = "promoted", promotion_outcome(s, by)
    s.record(Event(at=now(), action="promoted", by=by))


async def restore_once(s: RolloutStatus, by: str, reason: str, undo_promote: bool,
                       retry: RetryPolicy) -> None:
    """One round of the restore activity (idempotent; a compare-and-set on this rollout's ownership)."""
    undo = (s.candidate_version, s.stable_version) if undo_promote and s.stable_version else None
    change = ExposureChange(config_key=s.config_key, by=actor(by), reason=reason[:500], undo_promote=undo)
    await workflow.execute_activity(
        names.RESTORE_STABLE, change, result_type=int,
        start_to_close_timeout=names.REGISTRY_TIMEOUT, retry_policy=retry,
        summary=f"restore stable v{s.stable_version}")


async def restore(s: RolloutStatus, action: Rollback) -> None:
    """Everyone back on stable, whatever happens: shielded, so a second cancellation cannot stop it."""
    by = s.stop.by if s.stop else "canaryflow"
    change = ExposureChange(config_key=s.config_key, by=by, reason=action.reason[:500])
    task = asyncio.ensure_future(workflow.execute_activity(
        names.RESTORE_STABLE, change, result_type=int,
        start_to_close_timeout=names.REGISTRY_TIMEOUT, retry_policy=names.RESTORE_RETRY,
        summary=f"restore stable v{s.stable_version}"))
    try:
        await asyncio.shield(task)
    except BaseException:
        await task  # cancelled again while restoring: the restore itself still runs to its end
    s.record(Event(at=now(), action=f"rollout_{action.outcome}", by=by, detail=action.reason, audit=True))


async def flush_audit(s: RolloutStatus, evidence: list[str] | None = None, signals: bool = True) -> None:
    """Write the events queued for the registry's audit log: every accepted signal (``signal_<name>``, with
    its actor, the stage it applied to and when it was received), refusals, the rollout's end. Histories
    recorded before signals were audited replay with ``signals=False`` (those events are skipped)."""
    if s.audit_dropped:
        gap = AuditRecord(config_key=s.config_key, action="audit_gap", actor="canaryflow",
                          reason=f"{s.audit_dropped} rollout event(s) could not be audited (the workflow "
                                 "received them faster than it could write them); see its history",
                          details={"stage": s.stage, "candidate_version": s.candidate_version})
        await workflow.execute_activity(
            names.RECORD_AUDIT, gap, start_to_close_timeout=names.REGISTRY_TIMEOUT,
            retry_policy=names.REGISTRY_RETRY, summary="audit gap")
        s.audit_dropped = 0
    while s.audit_pending:
        e = s.audit_pending[0]
        accepted_signal = e.accepted and e.action in SIGNALS
        if accepted_signal and not signals:
            s.audit_pending.pop(0)
            continue
        action = f"signal_{e.action}" if accepted_signal else REFUSALS.get(e.action, e.action)
        details = {"stage": e.stage or s.stage, "candidate_version": s.candidate_version,
                   "evidence": evidence or []}
        if signals:
            details["received_at"] = datetime.fromtimestamp(e.at, UTC).isoformat()
        record = AuditRecord(config_key=s.config_key, action=action, actor=actor(e.by, "unknown"),
                             reason=e.detail[:500], details=details)
        await workflow.execute_activity(
            names.RECORD_AUDIT, record, start_to_close_timeout=names.REGISTRY_TIMEOUT,
            retry_policy=names.REGISTRY_RETRY, summary=f"audit {action}")
        s.audit_pending.pop(0)


async def notify(s: RolloutStatus, event: str, text: str, fields: dict[str, str] | None = None) -> None:
    """Tell the plan's webhooks; a failure is logged and never stops the rollout (or its rollback)."""
    if not s.plan.notify:
        return
    info = workflow.info()
    note = Notification(
        targets=s.plan.notify, event=event, text=f"[canaryflow] {text}",
        fields={"config": s.config_key, "candidate": f"v{s.candidate_version}", "stage": s.stage,
                "last verdict": verdict_line(s.last_verdict)[:300], **(fields or {})},
        idempotency_key=f"{info.workflow_id}/{info.first_execution_run_id}/{event}/{s.recorded}")
    try:
        await workflow.execute_activity(
            names.NOTIFY, note, result_type=NotifyResult, start_to_close_timeout=names.NOTIFY_TIMEOUT,
            retry_policy=names.NOTIFY_RETRY, summary=f"notify {event}")
    except ActivityError as err:
        reraise_cancellation(err)
        workflow.logger.warning("notification %s failed; the rollout goes on", event)


__all__ = ["actor", "apply_stage", "cause", "flush_audit", "measure", "notify", "promote",
           "promote_candidate", "promoted", "record_evidence", "replay", "restore", "restore_once",
           "validate"]
