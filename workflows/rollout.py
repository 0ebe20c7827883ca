"""RolloutWorkflow: one durable rollout of a candidate version, a thin driver of the pure stage machine.

The run loop asks :func:`canaryflow.domain.stages.decide` what to do and does it: an activity (apply the
stage's exposure, measure the gates, promote), a durable wait (woken early by any signal), or the end.
Signal handlers only change the state (:func:`canaryflow.domain.rollout_status.apply_signal`); all state is
one :class:`RolloutStatus`, returned whole by the ``status`` query and carried whole through
continue-as-new. Any rollback, reject, abort, cancellation or registry failure past its retries runs the
compensation: restore stable (shielded, idempotent), audit, notify, then fail with a non-retryable
``ApplicationError`` naming the stage and the evidence.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    import pydantic

    from canaryflow.domain.analysis import AnalysisReport, AnalysisRequest
    from canaryflow.domain.gates import Evidence, Measurement, Verdict
    from canaryflow.domain.plan import RolloutInput
    from canaryflow.domain.rollout_status import (
        Event,
        PendingApproval,
        RolloutStatus,
        StopRequest,
        apply_signal,
    )
    from canaryflow.domain.rollout_view import (
        describe_exposure,
        details_markdown,
        exposure_for,
        percent_of,
        verdict_line,
    )
    from canaryflow.domain.stages import (
        Advance,
        ApplyStage,
        AwaitApproval,
        Hold,
        Measure,
        PromoteCandidate,
        Rollback,
        assess,
        decide,
    )
    from canaryflow.domain.validation import describe
    from canaryflow.temporal import names
    from canaryflow.temporal.messages import (
        AuditRecord,
        ExposureChange,
        Notification,
        NotifyResult,
        PromoteVersion,
        RolloutTarget,
        ValidateRollout,
    )


def _cause(err: ActivityError) -> str:
    """The activity's own error message (not the chain behind it)."""
    cause = err.cause
    if isinstance(cause, FailureError):
        return cause.message
    return str(cause or err)


@workflow.defn(name=names.WORKFLOW_TYPE, failure_exception_types=[pydantic.ValidationError])
class RolloutWorkflow:
    """Started as ``--type RolloutWorkflow --task-queue canaryflow --workflow-id rollout-KEY``."""

    @workflow.init
    def __init__(self, input: Any, carried: RolloutStatus | None = None) -> None:
        # The input is validated here, not by the converter: the SDK applies type hints only when the
        # argument count matches, and a message naming the field beats a converter error.
        try:
            self.input = RolloutInput.model_validate(input)
        except pydantic.ValidationError as exc:
            raise ApplicationError(f"invalid input: {'; '.join(describe(exc))}", type="InvalidRollout",
                                   non_retryable=True) from None
        info = workflow.info()
        self.s = carried or RolloutStatus(
            config_key=self.input.config_key,
            candidate_version=self.input.candidate_version,
            plan=self.input.resolved_plan(),
            requested_by=self.input.requested_by,
            reason=self.input.reason,
            salt=f"v{self.input.candidate_version}-{info.first_execution_run_id[:8]}",
        )
        self._shown: tuple[Any, ...] = ()

    @workflow.run
    async def run(self, input: Any, carried: RolloutStatus | None = None) -> RolloutStatus:
        """Validate, walk the stages, and end promoted (completed) or rolled back (failed)."""
        s = self.s
        if carried is None:
            s.started_at = self._now()
            s.record(Event(at=s.started_at, action="start", by=s.requested_by, detail=s.reason))
            self._refresh()
            try:
                target = await workflow.execute_activity(
                    names.VALIDATE_ROLLOUT,
                    ValidateRollout(
                        config_key=s.config_key, candidate_version=s.candidate_version, plan=s.plan
                    ),
                    result_type=RolloutTarget,
                    start_to_close_timeout=names.REGISTRY_TIMEOUT,
                    retry_policy=names.REGISTRY_RETRY,
                    summary=f"validate {s.config_key} v{s.candidate_version} and the plan",
                )
            except ActivityError as err:
                raise ApplicationError(
                    f"invalid rollout: {_cause(err)}", type="InvalidRollout", non_retryable=True
                ) from None
            s.stable_version = target.stable_version
        try:
            action = await self._drive()
        except asyncio.CancelledError:
            s.stop = StopRequest(kind="cancel", by="temporal", reason="workflow cancelled")
            cancel = decide(s.plan, s, assess(s.plan, s), self._now())
            assert isinstance(cancel, Rollback)
            await self._compensate(cancel)
            raise
        except ActivityError as err:
            action = Rollback(
                "rolled_back",
                f"stage {s.stage}: {err.activity_type or 'activity'} failed after retries: {_cause(err)}",
            )
        if isinstance(action, Rollback):
            await self._compensate(action)
            evidence = f"; evidence: {' | '.join(action.evidence)}" if action.evidence else ""
            raise ApplicationError(
                f"{action.reason}{evidence}; stable v{s.stable_version} restored",
                {"stage": s.stage, "outcome": action.outcome, "evidence": action.evidence},
                type="RolledBack" if action.outcome == "rolled_back" else "Aborted",
                non_retryable=True,
            )
        await self._promote(action)
        return s

    # --- the loop -------------------------------------------------------------------------------
    async def _drive(self) -> PromoteCandidate | Rollback:
        s, plan = self.s, self.s.plan
        while True:
            await self._flush_audit()
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                s.continued += 1
                workflow.continue_as_new(args=[self.input, s])
            now = self._now()
            action = decide(plan, s, assess(plan, s), now)
            if isinstance(action, PromoteCandidate | Rollback):
                return action
            if isinstance(action, ApplyStage):
                await self._apply(action.index)
            elif isinstance(action, Measure):
                await self._measure()
            elif isinstance(action, Advance):
                s.record(Event(at=now, action="advance", by=action.by, detail=f"{s.stage} done"))
                s.stage_index, s.approval = action.to, None
                if s.promote is not None and not s.promote.full:
                    s.promote = None
            elif isinstance(action, AwaitApproval):
                if s.approval is None or s.approval.stage != action.stage:
                    s.approval = PendingApproval(
                        stage=action.stage, since=now, deadline=action.deadline, why=action.why
                    )
                    await self._notify(
                        "awaiting_approval", f"approval needed for stage {action.stage}: {action.why}"
                    )
                await self._wait(action.until, f"approval of {action.stage}")
            elif isinstance(action, Hold):
                if s.approval is not None and not s.approval.held:
                    s.approval.held = True
                    s.record(Event(at=now, action="approval_timeout", detail="holding (plan: hold)"))
                await self._wait(action.until, f"approval of {action.stage} (timed out: holding)")
            else:
                await self._wait(action.until, action.what)

    async def _wait(self, until: float | None, what: str) -> None:
        s = self.s
        s.waiting_for = what
        self._refresh()
        seen = s.signals_seen
        timeout = None if until is None else max(until - self._now(), 0.5)
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: s.signals_seen != seen or workflow.info().is_continue_as_new_suggested(),
                timeout=timeout,
                timeout_summary=what[:200],
            )
        s.waiting_for = ""

    # --- effects --------------------------------------------------------------------------------
    async def _apply(self, index: int) -> None:
        s = self.s
        stage = s.plan.stages[index]
        exposure = exposure_for(s, index)
        await workflow.execute_activity(
            names.APPLY_EXPOSURE,
            ExposureChange(
                config_key=s.config_key,
                exposure=exposure,
                by=s.requested_by,
                reason=f"rollout stage {stage.name}",
            ),
            result_type=int,
            start_to_close_timeout=names.REGISTRY_TIMEOUT,
            retry_policy=names.REGISTRY_RETRY,
            summary=f"expose v{s.candidate_version}: {describe_exposure(stage)}",
        )
        now = self._now()
        s.applied_stage, s.stage_started_at, s.reports, s.last_analysis_at = index, now, [], None
        s.record(Event(at=now, action="stage_started", by=s.requested_by, detail=stage.name))
        self._refresh()
        await self._notify("stage_started", f"stage {stage.name} started: {describe_exposure(stage)}")

    async def _measure(self) -> None:
        s = self.s
        stage = s.plan.stages[s.stage_index]
        gates = s.plan.gates_for(s.stage_index)
        assert s.stage_started_at is not None
        request = AnalysisRequest(
            config_key=s.config_key,
            stable_version=s.stable_version or 0,
            candidate_version=s.candidate_version,
            stage=stage.name,
            stage_kind=stage.kind,
            window_start=s.stage_started_at,
            gates=gates,
            min_samples=stage.min_samples,
        )
        try:
            report = await workflow.execute_activity(
                names.ANALYZE_STAGE,
                request,
                result_type=AnalysisReport,
                start_to_close_timeout=names.ANALYSIS_TIMEOUT,
                retry_policy=names.ANALYSIS_RETRY,
                summary=f"measure {len(gates)} gate(s) of {stage.name}",
            )
        except ActivityError as err:  # analysis as data: an ERROR measurement, counted against the limit
            now = self._now()
            report = AnalysisReport(
                at=now,
                measurements=[
                    Measurement(
                        gate=g.label,
                        verdict=Verdict.ERROR,
                        at=now,
                        dry_run=g.dry_run,
                        evidence=Evidence(note=f"analysis failed: {_cause(err)[:200]}"),
                    )
                    for g in gates
                ],
            )
        s.add_report(report)
        s.last_analysis_at = self._now()
        s.add_verdict(assess(s.plan, s).record(stage.name, s.last_analysis_at))
        self._refresh()

    async def _promote(self, action: PromoteCandidate) -> None:
        s = self.s
        await workflow.execute_activity(
            names.PROMOTE_CANDIDATE,
            PromoteVersion(
                config_key=s.config_key,
                version=s.candidate_version,
                by=action.by,
                reason=f"rollout promoted by {action.by}",
            ),
            result_type=int,
            start_to_close_timeout=names.REGISTRY_TIMEOUT,
            retry_policy=names.RESTORE_RETRY,
            summary=f"promote v{s.candidate_version} to stable",
        )
        s.state, s.outcome = "promoted", f"v{s.candidate_version} is stable (promoted by {action.by})"
        s.record(Event(at=self._now(), action="promoted", by=action.by))
        self._refresh()
        await self._notify("promoted", f"{s.config_key}: {s.outcome}")
        await self._flush_audit()
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _compensate(self, action: Rollback) -> None:
        """Restore stable whatever happens (shielded from a second cancellation), audit, notify."""
        s = self.s
        s.state, s.outcome, s.waiting_for = action.outcome, action.reason, ""  # type: ignore[assignment]
        restore = asyncio.ensure_future(
            workflow.execute_activity(
                names.RESTORE_STABLE,
                ExposureChange(
                    config_key=s.config_key,
                    by=s.stop.by if s.stop else "canaryflow",
                    reason=action.reason[:500],
                ),
                result_type=int,
                start_to_close_timeout=names.REGISTRY_TIMEOUT,
                retry_policy=names.RESTORE_RETRY,
                summary=f"restore stable v{s.stable_version}",
            )
        )
        try:
            await asyncio.shield(restore)
        except BaseException:
            await restore  # cancelled again while restoring: the restore itself still runs to its end
        s.record(
            Event(
                at=self._now(),
                action=f"rollout_{action.outcome}",
                by=s.stop.by if s.stop else "canaryflow",
                detail=action.reason,
                audit=True,
            )
        )
        self._refresh()
        try:
            await self._flush_audit(evidence=action.evidence)
        except ActivityError:
            workflow.logger.warning("audit of the rollback failed; the serving state is restored")
        await self._notify(
            "rolled_back",
            f"{s.config_key}: {action.reason}",
            {"evidence": "\n".join(action.evidence[:5]) or "-"},
        )
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _flush_audit(self, evidence: list[str] | None = None) -> None:
        s = self.s
        while s.audit_pending:
            e = s.audit_pending[0]
            action = {"approve": "approval_refused", "promote": "promotion_refused"}.get(e.action, e.action)
            await workflow.execute_activity(
                names.RECORD_AUDIT,
                AuditRecord(
                    config_key=s.config_key,
                    action=action,
                    actor=e.by or "unknown",
                    reason=e.detail[:500],
                    details={
                        "stage": s.stage,
                        "candidate_version": s.candidate_version,
                        "evidence": evidence or [],
                    },
                ),
                start_to_close_timeout=names.REGISTRY_TIMEOUT,
                retry_policy=names.REGISTRY_RETRY,
                summary=f"audit {action}",
            )
            s.audit_pending.pop(0)

    async def _notify(self, event: str, text: str, fields: dict[str, str] | None = None) -> None:
        s = self.s
        if not s.plan.notify:
            return
        info = workflow.info()
        note = Notification(
            targets=s.plan.notify,
            event=event,
            text=f"[canaryflow] {text}",
            fields={
                "config": s.config_key,
                "candidate": f"v{s.candidate_version}",
                "stage": s.stage,
                "last verdict": verdict_line(s.last_verdict)[:300],
                **(fields or {}),
            },
            idempotency_key=f"{info.workflow_id}/{info.first_execution_run_id}/{event}/{len(s.events)}",
        )
        try:
            await workflow.execute_activity(
                names.NOTIFY,
                note,
                result_type=NotifyResult,
                start_to_close_timeout=names.NOTIFY_TIMEOUT,
                retry_policy=names.NOTIFY_RETRY,
                summary=f"notify {event}",
            )
        except ActivityError:
            workflow.logger.warning("notification %s failed; the rollout goes on", event)

    # --- UI -------------------------------------------------------------------------------------
    def _refresh(self) -> None:
        """Keep the state, the search attributes and the current details current."""
        s = self.s
        if not s.terminal:
            s.state = "paused" if s.paused_by else "awaiting_approval" if s.approval else "running"
        shown = (s.stage, percent_of(s), s.state)
        if shown != self._shown:
            self._shown = shown
            workflow.upsert_search_attributes(
                [
                    names.SA_CONFIG_KEY.value_set(s.config_key),
                    names.SA_STAGE.value_set(shown[0]),
                    names.SA_PERCENT.value_set(shown[1]),
                    names.SA_STATE.value_set(shown[2]),
                ]
            )
        workflow.set_current_details(details_markdown(s))

    def _now(self) -> float:
        return workflow.now().timestamp()

    # --- messages -------------------------------------------------------------------------------
    @workflow.query(name="status")
    def status(self) -> RolloutStatus:
        """The whole state: stage, exposure, state, verdicts with evidence, pending approval, who did what."""
        return self.s

    def _signal(self, name: str, payload: Any) -> None:
        apply_signal(self.s, name, payload, self._now())
        if not self.s.terminal:
            self._refresh()

    @workflow.signal(name="approve")
    def approve(self, payload: Any = None) -> None:
        """``{"by": "alice", "stage": "beta", "comment": "..."}``"""
        self._signal("approve", payload)

    @workflow.signal(name="reject")
    def reject(self, payload: Any = None) -> None:
        """``{"by": "alice", "reason": "..."}``"""
        self._signal("reject", payload)

    @workflow.signal(name="pause")
    def pause(self, payload: Any = None) -> None:
        """``{"by": "alice", "reason": "..."}``"""
        self._signal("pause", payload)

    @workflow.signal(name="resume")
    def resume(self, payload: Any = None) -> None:
        """``{"by": "alice"}``"""
        self._signal("resume", payload)

    @workflow.signal(name="abort")
    def abort(self, payload: Any = None) -> None:
        """``{"by": "alice", "reason": "..."}``"""
        self._signal("abort", payload)

    @workflow.signal(name="promote")
    def promote(self, payload: Any = None) -> None:
        """``{"by": "alice", "full": true}``"""
        self._signal("promote", payload)


__all__ = ["RolloutWorkflow"]
