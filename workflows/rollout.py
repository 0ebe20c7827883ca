"""RolloutWorkflow: one durable rollout of a candidate version, a thin driver of the pure stage machine.

The run loop asks :func:`canaryflow.domain.stages.decide` what to do and does it: an activity (apply the
stage's exposure, measure the gates, promote — see :mod:`workflows.rollout_effects`), a durable wait (woken
early by any signal), or the end. Signal handlers only change the state
(:func:`canaryflow.domain.rollout_status.apply_signal`); all state is one :class:`RolloutStatus`, returned
whole by the ``status`` query and carried whole through continue-as-new. Any rollback, reject, abort,
cancellation or registry failure past its retries runs the compensation: restore stable (shielded,
idempotent), audit, notify, then fail with a non-retryable ``ApplicationError`` naming the stage and the
evidence (a cancellation ends the workflow as cancelled, after the same compensation).

The invariant (patch ``SAFE_END``): the rollout ends either promoted (candidate stable, no exposure) or
restored (stable unchanged, no exposure), audited. A stop (reject, abort, cancel) cuts short whatever
exposure activity is running — the final promote included: a stop seen before the promote completed wins,
and undoes it. Compensation runs in its own task, shielded from cancellation (a cancellation that arrives
meanwhile is re-raised after it). A restore that keeps failing leaves the workflow running in the visible
``restore_failed`` state (search attribute, current details, a notification), retrying until it applies.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    import pydantic

    from canaryflow.domain.plan import PRESETS_PATCH, RolloutInput, legacy_input
    from canaryflow.domain.rollout_outcome import end_stage
    from canaryflow.domain.rollout_status import (
        LOGIC_VERSION,
        Event,
        PendingApproval,
        RolloutStatus,
        StopRequest,
    )
    from canaryflow.domain.rollout_status import apply_signal as apply_signal_to
    from canaryflow.domain.rollout_view import describe_exposure, details_markdown, percent_of
    from canaryflow.domain.rollout_words import approve_commands
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

from workflows import rollout_effects as fx

T = TypeVar("T")
#: Workflow logic of the "always end safe" release; histories recorded before it replay without it.
SAFE_END = "canaryflow-safe-end-1"


@workflow.defn(name=names.WORKFLOW_TYPE, failure_exception_types=[pydantic.ValidationError])
class RolloutWorkflow:
    """Started as ``--type RolloutWorkflow --task-queue canaryflow --workflow-id rollout-KEY``."""

    @workflow.init
    def __init__(self, input: Any, carried: RolloutStatus | None = None) -> None:
        # The input is validated here, not by the converter: the SDK applies type hints only when the
        # argument count matches, and a message naming the field beats a converter error. The failure
        # itself is raised by run(), so the workflow fails at once (never a retried workflow task).
        self.problem = ""
        if not workflow.patched(PRESETS_PATCH):  # started before the presets' relative margins
            input = legacy_input(input)
        try:  # a preset name is resolved once, by the validate activity (frozen into history)
            self.input = RolloutInput.model_validate(input, context={"preset_resolved_later": True})
        except pydantic.ValidationError as exc:
            self.problem = f"invalid input: {'; '.join(describe(exc))}"
            self.input = RolloutInput(config_key="invalid", candidate_version=1, requested_by="-")
        salt = f"v{self.input.candidate_version}-{workflow.info().first_execution_run_id[:8]}"
        self.s = carried or RolloutStatus(
            config_key=self.input.config_key,
            candidate_version=self.input.candidate_version,
            plan=self.input.provisional_plan(),
            requested_by=self.input.requested_by,
            reason=self.input.reason,
            salt=salt,
        )
        self._shown: tuple[Any, ...] = ()
        self.safe = False
        self._promoting: asyncio.Future[None] | None = None

    @workflow.run
    async def run(self, input: Any, carried: RolloutStatus | None = None) -> RolloutStatus:
        """Validate, walk the stages, and end promoted (completed) or rolled back (failed)."""
        s = self.s
        if self.problem:
            s.outcome = self.problem
            raise ApplicationError(self.problem, type="InvalidRollout", non_retryable=True)
        self.safe = workflow.patched(SAFE_END)
        if not self.safe:
            return await self._run_before_safe_end(carried)
        try:
            if carried is None:
                if workflow.patched(names.PATCH_LOGIC_2):
                    s.logic = LOGIC_VERSION  # bounded state, frozen plan, evidence in the registry
                s.started_at = fx.now()
                s.record(Event(at=s.started_at, action="start", by=s.requested_by, detail=s.reason))
                self._refresh()
                try:
                    target = await fx.validate(s, self.input.plan if s.logic >= 2 else s.plan)
                except ActivityError as err:
                    fx.reraise_cancellation(err)
                    raise ApplicationError(
                        f"invalid rollout: {fx.cause(err)}", type="InvalidRollout", non_retryable=True
                    ) from None
                s.stable_version = target.stable_version
                if s.logic >= 2 and target.plan is not None:
                    s.plan = target.plan  # resolved once; replays read it back from history
                self._check_cancelled()
            try:
                action = await self._drive()
                if isinstance(action, PromoteCandidate):
                    action = await self._promote(action)
            except ActivityError as err:
                fx.reraise_cancellation(err)
                action = Rollback(
                    "rolled_back",
                    f"stage {s.stage}: {err.activity_type or 'activity'} "
                    f"failed after retries: {fx.cause(err)}",
                )
        except asyncio.CancelledError:
            await self._uncancellable(self._compensate(self._cancelled()))
            raise
        if isinstance(action, Rollback):
            await self._uncancellable(self._compensate(action))
            raise self._failure(action)
        await self._uncancellable(self._finish_promoted(), reraise=False)
        return s

    def _cancelled(self) -> Rollback:
        s = self.s
        s.stop = s.stop or StopRequest(kind="cancel", by="temporal", reason="workflow cancelled")
        cancel = decide(s.plan, s, assess(s.plan, s), fx.now())
        assert isinstance(cancel, Rollback)
        return cancel

    def _failure(self, action: Rollback) -> ApplicationError:
        s = self.s
        evidence = f"; evidence: {' | '.join(action.evidence)}" if action.evidence else ""
        return ApplicationError(
            f"{action.reason}{evidence}; stable v{s.stable_version} restored",
            {"stage": s.stage, "outcome": action.outcome, "evidence": action.evidence},
            type="RolledBack" if action.outcome == "rolled_back" else "Aborted",
            non_retryable=True,
        )

    async def _uncancellable(self, work: Awaitable[T], reraise: bool = True) -> T:
        """Run ``work`` to its end in its own task; a cancellation meanwhile is re-raised after it (unless
        ``reraise`` is False: once promoted, a cancellation has nothing left to stop)."""
        task = asyncio.ensure_future(work)
        cancelled = False
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if task.done():
                    break
                cancelled = True
        if cancelled and reraise:
            raise asyncio.CancelledError()
        return task.result()

    async def _unless_stopped(self, work: Awaitable[T]) -> bool:
        """Run ``work`` (an activity of the run loop); a stop that arrives first cancels it (a cancelled
        exposure change is waited for, so nothing lands after the restore). Returns whether it completed
        (its error, if it failed, is raised)."""
        task = asyncio.ensure_future(work)
        try:
            await workflow.wait_condition(lambda: task.done() or self.s.stop is not None)
        except asyncio.CancelledError:
            await self._settle(task)
            raise
        if task.done():
            task.result()
            self._check_cancelled()
            return True
        await self._settle(task)
        return False

    def _check_cancelled(self) -> None:
        """A cancelled exposure activity is waited for; if it completed anyway, the SDK returns its result
        and the workflow's cancellation would be lost: raise it here."""
        if workflow.cancellation_reason() is not None:
            raise asyncio.CancelledError()

    @staticmethod
    async def _settle(task: asyncio.Future[Any]) -> None:
        """Cancel ``task`` and wait until it has ended, whatever it ends with."""
        task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.shield(task)
        while not task.done():
            with contextlib.suppress(BaseException):
                await asyncio.shield(task)

    async def _promote(self, action: PromoteCandidate) -> PromoteCandidate | Rollback:
        """The final promote, under the same stop handling as the stages: a stop seen before the promote
        completed wins (the compensation then undoes the promote if it was applied)."""
        s = self.s
        self._promoting = promoting = asyncio.ensure_future(fx.promote_candidate(s, action.by))
        await workflow.wait_condition(lambda: promoting.done() or s.stop is not None)
        if s.stop is not None:
            await self._settle(promoting)
            stop = decide(s.plan, s, assess(s.plan, s), fx.now())
            assert isinstance(stop, Rollback)
            return stop
        promoting.result()  # a promote that failed (this rollout no longer owns the config) raises here
        self._check_cancelled()
        fx.promoted(s, action.by)
        return action

    async def _finish_promoted(self) -> None:
        s = self.s
        self._refresh()
        await fx.notify(s, "promoted", f"{s.config_key}: {s.outcome}")
        await fx.flush_audit(s, signals=True)
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _run_before_safe_end(self, carried: RolloutStatus | None) -> RolloutStatus:
        """The run loop as it was before ``SAFE_END`` (histories recorded by that release replay here)."""
        s = self.s
        if carried is None:
            if workflow.patched(names.PATCH_LOGIC_2):
                s.logic = LOGIC_VERSION  # bounded state, frozen plan, evidence in the registry
            s.started_at = fx.now()
            s.record(Event(at=s.started_at, action="start", by=s.requested_by, detail=s.reason))
            self._refresh()
            try:
                target = await fx.validate(s, self.input.plan if s.logic >= 2 else s.plan)
            except ActivityError as err:
                raise ApplicationError(
                    f"invalid rollout: {fx.cause(err)}", type="InvalidRollout", non_retryable=True
                ) from None
            s.stable_version = target.stable_version
            if s.logic >= 2 and target.plan is not None:
                s.plan = target.plan  # resolved once; replays read it back from history
        try:
            try:
                action = await self._drive()
            except ActivityError as err:
                fx.reraise_cancellation(err)
                action = Rollback(
                    "rolled_back",
                    f"stage {s.stage}: {err.activity_type or 'activity'} "
                    f"failed after retries: {fx.cause(err)}",
                )
        except asyncio.CancelledError:
            s.stop = StopRequest(kind="cancel", by="temporal", reason="workflow cancelled")
            cancel = decide(s.plan, s, assess(s.plan, s), fx.now())
            assert isinstance(cancel, Rollback)
            await self._compensate(cancel)
            raise
        if isinstance(action, Rollback):
            await self._compensate(action)
            evidence = f"; evidence: {' | '.join(action.evidence)}" if action.evidence else ""
            raise ApplicationError(
                f"{action.reason}{evidence}; stable v{s.stable_version} restored",
                {"stage": s.stage, "outcome": action.outcome, "evidence": action.evidence},
                type="RolledBack" if action.outcome == "rolled_back" else "Aborted",
                non_retryable=True,
            )
        await fx.promote(s, action.by)
        self._refresh()
        await fx.notify(s, "promoted", f"{s.config_key}: {s.outcome}")
        await fx.flush_audit(s, signals=False)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return s

    async def _drive(self) -> PromoteCandidate | Rollback:
        """Ask the stage machine, do what it says, until it says promote or roll back."""
        s, plan = self.s, self.s.plan
        while True:
            await fx.flush_audit(s, signals=self.safe)
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                s.continued += 1
                workflow.continue_as_new(args=[self.input, s])
            now = fx.now()
            action = decide(plan, s, assess(plan, s), now)
            if isinstance(action, PromoteCandidate | Rollback):
                return action
            if isinstance(action, ApplyStage):
                if not await self._step(fx.apply_stage(s, action.index)):
                    continue
                self._refresh()
                stage = plan.stages[action.index]
                await fx.notify(s, "stage_started", f"stage {stage.name} started: {describe_exposure(stage)}")
                await fx.replay(s)
                self._refresh()
            elif isinstance(action, Measure):
                await fx.measure(s)  # writes nothing: a stop is acted on when it returns
                self._refresh()
            elif isinstance(action, Advance):
                s.record(Event(at=now, action="advance", by=action.by, detail=f"{s.stage} done"))
                s.stage_ends.append(end_stage(s, action.by))
                if self.safe:  # the exposure change this approval causes is audited as the approver's
                    s.stage_by = "" if action.by == "gates" else action.by
                s.stage_index, s.approval = action.to, None
                if s.promote is not None and not s.promote.full:
                    s.promote = None
            elif isinstance(action, AwaitApproval):
                asked = s.approval
                changed = s.logic >= 2 and asked is not None and (
                    asked.blocking != action.blocking
                    or (asked.deadline is None) != (action.deadline is None))
                if asked is None or asked.stage != action.stage or changed:
                    s.approval = PendingApproval(stage=action.stage, since=now, deadline=action.deadline,
                                                 why=action.why, blocking=action.blocking)
                    if s.logic >= 2:
                        s.record(Event(at=now, action="decision_asked", detail=action.why))
                    await fx.notify(
                        s, "awaiting_approval", f"approval needed for stage {action.stage}: {action.why}; "
                        f"approve with {approve_commands(s)}"
                    )
                what = f"approval of {action.stage}"
                if s.logic >= 2 and action.why != "stage passed its gates":
                    what = f"a decision on {action.stage}: {action.why}"
                await self._wait(action.until, what)
            elif isinstance(action, Hold):
                if s.approval is not None and not s.approval.held:
                    s.approval.held = True
                    s.record(Event(at=now, action="approval_timeout", detail="holding (plan: hold)"))
                await self._wait(action.until, f"approval of {action.stage} (timed out: holding)")
            else:
                await self._wait(action.until, action.what)

    async def _step(self, work: Awaitable[None]) -> bool:
        """An exposure change of the run loop; with ``SAFE_END`` a stop cuts it short (the cancelled attempt
        is waited for). Returns whether it ran."""
        if not self.safe:
            await work
            return True
        return await self._unless_stopped(work)

    async def _wait(self, until: float | None, what: str) -> None:
        """A durable timer until ``until`` (None: no timer), cut short by any signal."""
        s = self.s
        s.waiting_for = what
        self._refresh()
        seen = s.signals_seen
        timeout = None if until is None else max(until - fx.now(), 0.5)
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: s.signals_seen != seen or workflow.info().is_continue_as_new_suggested(),
                timeout=timeout,
                timeout_summary=what[:200],
            )
        s.waiting_for = ""

    async def _compensate(self, action: Rollback) -> None:
        """Restore stable whatever happens, then audit and notify (neither can undo the restore)."""
        s = self.s
        s.state, s.outcome, s.waiting_for = action.outcome, action.reason, ""  # type: ignore[assignment]
        if self.safe:
            if self._promoting is not None:
                await self._settle(self._promoting)
            await self._restore(action)
        else:
            await fx.restore(s, action)
        self._refresh()
        try:
            await fx.flush_audit(s, evidence=action.evidence, signals=self.safe)
        except ActivityError:
            workflow.logger.warning("audit of the rollback failed; the serving state is restored")
        await fx.notify(
            s,
            "rolled_back",
            f"{s.config_key}: {action.reason}",
            {"evidence": "\n".join(action.evidence[:5]) or "-"},
        )
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _restore(self, action: Rollback) -> None:
        """Restore stable, in rounds of retries, until it applies. Between failed rounds the rollout shows
        ``restore_failed`` (search attribute, current details; notified once) and waits."""
        s = self.s
        by = fx.actor(s.stop.by if s.stop else "canaryflow")
        failed = 0
        while True:
            try:
                await fx.restore_once(s, by, action.reason, undo_promote=self._promoting is not None,
                                      retry=names.RESTORE_ROUND_RETRY)
                break
            except ActivityError as err:
                failed += 1
                s.state = "restore_failed"
                s.waiting_for = (f"restore of stable v{s.stable_version} ({failed} failed round(s): "
                                 f"{fx.cause(err)[:200]}); retrying")
                self._refresh()
                if failed == 1:
                    text = (f"{s.config_key}: stable v{s.stable_version} could not be restored yet "
                            f"({fx.cause(err)[:200]}); retrying until it applies")
                    await fx.notify(s, "restore_failed", text)
                await workflow.sleep(names.RESTORE_PAUSE, summary="wait before the next restore round")
        s.state, s.waiting_for = action.outcome, ""  # type: ignore[assignment]
        s.record(Event(at=fx.now(), action=f"rollout_{action.outcome}", by=by, detail=action.reason,
                       audit=True))

    def _refresh(self) -> None:
        """Keep the state, the search attributes and the current details (markdown) current."""
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
        workflow.set_current_details(details_markdown(s, fx.now()))

    # --- messages -------------------------------------------------------------------------------
    @workflow.query(name="status", description="The whole state of the rollout (JSON)")
    def status(self) -> RolloutStatus:
        """The whole state: stage, exposure, state, verdicts with evidence, pending approval, who did what."""
        return self.s

    def _signal(self, name: str, payload: Any) -> None:
        apply_signal_to(self.s, name, payload, fx.now())
        if not self.s.terminal:
            self._refresh()

    @workflow.signal(
        name="approve",
        description='Approve the waiting stage: {"by": "alice", "stage": "beta", "comment": "..."}',
    )
    def approve(self, payload: Any = None) -> None:
        """``{"by": "alice", "stage": "beta", "comment": "..."}``"""
        self._signal("approve", payload)

    @workflow.signal(
        name="reject",
        description='Reject: restore stable now, end rolled back: {"by": "alice", "reason": "..."}',
    )
    def reject(self, payload: Any = None) -> None:
        """``{"by": "alice", "reason": "..."}``"""
        self._signal("reject", payload)

    @workflow.signal(
        name="pause",
        description='Stop advancing (a failing gate still rolls back): {"by": "alice", "reason": "..."}',
    )
    def pause(self, payload: Any = None) -> None:
        """``{"by": "alice", "reason": "..."}``"""
        self._signal("pause", payload)

    @workflow.signal(
        name="resume",
        description='Advance again after a pause: {"by": "alice"}',
    )
    def resume(self, payload: Any = None) -> None:
        """``{"by": "alice"}``"""
        self._signal("resume", payload)

    @workflow.signal(
        name="abort",
        description='Restore stable now, end aborted: {"by": "alice", "reason": "..."}',
    )
    def abort(self, payload: Any = None) -> None:
        """``{"by": "alice", "reason": "..."}``"""
        self._signal("abort", payload)

    @workflow.signal(
        name="promote",
        description='Skip the rest of this stage; full: stable now: {"by": "alice", "full": true}',
    )
    def promote(self, payload: Any = None) -> None:
        """``{"by": "alice", "full": true}``"""
        self._signal("promote", payload)


__all__ = ["RolloutWorkflow"]
