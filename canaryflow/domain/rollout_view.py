"""How a rollout's state reads: the exposure a stage asks for, and the short texts the Temporal UI and the
CLI show (current details as a markdown table, one-line summaries)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from canaryflow.domain.plan import Stage
from canaryflow.domain.rollout_status import RolloutStatus, VerdictRecord
from canaryflow.domain.rollout_words import approve_commands, gate_lines, waiting_words
from canaryflow.domain.serving import Exposure


def exposure_for(status: RolloutStatus, index: int) -> Exposure:
    """The exposure stage ``index`` applies (the salt is fixed per rollout: raising 5 % → 10 % only adds)."""
    stage = status.plan.stages[index]
    return Exposure(
        candidate_version=status.candidate_version,
        stage=stage.name,
        stage_kind=stage.kind,
        segments=list(stage.segments or []),
        percent=stage.percent if stage.percent is not None else (100.0 if stage.kind == "full" else 0.0),
        shadow_fraction=stage.fraction if stage.kind == "shadow" else 0.0,
        holdback=stage.holdback or 0.0,
        salt=status.salt,
    )


def describe_exposure(stage: Stage) -> str:
    """``shadow 20 %``, ``segments internal, beta``, ``5 %``, ``everyone``."""
    if stage.kind == "shadow":
        return f"shadow {stage.fraction * 100:g} % of traffic"
    if stage.kind == "segments":
        held = f" ({stage.holdback * 100:g} % of their users held back on stable)" if stage.holdback else ""
        return "segments " + ", ".join(stage.segments or []) + held
    if stage.kind == "percent":
        return f"{stage.percent:g} % of users"
    return "everyone"


def percent_of(status: RolloutStatus) -> float:
    """The share of users the candidate serves now (the ``CanaryflowPercent`` search attribute)."""
    if status.applied_stage < 0 or status.state in ("promoted", "rolled_back", "aborted"):
        return 100.0 if status.state == "promoted" else 0.0
    stage = status.plan.stages[status.applied_stage]
    return stage.percent if stage.percent is not None else (100.0 if stage.kind == "full" else 0.0)


def clock(ts: float | None) -> str:
    """Epoch seconds as ``2026-11-25 17:03:12 UTC``."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def verdict_line(record: VerdictRecord | None) -> str:
    """``PASS (n=412/7800): error_rate PASS candidate 0.01 vs stable 0.012 ...`` (short)."""
    if record is None:
        return "not measured yet"
    head = f"{record.verdict.value} (n={record.candidate_samples:g}/{record.stable_samples:g})"
    lines = record.lines()
    return head + (": " + "; ".join(lines[:4]) if lines else "")


def verdict_brief(record: VerdictRecord | None) -> str:
    """``PASS n=412/7800 · error_rate PASS 0.011 vs 0.010 · latency_p95 INCONCLUSIVE 1.2 vs 1.1``."""
    if record is None:
        return "not measured yet"
    parts = [f"{record.verdict.value} n={record.candidate_samples:g}/{record.stable_samples:g}"]
    for g in record.gates:
        e = g.last.evidence if g.last is not None else None
        numbers = "" if e is None or e.candidate_value is None else (
            f" {e.candidate_value:.3g} vs {'n/a' if e.stable_value is None else f'{e.stable_value:.3g}'}")
        parts.append(f"{g.gate} {g.verdict.value}{numbers}")
    return " · ".join(parts)


def _plain(text: str) -> str:
    """A table cell the UI's markdown shows as written: no column breaks, and no ``$…$`` read as maths
    (amounts in dollars are written ``5.6e-06 USD``)."""
    return re.sub(r"\$(\d[\d.,]*(?:e[+-]?\d+)?)", r"\1 USD", text).replace("$", "USD").replace("|", "/")


def details_markdown(status: RolloutStatus, now: float | None = None) -> str:
    """The workflow's current details for the Temporal UI: a short markdown table (with ``now``, the
    "waiting for" row in words: what would settle the stage and when its cap is reached)."""
    plan = status.plan
    stage = plan.stages[status.stage_index]
    rows = [
        ("config", f"{status.config_key}: v{status.stable_version} → v{status.candidate_version}"),
        ("state", status.state + (f" (paused by {status.paused_by})" if status.paused_by else "")),
        ("stage", f"{status.stage_index + 1}/{len(plan.stages)} {stage.name} ({stage.kind})"),
        ("exposure", describe_exposure(stage) if status.applied_stage == status.stage_index else "not yet"),
        ("since", clock(status.stage_started_at)),
        ("last verdict", verdict_brief(status.last_verdict)),
        *(("gate", words) for words, _ in gate_lines(status)),
        ("alpha", plan.alpha_text()),
        ("waiting for", status.waiting_for or "-" if now is None else waiting_words(status, now, clock)),
    ]
    if status.logic >= 2 and status.measured:
        rows.append(("evidence", f"{status.measured} analyses of this stage, each in the registry: "
                                 f"canaryflow rollout status {status.config_key} --evidence 20"))
    if status.approval is not None:
        rows.append(
            (
                "approval",
                f"{status.approval.stage}: {status.approval.why}; "
                + (f"until {clock(status.approval.deadline)}" if status.approval.deadline is not None
                   else "no deadline")
                + (" (held)" if status.approval.held else ""),
            )
        )
        rows.append(("approve with", f"`{approve_commands(status)}`"))
    if status.outcome:
        rows.append(("outcome", status.outcome))
    cells = [f"| {k} | {_plain(v)} |" for k, v in rows]
    return "\n".join(["| | |", "|---|---|", *cells])


def summary_line(status: RolloutStatus) -> str:
    """One line: ``support-bot v1→v3 beta (segments beta) awaiting_approval``."""
    stage = status.plan.stages[status.stage_index]
    return (
        f"{status.config_key} v{status.stable_version}→v{status.candidate_version} {stage.name} "
        f"({describe_exposure(stage)}) {status.state}"
    )


__all__ = [
    "clock",
    "describe_exposure",
    "details_markdown",
    "exposure_for",
    "percent_of",
    "summary_line",
    "verdict_line",
]
