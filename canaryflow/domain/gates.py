"""Gates and measurements: what a stage checks, and the recorded result of each check (analysis as data).

A :class:`Gate` is part of a plan. Each analysis interval produces one :class:`Measurement` per gate;
its limits (``failure_limit``, ``inconclusive_limit``, ``consecutive_error_limit``,
``consecutive_success_limit``, ``count``, ``initial_delay``) are counted on running counters that never
forget (:mod:`canaryflow.domain.analysis`), as Argo Rollouts counts them; ``docs/argo-compat.md`` lists
every deliberate difference.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from canaryflow.domain.conditions import parse_condition
from canaryflow.domain.durations import Duration, format_duration
from canaryflow.domain.errors import ValidationFailed
from canaryflow.domain.implicit import EVENTS as IMPLICIT_EVENTS
from canaryflow.domain.templating import check_template

GateMetric = Literal[
    "error_rate",
    "fallback_rate",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "cost_per_request",
    "tokens_per_request",
    "negative_feedback_rate",
    "completion_rate",
    "shadow_agreement",
    "tool_call_error_rate",
    "implicit_rate",
    "eval_score",
    "eval_pass_rate",
    "win_rate",
    "custom",
]
BUILTIN_METRICS: tuple[str, ...] = tuple(m for m in get_args(GateMetric) if m != "custom")
#: Gates judged as a ratio of counters (events / requests), candidate against stable.
RATE_GATES = frozenset({"error_rate", "fallback_rate", "negative_feedback_rate", "completion_rate",
                        "tool_call_error_rate", "implicit_rate", "eval_pass_rate"})
#: A rate below this is acceptable whatever stable's, so a good candidate can PASS against a stable with no
#: errors at all; low enough that 0.1 % → 0.5 % is still caught.
DEFAULT_FLOORS: dict[str, float] = {"error_rate": 0.001, "fallback_rate": 0.001, "completion_rate": 0.001,
                                    "negative_feedback_rate": 0.01, "tool_call_error_rate": 0.001,
                                    "implicit_rate": 0.01, "eval_pass_rate": 0.01}
#: Events an ``implicit_rate`` gate can judge (``dwell_seconds`` is a value, not an event to count), and
#: the ones users do when an answer is good (their rate is better higher).
RATE_EVENTS = tuple(e for e in IMPLICIT_EVENTS if e != "dwell_seconds")
GOOD_EVENTS = frozenset({"copied", "shared", "task_completed"})
#: Gates comparing a value of the candidate with stable's (quantiles and means).
VALUE_GATES = frozenset({"latency_p50", "latency_p95", "latency_p99", "cost_per_request",
                         "tokens_per_request", "eval_score"})
#: Gates on an online evaluator's results (``evaluator`` names one the candidate's config declares).
EVAL_GATES = frozenset({"eval_score", "eval_pass_rate", "win_rate"})
#: Gates on a ``pairwise`` evaluator: the candidate's shadow answers against stable's on the same input,
#: judged against an absolute ``floor`` (no margin: there is one side only).
PAIRWISE_GATES = frozenset({"win_rate"})


class Verdict(StrEnum):
    """The phase of one measurement (and of a whole analysis)."""

    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    ERROR = "ERROR"
    NODATA = "NODATA"


class Gate(BaseModel):
    """One check of candidate against stable (or a custom PromQL condition)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: GateMetric
    name: str | None = Field(default=None, description="display name; required for custom gates")
    margin: float | None = Field(
        default=None, description="allowed degradation vs stable: relative (0.2 = candidate ≤ 1.2 × stable) "
                                  "or absolute (in the metric's unit)")
    mode: Literal["absolute", "relative"] = "relative"
    floor: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="rate gates: a candidate rate below this absolute value is fine whatever stable's "
                    "(relative margins; default per metric, see DEFAULT_FLOORS); win_rate: the lowest win "
                    "rate accepted, in (0, 1) (ties count half), e.g. 0.45")
    query: str | None = Field(default=None, description="PromQL, custom gates only")
    success: str | None = Field(default=None, description="condition on `result`, e.g. 'result >= 0.99'")
    failure: str | None = Field(default=None, description="condition on `result`, e.g. 'result < 0.9'")
    events: str | None = Field(
        default=None, description="custom ratio gates: PromQL counting bad events ($selector, $window)")
    total: str | None = Field(default=None, description="custom ratio gates: PromQL counting all events")
    higher_is_better: bool = Field(default=False, description="custom ratio gates: events are good ones")
    alpha: float = Field(default=0.05, gt=0.0, lt=0.5)
    min_samples: int = Field(default=0, ge=0)
    failure_limit: int = Field(
        default=0, ge=-1,
        description="FAIL measurements tolerated before the gate fails (Argo's failureLimit); -1 = off, "
                    "then consecutive_success_limit decides")
    inconclusive_limit: int | None = Field(
        default=None, ge=0,
        description="INCONCLUSIVE/NODATA measurements tolerated before the stage is held for a decision; "
                    "None (the default) = no count limit: the stage's max_duration and the plan's "
                    "on_inconclusive decide (Argo's default is 0; see docs/argo-compat.md)")
    consecutive_error_limit: int = Field(
        default=4, ge=0, description="ERROR measurements in a row tolerated (NODATA does not end a streak)")
    consecutive_success_limit: int = Field(
        default=0, ge=0, description="PASS measurements in a row the gate needs before it passes; 0 = off")
    count: int | None = Field(
        default=None, ge=1, description="measurements to take; then the gate's verdict is final (Argo's "
                                        "count); None = measure every interval of the stage")
    initial_delay: Duration = Field(
        default=timedelta(0), description="wait this long after the stage starts before the first "
                                          "measurement of this gate")
    window: Literal["interval", "stage"] = Field(
        default="interval",
        description="custom query gates: what $window spans — one analysis interval (each measurement "
                    "judges its own window, so failure_limit tolerates noisy windows) or the whole stage")
    dry_run: bool = Field(default=False, description="measured and shown, never decides")
    event: str | None = Field(
        default=None, description="implicit_rate: the implicit feedback event whose share of requests is "
                                  "judged (regenerated, abandoned, edited: lower is better; copied, shared, "
                                  "task_completed: higher is better)")
    evaluator: str | None = Field(
        default=None, description="eval_score / eval_pass_rate / win_rate: the evaluator (declared in the "
                                  "candidate's config; a pairwise one for win_rate) whose results are "
                                  "judged; higher is better")

    @field_validator("metric", mode="before")
    @classmethod
    def _known_metric(cls, value: object) -> object:
        if isinstance(value, str) and value not in get_args(GateMetric):
            raise ValueError(f"unknown metric {value!r}: use one of {', '.join(BUILTIN_METRICS)}, or "
                             "'custom' with a PromQL 'query'")
        return value

    @model_validator(mode="after")
    def _well_formed(self) -> Gate:
        self._limits_make_sense()
        if self.metric == "implicit_rate":
            if self.event not in RATE_EVENTS:
                raise ValueError(f"implicit_rate needs 'event': one of {', '.join(RATE_EVENTS)}, got "
                                 f"{self.event!r}")
        elif self.event is not None:
            raise ValueError(f"'event' belongs to implicit_rate gates, not to {self.metric!r}: remove it")
        if self.metric in EVAL_GATES:
            if not self.evaluator:
                raise ValueError(f"{self.metric} needs 'evaluator': the name of an evaluator the candidate's "
                                 "config declares (evaluators: [{name: ..., kind: ...}])")
        elif self.evaluator is not None:
            raise ValueError(f"'evaluator' belongs to eval_score / eval_pass_rate / win_rate gates, not to "
                             f"{self.metric!r}: remove it")
        if self.metric in PAIRWISE_GATES:
            if self.floor is None or not 0.0 < self.floor < 1.0:
                raise ValueError(f"{self.metric} needs 'floor' in (0, 1): the lowest win rate of the "
                                 "candidate against stable accepted (ties count half), e.g. floor: 0.45")
            if self.margin is not None:
                raise ValueError(f"{self.metric} takes 'floor' (the lowest win rate accepted), not 'margin': "
                                 "remove it")
        if self.margin is not None and self.margin < 0:
            raise ValueError(f"margin {self.margin:g} is negative: a margin is the degradation allowed, e.g. "
                             "0.2 (relative: candidate ≤ 1.2 × stable)")
        if self.floor is not None and not (self.metric in RATE_GATES or self.is_ratio
                                           or self.metric in PAIRWISE_GATES):
            kinds = ", ".join(sorted(RATE_GATES))
            raise ValueError(f"'floor' belongs to rate gates ({kinds}, custom ratio), not to "
                             f"{self.metric!r}: remove it")
        comparative = self.metric in RATE_GATES or self.metric in VALUE_GATES or self.is_ratio
        if comparative and self.margin == 0:
            raise ValueError(f"margin 0 on {self.metric!r} can never PASS a candidate as good as stable (the "
                             "upper bound must fall below the margin): use a relative margin such as 0.5 "
                             "(candidate ≤ 1.5 × stable)")
        if self.metric == "custom":
            if self.is_ratio:
                if self.query or self.success or self.failure:
                    raise ValueError("a custom ratio gate takes 'events' and 'total', not query/success/"
                                     "failure")
                if not (self.events and self.total):
                    raise ValueError("a custom ratio gate needs both 'events' and 'total' (PromQL)")
                if self.margin is None:
                    raise ValueError("a custom ratio gate needs a 'margin' (e.g. 0.5 relative: candidate ≤ "
                                     "1.5 × stable)")
                for q in (self.events, self.total):
                    if "$selector" not in q or "$window" not in q:
                        raise ValueError("'events' and 'total' must use $selector and $window, e.g. "
                                         "sum(increase(my_total{$selector}[$window]))")
                if not self.name:
                    raise ValueError("a custom gate needs a 'name'")
                return self
            if not self.query:
                raise ValueError("a custom gate needs 'query' (PromQL)")
            try:
                check_template(self.query)
            except ValidationFailed as exc:
                raise ValueError(f"query: {exc}") from None
            if not (self.success or self.failure):
                raise ValueError("a custom gate needs 'success' and/or 'failure', e.g. 'result >= 0.99'")
            if not self.name:
                raise ValueError("a custom gate needs a 'name'")
            for cond in (self.success, self.failure):
                if cond:
                    try:
                        parse_condition(cond)
                    except ValidationFailed as exc:
                        raise ValueError(str(exc)) from None
        else:
            if self.query or self.success or self.failure or self.events or self.total:
                raise ValueError(
                    f"built-in gate {self.metric!r} takes 'margin' and 'mode', not query/success/failure"
                )
            if self.margin is None and self.metric not in PAIRWISE_GATES:
                raise ValueError(f"gate {self.metric!r} needs a 'margin' (e.g. 0.2 relative: "
                                 "candidate ≤ 1.2 × stable)")
        return self

    def _limits_make_sense(self) -> None:
        if self.failure_limit < 0 and self.consecutive_success_limit == 0:
            raise ValueError("failure_limit -1 turns failures off, so the gate needs "
                             "consecutive_success_limit > 0 to decide anything (e.g. "
                             "consecutive_success_limit: 3), or failure_limit >= 0")
        if self.count is not None and self.consecutive_success_limit > self.count:
            raise ValueError(f"consecutive_success_limit {self.consecutive_success_limit} can never be "
                             f"reached in count {self.count} measurements: lower it or raise count")
        if self.initial_delay < timedelta(0):
            raise ValueError(f"initial_delay {format_duration(self.initial_delay)} must not be negative")
        if self.window != "interval" and (self.metric != "custom" or self.is_ratio):
            raise ValueError("'window' belongs to custom query gates (the built-in and ratio gates judge the "
                             "whole stage)")

    @property
    def is_ratio(self) -> bool:
        """A custom gate judging a ratio of counters (``events`` / ``total``) like a built-in rate."""
        return self.metric == "custom" and (self.events is not None or self.total is not None)

    @property
    def rate_floor(self) -> float:
        """The absolute rate below which the candidate is fine (relative rate gates)."""
        if self.floor is not None:
            return self.floor
        return DEFAULT_FLOORS.get(self.metric, 0.0)

    @property
    def label(self) -> str:
        """Display name of the gate (an unnamed ``implicit_rate`` gate is named after its event:
        ``regenerated_rate``; an unnamed eval gate after its evaluator: ``json_ok_pass_rate``,
        ``helpful_score``)."""
        if self.name is None and self.metric == "implicit_rate" and self.event:
            return f"{self.event}_rate"
        if self.name is None and self.metric in EVAL_GATES and self.evaluator:
            suffix = {"eval_score": "score", "eval_pass_rate": "pass_rate"}.get(self.metric, self.metric)
            return f"{self.evaluator}_{suffix}"
        return self.name or self.metric


MAX_QUERY = 300
MAX_QUERIES = 3
MAX_NOTE = 200
MAX_EXAMPLES = 3


class Evidence(BaseModel):
    """The numbers behind a measurement, so a user reads exactly why."""

    model_config = ConfigDict(extra="forbid")

    stable_value: float | None = None
    candidate_value: float | None = None
    stable_samples: float = 0.0
    candidate_samples: float = 0.0
    stable_events: float | None = Field(default=None, description="rate gates: the counted (bad) events")
    candidate_events: float | None = Field(default=None, description="rate gates: the counted (bad) events")
    difference: float | None = None
    interval: tuple[float, float] | None = None
    allowed: float | None = Field(default=None, description="the candidate value the margin allows")
    method: str = Field(default="", description="the test that decided, e.g. 'stratified mixture SPRT'")
    strata: int = Field(default=0, description="analysis intervals the test is stratified by")
    margin: float | None = None
    mode: str | None = None
    alpha: float | None = None
    queries: list[str] = Field(default_factory=list)
    note: str = ""
    examples: list[str] = Field(
        default_factory=list, description="eval gates: request ids of the candidate's lowest-scored answers "
                                          "(a pairwise gate: pairs it lost), to look up in the registry")


class Measurement(BaseModel):
    """One gate checked once."""

    model_config = ConfigDict(extra="forbid")

    gate: str
    verdict: Verdict
    at: float = Field(description="seconds since the epoch")
    evidence: Evidence = Field(default_factory=Evidence)
    dry_run: bool = False

    def compact(self, queries: bool = True) -> Measurement:
        """This measurement as the workflow carries it: the note and queries cut short (``queries=False``:
        no queries). The whole measurement is in the registry."""
        e = self.evidence
        kept = [q if len(q) <= MAX_QUERY else q[:MAX_QUERY - 1] + "…" for q in e.queries[:MAX_QUERIES]]
        if not queries:
            kept = []
        note = e.note if len(e.note) <= MAX_NOTE else e.note[:MAX_NOTE - 1] + "…"
        examples = e.examples[:MAX_EXAMPLES]
        if kept == e.queries and note == e.note and examples == e.examples:
            return self
        return self.model_copy(update={"evidence": e.model_copy(update={"queries": kept, "note": note,
                                                                         "examples": examples})})

    def summary(self) -> str:
        """One line: ``error_rate FAIL: candidate 0.051 vs stable 0.010 (n=412/7800), ...``."""
        e = self.evidence
        parts = [f"{self.gate} {self.verdict.value}"]
        if e.candidate_events is not None and e.stable_events is not None:
            parts.append(
                f"candidate {_fmt(e.candidate_value)} ({e.candidate_events:g}/{e.candidate_samples:g}) vs "
                f"stable {_fmt(e.stable_value)} ({e.stable_events:g}/{e.stable_samples:g})"
            )
        elif e.candidate_value is not None or e.stable_value is not None:
            parts.append(
                f"candidate {_fmt(e.candidate_value)} vs stable {_fmt(e.stable_value)} "
                f"(n={e.candidate_samples:g}/{e.stable_samples:g})"
            )
        if e.interval is not None:
            parts.append(f"interval [{_fmt(e.interval[0])}, {_fmt(e.interval[1])}]")
        if e.margin is not None:
            parts.append(f"margin {e.margin:g} {e.mode or ''}".rstrip())
        if e.note:
            parts.append(e.note)
        if e.examples:
            parts.append(f"worst: {', '.join(e.examples[:MAX_EXAMPLES])}")
        return "; ".join(parts)


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"


__all__ = [
    "BUILTIN_METRICS",
    "DEFAULT_FLOORS",
    "EVAL_GATES",
    "GOOD_EVENTS",
    "MAX_EXAMPLES",
    "MAX_NOTE",
    "MAX_QUERY",
    "PAIRWISE_GATES",
    "RATE_EVENTS",
    "RATE_GATES",
    "VALUE_GATES",
    "Evidence",
    "Gate",
    "GateMetric",
    "Measurement",
    "Verdict",
]
