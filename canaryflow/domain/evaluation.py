"""Numbers-only summaries of replayed calls, for shadow replay and ``canaryflow eval`` (pure).

A :class:`VersionStats` accumulates one version's replayed calls — errors, latencies, tokens, cost,
agreement with the reference answers, accuracy against expected answers — as sums and small lists of
numbers, so it fits in heartbeat details and workflow histories (no prompt or answer text, ever).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from canaryflow.domain.agreement import contains_match, exact_match, json_match, parse_json, score_agreement


class CallOutcome(BaseModel):
    """One replayed call (text stays in memory only; :class:`VersionStats` keeps numbers)."""

    model_config = ConfigDict(extra="forbid")

    ok: bool
    error_type: str | None = None
    text: str = ""
    finish_reason: str | None = None
    latency_s: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class VersionStats(BaseModel):
    """Accumulated results of one version (numbers only)."""

    model_config = ConfigDict(extra="forbid")

    version: int
    calls: int = 0
    errors: int = 0
    error_types: dict[str, int] = Field(default_factory=dict)
    latencies_s: list[float] = Field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    compared: int = 0
    agreement_sum: float = 0.0
    exact_agree: int = 0
    json_expected: int = 0
    json_valid: int = 0
    length_ratio_sum: float = 0.0
    judged: int = 0
    judge_sum: float = 0.0
    graded: int = 0
    exact_correct: int = 0
    contains_correct: int = 0
    json_graded: int = 0
    json_correct: int = 0

    def add(self, out: CallOutcome, *, reference: str | None = None, expected: str | None = None) -> None:
        """Count one call; score it against the reference answer and the expected answer if given."""
        self.calls += 1
        if not out.ok:
            self.errors += 1
            key = out.error_type or "other"
            self.error_types[key] = self.error_types.get(key, 0) + 1
            if expected is not None:
                self.graded += 1
                self.json_graded += parse_json(expected)[0]
            return
        self.latencies_s.append(round(out.latency_s, 6))
        self.input_tokens += out.input_tokens
        self.output_tokens += out.output_tokens
        self.cost_usd += out.cost_usd
        if reference is not None:
            a = score_agreement(out.text, reference)
            self.compared += 1
            self.agreement_sum += a.score
            self.exact_agree += a.exact
            self.json_expected += a.reference_is_json
            self.json_valid += bool(a.json_valid)
            if math.isfinite(a.length_ratio):
                self.length_ratio_sum += a.length_ratio
        if expected is not None:
            self.graded += 1
            self.exact_correct += exact_match(out.text, expected)
            self.contains_correct += contains_match(out.text, expected)
            if parse_json(expected)[0]:
                self.json_graded += 1
                self.json_correct += json_match(out.text, expected)

    def add_judge(self, score: float) -> None:
        """Count one judge-model score in [0, 1]."""
        self.judged += 1
        self.judge_sum += min(1.0, max(0.0, score))

    def merge(self, other: VersionStats) -> None:
        """Add another chunk's results of the same version."""
        for name, value in other:
            if name == "version":
                continue
            if name == "error_types":
                for k, v in other.error_types.items():
                    self.error_types[k] = self.error_types.get(k, 0) + v
            elif name == "latencies_s":
                self.latencies_s.extend(other.latencies_s)
            else:
                setattr(self, name, getattr(self, name) + value)

    @property
    def successes(self) -> int:
        """Calls that returned an answer."""
        return self.calls - self.errors

    def summary(self) -> dict[str, float | int | None]:
        """The side-by-side table's row: rates, quantiles and means (None where undefined)."""
        ok = self.successes
        return {
            "version": self.version,
            "calls": self.calls,
            "error_rate": _div(self.errors, self.calls),
            "latency_p50_s": quantile(self.latencies_s, 0.5),
            "latency_p95_s": quantile(self.latencies_s, 0.95),
            "latency_p99_s": quantile(self.latencies_s, 0.99),
            "tokens_per_request": _div(self.input_tokens + self.output_tokens, ok),
            "cost_per_request": _div(self.cost_usd, ok),
            "agreement": _div(self.agreement_sum, self.compared),
            "exact_agreement": _div(self.exact_agree, self.compared),
            "json_valid": _div(self.json_valid, self.json_expected),
            "length_ratio": _div(self.length_ratio_sum, self.compared),
            "judge_score": _div(self.judge_sum, self.judged),
            "accuracy_exact": _div(self.exact_correct, self.graded),
            "accuracy_contains": _div(self.contains_correct, self.graded),
            "accuracy_json": _div(self.json_correct, self.json_graded),
        }


def quantile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated quantile (None for no values)."""
    if not values:
        return None
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _div(a: float, b: float) -> float | None:
    return a / b if b else None


COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("calls", "calls", "d"),
    ("error_rate", "errors", "%"),
    ("latency_p50_s", "p50 s", ".3f"),
    ("latency_p95_s", "p95 s", ".3f"),
    ("latency_p99_s", "p99 s", ".3f"),
    ("tokens_per_request", "tokens/req", ".1f"),
    ("cost_per_request", "$/req", ".6f"),
    ("agreement", "agree", ".3f"),
    ("exact_agreement", "exact=", "%"),
    ("json_valid", "json ok", "%"),
    ("judge_score", "judge", ".3f"),
    ("accuracy_exact", "acc exact", "%"),
    ("accuracy_contains", "acc contains", "%"),
    ("accuracy_json", "acc json", "%"),
)


def format_table(rows: Sequence[dict[str, float | int | None]]) -> str:
    """A plain-text side-by-side table, one column per version, one line per measure (n/a = undefined)."""
    header = ["measure", *[f"v{int(r['version'] or 0)}" for r in rows]]
    lines = [header]
    for key, title, fmt in COLUMNS:
        cells = [title]
        for r in rows:
            v = r.get(key)
            if v is None:
                cells.append("n/a")
            elif fmt == "%":
                cells.append(f"{100 * float(v):.1f}%")
            elif fmt == "d":
                cells.append(str(int(v)))
            else:
                cells.append(format(float(v), fmt))
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for line in lines:
        pairs = zip(line, widths, strict=True)
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(pairs)))
    return "\n".join(out)


__all__ = ["COLUMNS", "CallOutcome", "VersionStats", "format_table", "quantile"]
