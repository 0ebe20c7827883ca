"""Shadow replay: replay logged requests against the candidate and score the answers (no Temporal here).

Samples recorded requests of the stable version from the traffic log, sends each one's caller messages to
the candidate version (and to stable when the log holds no stable answer) through the provider adapters,
with bounded concurrency and rate, and scores each pair with :mod:`canaryflow.domain.agreement` (and
optionally a judge-model configuration run through the same adapters). The candidate's deterministic
online evaluators score each replayed answer and stable's answer to the same request (results stored in the
registry with ``source="replay"``; their counts feed ``eval_pass_rate`` gates). Progress — the sampled
request ids, how many are done and the accumulated numbers — is heartbeated after every batch, so a retried
activity on a restarted worker resumes where the last one stopped. Returns numbers only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from canaryflow.domain.analysis import AnalysisReport
from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.evaluation import CallOutcome, VersionStats
from canaryflow.domain.evaluators import (
    CompiledEvaluator,
    EvaluatorContext,
    Sample,
    ScorerRegistry,
    compile_evaluators,
)
from canaryflow.domain.gates import Gate, Measurement
from canaryflow.domain.judge import judge_floor, judge_rate, judge_ratio
from canaryflow.errors import CanaryflowError
from canaryflow.evaluation.replay import Pacer, call_version, judge_pair
from canaryflow.registry import Registry
from canaryflow.registry import evaluations as eval_rows
from canaryflow.registry import traffic as tlog
from canaryflow.serving.client import Client
from canaryflow.serving.judges import JudgeScorers
from canaryflow.serving.traffic import TrafficPlane

EvalCounts = dict[str, list[float]]
"""``{"candidate/<evaluator>": [scored, passed, score sum], "stable/<evaluator>": [...]}``."""


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
    logged: VersionStats | None = None
    evals: EvalCounts = Field(default_factory=dict)


class ShadowReplayResult(BaseModel):
    """Counts and score summaries of a replay (no text)."""

    sampled: int
    replayed: int
    skipped: int
    candidate: dict[str, float | int | None]
    stable: dict[str, float | int | None]
    logged: dict[str, float | int | None] = Field(default_factory=dict)
    evals: EvalCounts = Field(default_factory=dict, description="online evaluators' counts per side")


def _reference(record: tlog.TrafficRecord) -> str | None:
    text = record.response.get("text") if record.variation != "shadow" else None
    return text if isinstance(text, str) else None


def _has_usage(rec: tlog.TrafficRecord) -> bool:
    """The log entry carries latency and token counts (a missing count must not read as zero)."""
    return rec.latency_ms is not None and rec.input_tokens is not None and rec.output_tokens is not None


@dataclass
class _Scoring:
    """The candidate's evaluators and the results of the current batch (stored after it)."""

    evaluators: tuple[CompiledEvaluator, ...]
    rows: list[eval_rows.EvaluationResult] = field(default_factory=list)


async def _score(inp: ShadowReplayInput, scoring: _Scoring, progress: ShadowProgress, request_id: str,
                 side: str, text: str, finish_reason: str | None, caller: Sequence[dict[str, str]] = (),
                 reference: str | None = None) -> None:
    version = inp.candidate_version if side == "candidate" else inp.stable_version
    variation = "shadow" if side == "candidate" else "stable"
    sample = Sample(request_id, inp.config_key, version, variation, "none", text, source="replay",
                    finish_reason=finish_reason or "stop", messages=tuple(caller), reference=reference)
    for ev in scoring.evaluators:
        if ev.scorer is None:
            continue
        try:
            scores = await ev.scorer.score(sample)
        except CanaryflowError:  # a judge over its budget, failing or answering off its schema: unscored
            continue
        for sc in scores:
            counts = progress.evals.setdefault(f"{side}/{sc.evaluator}", [0.0, 0.0, 0.0])
            counts[0] += 1
            counts[1] += sc.passed
            counts[2] += sc.score
            scoring.rows.append(eval_rows.EvaluationResult(
                request_id, inp.config_key, version, variation, "none", sc.evaluator, "replay", sc.score,
                sc.passed, sc.label, sc.reason))


async def _one(inp: ShadowReplayInput, rec: tlog.TrafficRecord, cand: ConfigSpec, stable: ConfigSpec,
               judge: ConfigSpec | None, progress: ShadowProgress, pacer: Pacer,
               scoring: _Scoring | None = None) -> None:
    caller: list[dict[str, str]] = list(rec.request.get("messages") or [])
    variables: dict[str, Any] = dict(rec.request.get("variables") or {})
    if not caller:
        progress.skipped += 1
        return
    reference = _reference(rec) if rec.version == inp.stable_version else None
    if reference is not None and progress.logged is not None and _has_usage(rec):
        progress.logged.add(CallOutcome(
            ok=True, text="", latency_s=(rec.latency_ms or 0.0) / 1000.0, input_tokens=rec.input_tokens or 0,
            output_tokens=rec.output_tokens or 0, cost_usd=rec.cost_usd or 0.0))
    if reference is None:
        out_s = await pacer.run(lambda: call_version(stable, caller, key=inp.config_key, variables=variables,
                                                     timeout=inp.timeout_s))
        progress.stable.add(out_s)
        if not out_s.ok:
            progress.skipped += 1
            return
        reference = out_s.text
        finish = out_s.finish_reason
    else:
        finish = rec.response.get("finish_reason")
    out_c = await pacer.run(lambda: call_version(cand, caller, key=inp.config_key, variables=variables,
                                                 timeout=inp.timeout_s))
    progress.candidate.add(out_c, reference=reference)
    if scoring is not None and scoring.evaluators and out_c.ok:
        await _score(inp, scoring, progress, rec.request_id, "stable", reference,
                     finish if isinstance(finish, str) else None, caller)
        await _score(inp, scoring, progress, rec.request_id, "candidate", out_c.text, out_c.finish_reason,
                     caller, reference)  # a pairwise judge compares the two
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
                                  stable=VersionStats(version=inp.stable_version),
                                  logged=VersionStats(version=inp.stable_version))
        heartbeat(progress)
    pacer = Pacer(inp.concurrency, inp.rate_per_s)
    fmt = cand.response_format
    scorers, plane = ScorerRegistry(), None
    if any(e.is_judge for e in cand.evaluators or ()):  # judges call their configs through a traffic plane
        plane = TrafficPlane(Client(registry))
        JudgeScorers(plane).register(scorers)
    scoring = _Scoring(compile_evaluators(cand.evaluators or (), EvaluatorContext(
        inp.config_key, inp.candidate_version, None if fmt is None else fmt.json_schema), scorers))
    try:
        return await _replay(inp, registry, progress, cand, stable, judge, pacer, scoring, heartbeat)
    finally:
        if plane is not None:
            await plane.close()


async def _replay(inp: ShadowReplayInput, registry: Registry, progress: ShadowProgress, cand: ConfigSpec,
                  stable: ConfigSpec, judge: ConfigSpec | None, pacer: Pacer, scoring: _Scoring,
                  heartbeat: Callable[[ShadowProgress], None]) -> ShadowReplayResult:
    while progress.done < len(progress.ids):
        ids = progress.ids[progress.done : progress.done + inp.batch]
        found = await asyncio.to_thread(_find_all, registry, ids)
        recs = [r for r in found if r is not None]
        progress.skipped += len(ids) - len(recs)
        await asyncio.gather(*(_one(inp, r, cand, stable, judge, progress, pacer, scoring) for r in recs))
        if scoring.rows:
            batch, scoring.rows = scoring.rows, []
            await asyncio.to_thread(eval_rows.add_results, registry, batch)
        progress.done += len(ids)
        heartbeat(progress)
    return ShadowReplayResult(sampled=len(progress.ids), replayed=progress.candidate.calls,
                              skipped=progress.skipped, candidate=progress.candidate.summary(),
                              stable=progress.stable.summary(),
                              logged=progress.logged.summary() if progress.logged is not None else {},
                              evals=progress.evals)


_QUANTILE_KEYS = {f"latency_{q}": f"latency_{q}_s" for q in ("p50", "p95", "p99")}
_MEAN_KEYS = {"cost_per_request": "cost_per_request", "tokens_per_request": "tokens_per_request"}


def _num(row: dict[str, float | int | None], key: str) -> float | None:
    v = row.get(key)
    return None if v is None else float(v)


def judge_replay(gates: Sequence[Gate], result: ShadowReplayResult, at: float) -> AnalysisReport:
    """Judge a shadow stage's gates on a replay's numbers (what the replay cannot measure is left out).

    ``shadow_agreement`` is the candidate's mean agreement with stable's answers; latency quantiles, cost
    and tokens per request compare the candidate's replayed calls with stable's (its replayed calls, or
    else the logged numbers of the sampled requests); ``error_rate`` compares the candidate's replayed
    calls with stable's replayed calls when stable was called, else with the sampled log entries (which
    are successful requests, so the comparison leans towards failing the candidate); ``eval_pass_rate``
    compares the share of the candidate's replayed answers passing its evaluator with the share of stable's
    answers to the same requests (logged or replayed) passing it.
    """
    cand = result.candidate
    stable = result.stable if (result.stable.get("calls") or 0) else result.logged
    calls_c, calls_s = float(cand.get("calls") or 0), float(stable.get("calls") or 0)
    ok_c = calls_c - calls_c * float(cand.get("error_rate") or 0.0)
    ok_s = calls_s - calls_s * float(stable.get("error_rate") or 0.0)
    out: list[Measurement] = []
    for gate in gates:
        if gate.metric == "shadow_agreement":
            out.append(judge_floor(gate, value=_num(cand, "agreement"), samples=ok_c, at=at))
        elif gate.metric == "error_rate":
            out.append(judge_rate(gate, cand_events=calls_c - ok_c, cand_total=calls_c,
                                  stable_events=calls_s - ok_s, stable_total=calls_s, at=at))
        elif gate.metric == "eval_pass_rate":  # the candidate's evaluator on both sides' answers
            c = result.evals.get(f"candidate/{gate.evaluator}", [0.0, 0.0, 0.0])
            s = result.evals.get(f"stable/{gate.evaluator}", [0.0, 0.0, 0.0])
            out.append(judge_rate(gate, cand_events=c[1], cand_total=c[0], stable_events=s[1],
                                  stable_total=s[0], at=at, higher_is_better=True))
        elif gate.metric in _QUANTILE_KEYS or gate.metric in _MEAN_KEYS:
            key = _QUANTILE_KEYS.get(gate.metric) or _MEAN_KEYS[gate.metric]
            out.append(judge_ratio(gate, cand_value=_num(cand, key), stable_value=_num(stable, key),
                                   cand_samples=ok_c, stable_samples=ok_s, at=at))
    return AnalysisReport(at=at, measurements=out, candidate_samples=calls_c, stable_samples=calls_s)


__all__ = ["ShadowProgress", "ShadowReplayInput", "ShadowReplayResult", "judge_replay", "replay_shadow"]
