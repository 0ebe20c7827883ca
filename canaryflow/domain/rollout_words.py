"""A rollout's status in plain words first, the statistics behind them second (pure).

``error rate 0.4 % vs 0.5 % on stable: not yet enough data to tell — about 310 more candidate requests``;
what the stage waits for, with when its cap is reached and what happens then; and the commands that
approve, so a person reading the status knows what to type. The numbers come from the gates' recorded
evidence (:class:`~canaryflow.domain.gates.Evidence`); a field the judge does not fill is left out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from canaryflow.domain.analysis import GateStatus
from canaryflow.domain.gates import Gate, Measurement, Verdict
from canaryflow.domain.plan import format_duration
from canaryflow.domain.rollout_status import RolloutStatus

NAMES = {
    "error_rate": "error rate", "latency_p50": "p50 latency", "latency_p95": "p95 latency",
    "latency_p99": "p99 latency", "cost_per_request": "cost per request",
    "tokens_per_request": "tokens per request", "negative_feedback_rate": "negative feedback",
    "completion_rate": "completion rate", "shadow_agreement": "agreement with stable",
}
_RATES = {"error_rate", "negative_feedback_rate", "completion_rate"}
_ON_INCONCLUSIVE = {"wait_for_approval": "it asks for a human approval", "rollback": "it rolls back",
                    "extend": "it keeps measuring and asks for a decision"}


def _gate_of(status: RolloutStatus, label: str) -> Gate | None:
    return next((g for g in status.plan.gates_for(status.stage_index) if g.label == label), None)


def _is_rate(gate: Gate | None, label: str) -> bool:
    metric = gate.metric if gate is not None else label
    return metric in _RATES or metric.endswith("_rate") or (gate is not None and gate.is_ratio)


def value_text(metric: str, value: float | None, *, rate: bool = False) -> str:
    """A value in the unit people read: ``0.4 %``, ``820 ms``, ``$0.00042``, ``310 tokens``."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if rate:
        return f"{value * 100:.2g} %" if value * 100 < 10 else f"{value * 100:.0f} %"
    if metric.startswith("latency"):
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if metric == "cost_per_request":
        return f"${value:.2g}"
    if metric == "tokens_per_request":
        return f"{value:.0f} tokens"
    return f"{value:.3g}"


def _allowed(gate: Gate | None, rate: bool) -> str:
    if gate is None or gate.margin is None:
        return ""
    if gate.mode == "relative":
        return f"up to {gate.margin * 100:g} % worse than stable allowed"
    if rate:
        return f"up to {gate.margin * 100:g} points worse than stable allowed"
    return f"up to {gate.margin:g} worse than stable allowed"


def more_requests(m: Measurement, gate: Gate | None) -> int | None:
    """About how many more candidate requests would settle an INCONCLUSIVE gate (None: cannot say).

    A waiting-for-samples note gives it exactly; otherwise the interval on the difference is assumed to
    narrow like 1/√n, and the requests are those that bring its upper end under the allowed difference.
    """
    e = m.evidence
    waiting = re.search(r"waiting for (\d+(?:\.\d+)?) (?:candidate )?samples", e.note)
    if waiting:
        return max(math.ceil(float(waiting[1]) - e.candidate_samples), 1)
    if gate is None or gate.margin is None or e.interval is None or e.difference is None:
        return None
    lo, hi = e.interval
    n = e.candidate_samples
    if not (math.isfinite(lo) and math.isfinite(hi)) or n <= 0 or hi <= e.difference:
        return None
    allowed = gate.margin * (e.stable_value or 0.0) if gate.mode == "relative" else gate.margin
    room = allowed - e.difference
    if room <= 0:  # the point estimate is already past the margin: more data may fail it, not pass it
        return None
    more = n * ((hi - e.difference) / room) ** 2 - n
    return max(math.ceil(more), 1) if more > 0 else None


#: Fewer stable requests than this in a segments stage's segments: nothing to compare the candidate with
#: (the stage puts all of the segments' users on the candidate; stable sees only stragglers).
SEGMENT_STABLE_FEW = 30.0


def gate_words(status: RolloutStatus, gs: GateStatus) -> str:
    """One gate in plain words: what the numbers are and what they mean."""
    gate = _gate_of(status, gs.gate)
    metric = gate.metric if gate is not None else gs.gate
    name = NAMES.get(metric, gs.gate) if metric != "custom" else gs.gate
    m = gs.last
    if m is None:
        return f"{name}: not measured yet"
    e = m.evidence
    if gs.verdict is Verdict.NODATA or m.verdict is Verdict.NODATA:
        return f"{name}: no data yet" + (f" ({e.note})" if e.note else "")
    if m.verdict is Verdict.ERROR and gs.verdict is not Verdict.FAIL:
        return f"{name}: could not be measured ({gs.errors} error(s) so far, limit " \
               f"{gate.consecutive_error_limit if gate else '?'} in a row)"
    rate = _is_rate(gate, metric)
    numbers = f"{name} {value_text(metric, e.candidate_value, rate=rate)}"
    if e.stable_value is not None:
        numbers += f" vs {value_text(metric, e.stable_value, rate=rate)} on stable"
    allowed = _allowed(gate, rate)
    if gs.verdict is Verdict.PASS:
        return f"{numbers}: fine" + (f" ({allowed})" if allowed else "")
    if gs.verdict is Verdict.FAIL:
        return f"{numbers}: worse than allowed" + (f" ({allowed})" if allowed else "") + \
            (f" — {gs.reason}" if gs.reason else "")
    stage = status.plan.stages[status.stage_index]
    if stage.kind == "segments" and e.stable_samples is not None and e.stable_samples < SEGMENT_STABLE_FEW:
        segments = ", ".join(stage.segments or [])
        if stage.holdback:
            return (f"{numbers}: not yet comparable — stable served {e.stable_samples:g} requests of "
                    f"{segments} so far ({stage.holdback * 100:g} % of its users are held back on stable)")
        return (f"{numbers}: cannot be compared here — stable served {e.stable_samples:g} requests "
                f"of {segments} (every one of its users is on the candidate); a human decides this stage, "
                f"and the percent stages compare (a 'holdback' on the stage keeps a share of its users "
                f"on stable so its gates can decide)")
    more = more_requests(m, gate)
    tail = f" — about {more:,} more candidate requests" if more else ""
    return f"{numbers}: not yet enough data to tell{tail}"


def gate_lines(status: RolloutStatus) -> list[tuple[str, str]]:
    """(plain words, the statistics behind them) for each gate of the last verdict."""
    record = status.last_verdict
    if record is None:
        return []
    out = []
    for gs in record.gates:
        stats = gs.last.summary() if gs.last is not None else f"{gs.gate} {gs.verdict.value}"
        out.append((gate_words(status, gs), stats))
    return out


def cap_words(status: RolloutStatus, now: float, at: Callable[[float], str] | None = None) -> str:
    """When the stage's cap is reached and what happens then (empty without a cap); with ``at``, the time
    of the cap as ``at`` writes it instead of the time left (for a view that is not redrawn every second)."""
    stage = status.plan.stages[status.stage_index]
    if stage.max_duration is None or status.stage_started_at is None:
        return ""
    end = status.stage_started_at + stage.max_duration.total_seconds()
    left = end - now
    then = _ON_INCONCLUSIVE[status.plan.on_inconclusive]
    if left <= 0:
        return f"its {format_duration(stage.max_duration)} cap is reached: if still inconclusive, {then}"
    if at is not None:
        return (f"its {format_duration(stage.max_duration)} cap is at {at(end)}; if still inconclusive "
                f"then, {then}")
    return (f"{format_duration_s(left)} until its {format_duration(stage.max_duration)} cap; if still "
            f"inconclusive then, {then}")


def waiting_words(status: RolloutStatus, now: float, at: Callable[[float], str] | None = None) -> str:
    """What the rollout waits for, in words, with what would settle it and when the cap is reached
    (``at``: see :func:`cap_words`)."""
    what = status.waiting_for or ("-" if status.terminal else "the next step")
    if status.approval is not None:
        return f"a human approval of stage {status.approval.stage} ({status.approval.why})"
    if "INCONCLUSIVE" in what or "NODATA" in what:
        lines = [words for words, _ in gate_lines(status) if "not yet enough" in words or "no data" in words]
        settle = "; ".join(lines) or "more data"
        cap = cap_words(status, now, at)
        return f"enough data to tell: {settle}" + (f"; {cap}" if cap else "")
    return what


def approve_commands(status: RolloutStatus) -> str:
    """The commands that approve the stage waiting for approval."""
    if status.approval is None:
        return ""
    key, stage = status.config_key, status.approval.stage
    who = status.plan.approvers[0] if status.plan.approvers else "NAME"
    return (f"canaryflow rollout approve {key} --by {who}   (or: temporal workflow signal --workflow-id "
            f"rollout-{key} --name approve --input '{{\"by\": \"{who}\", \"stage\": \"{stage}\"}}')")


def format_duration_s(seconds: float) -> str:
    """Seconds as ``1m40s``."""
    from datetime import timedelta

    return format_duration(timedelta(seconds=max(round(seconds), 1)))


__all__ = ["NAMES", "approve_commands", "cap_words", "gate_lines", "gate_words", "more_requests",
           "value_text", "waiting_words"]
