"""Pairwise preference, candidate against stable on the same input, and the ``win_rate`` gate (pure).

Order: an LLM judge tends to prefer the answer it reads first (position bias). Each pair is shown in an
order drawn from its request id (:func:`candidate_first`: half the requests put the candidate first, the
other half stable), so the bias adds as much to the candidate's wins as to its losses and cancels in the
mean; :func:`outcome` maps the judge's ``A`` / ``B`` back to the candidate's win, loss or tie.

Decision: each pair scores the candidate 1 (win), ½ (tie) or 0 (loss). The win rate is the mean of these
values — a mean of a variable bounded in [0, 1]. For such a variable ``r^X ≤ 1 + X(r − 1)`` (convexity),
so the mixture of Wald likelihood ratios of :func:`canaryflow.domain.sequential.rate_bounds`, fed with
``wins + ½·ties`` events in ``n`` trials, is still a non-negative supermartingale under the null: its
bounds hold at every analysis interval at once (always valid). They ignore that ties shrink the variance, so
from :data:`DEFAULT_MIN_SAMPLES` pairs on they are intersected with the normal-mixture mSPRT confidence
sequence of :mod:`canaryflow.domain.means` (Robbins; Johari et al.) on the pairs' own variance, each at
α/2 (a union bound keeps the intersection at level α). The gate PASSes when the lower bound reaches the
floor, FAILs when the upper bound falls below it, and is otherwise INCONCLUSIVE.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

from canaryflow.domain.gates import Evidence, Gate, Measurement, Verdict
from canaryflow.domain.judging import Winner
from canaryflow.domain.sequential import normal_mixture_halfwidth, rate_bounds

Outcome = Literal["win", "tie", "loss"]
OUTCOMES: tuple[Outcome, ...] = ("win", "tie", "loss")
VALUE: dict[str, float] = {"win": 1.0, "tie": 0.5, "loss": 0.0}
DEFAULT_MIN_SAMPLES = 30
#: Mixing scale of the normal-mixture bound, in win-rate units (tightest for differences of ~0.1).
TAU = 0.1


def candidate_first(request_id: str, evaluator: str = "") -> bool:
    """Whether the candidate's answer is shown as ``A`` for this request (deterministic, ~half of ids)."""
    digest = hashlib.sha256(f"{evaluator}\x00{request_id}".encode()).digest()
    return digest[0] & 1 == 0


def outcome(winner: Winner, cand_first: bool) -> Outcome:
    """The candidate's result from the judge's ``winner`` and the order the pair was shown in."""
    if winner == "tie":
        return "tie"
    return "win" if (winner == "A") == cand_first else "loss"


def win_rate(wins: float, ties: float, losses: float) -> float | None:
    """``(wins + ½ ties) / n``, ``None`` without pairs."""
    n = wins + ties + losses
    return (wins + 0.5 * ties) / n if n > 0 else None


def win_rate_bounds(wins: float, ties: float, losses: float, alpha: float) -> tuple[float, float]:
    """Always-valid ``(lower, upper)`` bounds of the win rate, each one-sided at ``alpha`` (see the module
    docstring: the bounded-mean mixture SPRT, intersected with a variance-aware one from 30 pairs)."""
    n = wins + ties + losses
    if n < DEFAULT_MIN_SAMPLES:
        return rate_bounds(wins + 0.5 * ties, n, alpha)
    lo, hi = rate_bounds(wins + 0.5 * ties, n, alpha / 2)
    mean = (wins + 0.5 * ties) / n
    variance = (wins * (1.0 - mean) ** 2 + ties * (0.5 - mean) ** 2 + losses * mean ** 2) / n
    hw = normal_mixture_halfwidth(variance / n, TAU ** 2, alpha / 2)
    if hw > 0:
        lo, hi = max(lo, mean - hw), min(hi, mean + hw)
    return lo, hi


def judge_win_rate(gate: Gate, *, wins: float, ties: float, losses: float, at: float,
                   queries: Sequence[str] = (), min_samples: int = 0) -> Measurement:
    """Judge the candidate's win rate against ``gate.floor``: PASS when the lower bound ≥ floor (and the
    minimum sample is met), FAIL when the upper bound < floor, else INCONCLUSIVE; NODATA without pairs."""
    floor = gate.floor if gate.floor is not None else 0.5
    n = wins + ties + losses
    ev = Evidence(margin=gate.margin, mode=gate.mode, alpha=gate.alpha, queries=list(queries),
                  allowed=floor, method="always-valid mixture SPRT on the mean of win=1, tie=½, loss=0")
    if n <= 0:
        ev.note = "no judged pairs in the stage yet"
        return Measurement(gate=gate.label, verdict=Verdict.NODATA, at=at, evidence=ev, dry_run=gate.dry_run)
    rate = win_rate(wins, ties, losses) or 0.0
    lo, hi = win_rate_bounds(wins, ties, losses, gate.alpha)
    needed = max(gate.min_samples or DEFAULT_MIN_SAMPLES, min_samples)
    ev.candidate_value, ev.stable_value = rate, 1.0 - rate  # stable's own win rate in the same pairs
    ev.candidate_samples = ev.stable_samples = n
    ev.candidate_events, ev.stable_events = wins + 0.5 * ties, losses + 0.5 * ties
    ev.difference, ev.interval = rate - floor, (lo, hi)
    note = (f"win rate {rate:.3f} ({wins:g} wins, {ties:g} ties, {losses:g} losses) vs floor {floor:g}: "
            f"CS [{lo:.3f}, {hi:.3f}]")
    if hi < floor:
        verdict = Verdict.FAIL
    elif lo >= floor and n >= needed:
        verdict = Verdict.PASS
    else:
        verdict = Verdict.INCONCLUSIVE
        if lo >= floor:
            note += f"; waiting for {needed} pairs"
    ev.note = note
    return Measurement(gate=gate.label, verdict=verdict, at=at, evidence=ev, dry_run=gate.dry_run)


__all__ = ["DEFAULT_MIN_SAMPLES", "OUTCOMES", "VALUE", "Outcome", "candidate_first", "judge_win_rate",
           "outcome", "win_rate", "win_rate_bounds"]
