"""The ``shadow_replay`` activity: a few lines around :func:`canaryflow.evaluation.shadow.replay_shadow`.

Samples recorded requests from the traffic log and replays them against the candidate through the provider
adapters with bounded concurrency and rate, scoring each answer against stable's. Progress is heartbeated
after every batch; a retried attempt (e.g. on a restarted worker) resumes from the last heartbeat's
details. Returns numbers only; :func:`canaryflow.evaluation.shadow.judge_replay` turns them into gate
measurements.
"""

from __future__ import annotations

import asyncio
import time

from temporalio import activity

from canaryflow.domain.analysis import AnalysisReport
from canaryflow.evaluation.shadow import (
    ShadowProgress,
    ShadowReplayInput,
    ShadowReplayResult,
    judge_replay,
    replay_shadow,
)
from canaryflow.registry import Registry
from canaryflow.temporal.messages import ShadowReplayStage


@activity.defn(name="shadow_replay")
async def shadow_replay(inp: ShadowReplayInput) -> ShadowReplayResult:
    """Replay a sample of logged requests against the candidate, resuming from the last heartbeat."""
    details = activity.info().heartbeat_details
    resume = ShadowProgress.model_validate(details[0]) if details else None
    registry = await asyncio.to_thread(Registry, inp.db_url)
    return await replay_shadow(inp, registry, resume=resume,
                               heartbeat=lambda p: activity.heartbeat(p.model_dump(mode="json")))


@activity.defn(name="shadow_replay_stage")
async def shadow_replay_stage(req: ShadowReplayStage) -> AnalysisReport:
    """A shadow stage's replay, judged on its gates: a report the workflow adds to the stage's analyses.

    With no logged traffic yet there is nothing to replay: the report is empty and the stage relies on
    mirrored live traffic alone.
    """
    inp = ShadowReplayInput(config_key=req.config_key, candidate_version=req.candidate_version,
                            stable_version=req.stable_version, sample=req.sample)
    result = await shadow_replay(inp)
    if result.sampled == 0:
        return AnalysisReport(at=time.time(), measurements=[])
    return judge_replay(req.gates, result, at=time.time())


__all__ = ["ShadowProgress", "ShadowReplayInput", "ShadowReplayResult", "judge_replay", "replay_shadow",
           "shadow_replay", "shadow_replay_stage"]
