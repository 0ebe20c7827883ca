"""The ``shadow_replay`` activity: replay logged requests against the candidate and score the answers.

Samples recorded requests of the stable version from the traffic log, sends each one's caller messages to
the candidate version (and to stable when the log holds no stable answer) through the provider adapters,
with bounded concurrency and rate, and scores each pair with :mod:`canaryflow.domain.agreement` (and
optionally a judge-model configuration run through the same adapters). Progress — the sampled request
ids, how many are done and the accumulated numbers — is heartbeated after every batch, so a retried
activity on a restarted worker resumes where the last one stopped. Returns numbers only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity

from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.evaluation import VersionStats
from canaryflow.evaluation.replay import Pacer, call_version, judge_pair
from canaryflow.registry import Registry
from canaryflow.registry import traffic as tlog


class ShadowReplayInput(BaseModel):
    """What to replay: ids and numbers only."""

    model_config = ConfigDict(extra="forbid")

    config_key: str
    candidate_version: int
    stable_version: int
    sample: int = Field(default=100, ge=1, le=10_000)
    concurrency: int = Field(default=4, ge=1, le=64)
    rate_per_s: float = Field(default=10.0, gt=0)
    timeout_s: float = Field(default=30.0, gt=0)
    batch: int = Field(default=10, ge=1, le=500)
    judge_config: str | None = Field(default=None, description="key of an LLM-as-judge configuration")
    judge_version: int | None = None
    db_url: str | None = None


class ShadowProgress(BaseModel):
    """Heartbeat details: where a retried attempt resumes."""

    ids: list[str]
    done: int = 0
    skipped: int = 0
    candidate: VersionStats
    stable: VersionStats


class ShadowReplayResult(BaseModel):
    """Counts and score summaries of a replay (no text)."""

    sampled: int
    replayed: int
    skipped: int
    candidate: dict[str, float | int | None]
    stable: dict[str, float | int | None]


def _reference(record: tlog.TrafficRecord) -> str | None:
    text = record.response.get("text") if record.variation != "shadow" else None
    return text if isinstance(text, str) else None


async def _one(inp: ShadowReplayInput, rec: tlog.TrafficRecord, cand: ConfigSpec, stable: ConfigSpec,
               judge: ConfigSpec | None, progress: ShadowProgress, pacer: Pacer) -> None:
    caller: list[dict[str, str]] = list(rec.request.get("messages") or [])
    variables: dict[str, Any] = dict(rec.request.get("variables") or {})
    if not caller:
        progress.skipped += 1
        return
    reference = _reference(rec) if rec.version == inp.stable_version else None
    if reference is None:
        out_s = await pacer.run(lambda: call_version(stable, caller, key=inp.config_key, variables=variables,
                                                     timeout=inp.timeout_s))
        progress.stable.add(out_s)
        if not out_s.ok:
            progress.skipped += 1
            return
        reference = out_s.text
    out_c = await pacer.run(lambda: call_version(cand, caller, key=inp.config_key, variables=variables,
                                                 timeout=inp.timeout_s))
    progress.candidate.add(out_c, reference=reference)
    if judge is not None and out_c.ok:
        ref = reference
        score = await pacer.run(lambda: judge_pair(judge, caller, ref, out_c.text, key=inp.judge_config or "",
                                                   timeout=inp.timeout_s))
        if score is not None:
            progress.candidate.add_judge(score)


def _find_all(registry: Registry, ids: list[str]) -> list[tlog.TrafficRecord | None]:
    return [tlog.find_request(registry, i) for i in ids]


async def replay_shadow(
    inp: ShadowReplayInput,
    registry: Registry,
    *,
    resume: ShadowProgress | None = None,
    heartbeat: Callable[[ShadowProgress], None] = lambda _: None,
) -> ShadowReplayResult:
    """Replay (or resume replaying) a sample of logged requests against the candidate. No Temporal here."""
    cand = (await asyncio.to_thread(registry.get_version, inp.config_key, inp.candidate_version)).spec
    stable = (await asyncio.to_thread(registry.get_version, inp.config_key, inp.stable_version)).spec
    judge = None
    if inp.judge_config:
        judge = (await asyncio.to_thread(registry.get_version, inp.judge_config, inp.judge_version)).spec
    progress = resume
    if progress is None:
        records = await asyncio.to_thread(tlog.sample_traffic, registry, inp.config_key, inp.sample,
                                          inp.stable_version)
        if len(records) < inp.sample:  # top up with other versions' requests (stable is then called too)
            more = await asyncio.to_thread(tlog.sample_traffic, registry, inp.config_key, inp.sample)
            seen = {r.request_id for r in records}
            records += [r for r in more if r.request_id not in seen][: inp.sample - len(records)]
        progress = ShadowProgress(ids=[r.request_id for r in records],
                                  candidate=VersionStats(version=inp.candidate_version),
                                  stable=VersionStats(version=inp.stable_version))
        heartbeat(progress)
    pacer = Pacer(inp.concurrency, inp.rate_per_s)
    while progress.done < len(progress.ids):
        ids = progress.ids[progress.done : progress.done + inp.batch]
        found = await asyncio.to_thread(_find_all, registry, ids)
        recs = [r for r in found if r is not None]
        progress.skipped += len(ids) - len(recs)
        await asyncio.gather(*(_one(inp, r, cand, stable, judge, progress, pacer) for r in recs))
        progress.done += len(ids)
        heartbeat(progress)
    return ShadowReplayResult(sampled=len(progress.ids), replayed=progress.candidate.calls,
                              skipped=progress.skipped, candidate=progress.candidate.summary(),
                              stable=progress.stable.summary())


@activity.defn(name="shadow_replay")
async def shadow_replay(inp: ShadowReplayInput) -> ShadowReplayResult:
    """Temporal activity around :func:`replay_shadow`: resumes from the last heartbeat's details."""
    details = activity.info().heartbeat_details
    resume = ShadowProgress.model_validate(details[0]) if details else None
    registry = await asyncio.to_thread(Registry, inp.db_url)
    return await replay_shadow(inp, registry, resume=resume,
                               heartbeat=lambda p: activity.heartbeat(p.model_dump(mode="json")))


__all__ = ["ShadowProgress", "ShadowReplayInput", "ShadowReplayResult", "replay_shadow", "shadow_replay"]
