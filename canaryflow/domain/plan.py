"""Rollout plans: ordered stages, gates, policies, the presets, and the rollout's input.

A plan is data. ``default`` is the realistic shape (shadow → internal → beta → 5 % → 10 % → full; at least
8 h 40 min of minimum durations, analysis every minute, approval required after internal, beta and 10 %,
24 h to approve). ``fast`` is the same shape in seconds for demos and tests (10 s minimum per stage, 2 min
maximum, analysis every 5 s, one approval — after internal — with 10 min to give it). An inline plan may omit
any plan-level field (gates, interval, policies): it takes the ``default`` preset's value. Omitted stage
fields mean no minimum duration, no maximum, no minimum samples and no approval.

Durations accept ``"90s"``, ``"10m"``, ``"2h"``, ``"1d"`` (combinable: ``"1h30m"``), a number of seconds,
or ISO 8601 (``"PT10M"``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from canaryflow.domain.config import ConfigKey, ConfigSpec
from canaryflow.domain.durations import Duration, format_duration, parse_duration
from canaryflow.domain.gates import EVAL_GATES, PAIRWISE_GATES, Gate
from canaryflow.domain.templating import ARG_NAME, template_args

#: Gates one stage may judge: the workflow carries each one's counters and last measurement (bounded state).
MAX_GATES = 20

StageKindName = Literal["shadow", "segments", "percent", "full"]
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class Stage(BaseModel):
    """One step of a rollout: how the candidate is exposed, how long, how much data, who must approve."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, description="unique within the plan: [a-z0-9][a-z0-9._-]*")
    kind: StageKindName
    min_duration: Duration = timedelta(0)
    max_duration: Duration | None = None
    min_samples: int = Field(default=0, ge=0, description="candidate requests needed before passing")
    approval: Literal["none", "required"] = "none"
    gates: list[Gate] | None = Field(default=None, description="replaces the plan's gates; [] = time only")
    shadow_fraction: float | None = Field(default=None, gt=0.0, le=1.0, description="shadow stages only")
    segments: list[str] | None = Field(default=None, description="segments stages only")
    percent: float | None = Field(default=None, gt=0.0, le=100.0, description="percent stages only")
    holdback: float | None = Field(
        default=None, ge=0.0, le=0.5,
        description="segments stages only: the share of the segments' users kept on stable (by user key), "
                    "so the stage's gates compare candidate and stable within those segments")
    replay_sample: int | None = Field(
        default=None, ge=1, le=10_000,
        description="shadow stages only: replay this many logged requests against the candidate when the "
                    "stage starts; their scores feed the stage's gates before live traffic reaches it")

    @model_validator(mode="after")
    def _kind_fields(self) -> Stage:
        if self.min_duration < timedelta(0):
            raise ValueError("min_duration must not be negative")
        if self.max_duration is not None:
            if self.max_duration <= timedelta(0):
                raise ValueError("max_duration must be positive (omit it for no maximum)")
            if self.max_duration < self.min_duration:
                raise ValueError(f"max_duration {format_duration(self.max_duration)} is shorter than "
                                 f"min_duration {format_duration(self.min_duration)}")
        allowed = {"shadow_fraction": "shadow", "replay_sample": "shadow", "segments": "segments",
                   "holdback": "segments", "percent": "percent"}
        for field, kind in allowed.items():
            if self.kind != kind and getattr(self, field) is not None:
                raise ValueError(f"{field!r} belongs to {kind} stages, not to a {self.kind} stage")
        if self.kind == "segments" and not self.segments:
            raise ValueError("a segments stage needs 'segments', e.g. [\"internal\"]")
        if self.kind == "percent" and self.percent is None:
            raise ValueError("a percent stage needs 'percent' in (0, 100]")
        if self.segments is not None and len(set(self.segments)) != len(self.segments):
            raise ValueError("'segments' lists a segment twice")
        return self

    @property
    def fraction(self) -> float:
        """Shadow mirroring fraction (0.1 when a shadow stage does not say)."""
        return self.shadow_fraction if self.shadow_fraction is not None else 0.1


def _gate(metric: str, margin: float, mode: str = "relative", **extra: Any) -> Gate:
    return Gate.model_validate({"metric": metric, "margin": margin, "mode": mode, **extra})


#: Relative margins (candidate ≤ (1 + m) × stable), which a candidate as good as stable can PASS; the rate
#: gates also pass below their floor (DEFAULT_FLOORS). Figures: benchmarks/README.md "The statistical judge".
#: ``negative_feedback_rate`` is judged on the requests that received feedback, so it is not a default:
#: without feedback it has no data, and no data never passes — add it when the app sends feedback.
DEFAULT_GATES: tuple[Gate, ...] = (
    _gate("error_rate", 0.5),
    _gate("fallback_rate", 0.5),
    _gate("latency_p95", 0.20),
    _gate("cost_per_request", 0.20),
)
SHADOW_GATES: tuple[Gate, ...] = DEFAULT_GATES
#: The fast plan sees tens of requests: floors a small sample can show (demos and tests, not production).
FAST_GATES: tuple[Gate, ...] = (
    _gate("error_rate", 0.5, floor=0.1),
    _gate("fallback_rate", 0.5, floor=0.1),
    _gate("latency_p95", 0.5),
    _gate("cost_per_request", 0.5),
)
FAST_SHADOW_GATES: tuple[Gate, ...] = FAST_GATES
AlphaScope = Literal["per_gate_stage", "family"]


class Plan(BaseModel):
    """An ordered list of stages plus the policies that apply to all of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, description="the preset's name, or None for an inline plan")
    stages: list[Stage] = Field(min_length=1)
    gates: list[Gate] = Field(default_factory=lambda: list(DEFAULT_GATES))
    analysis_interval: Duration = timedelta(minutes=1)
    on_inconclusive: Literal["wait_for_approval", "rollback", "extend"] = "wait_for_approval"
    approval_timeout: Duration = timedelta(hours=24)
    on_approval_timeout: Literal["rollback", "hold"] = "rollback"
    approvers: list[str] = Field(default_factory=list, description="empty: anyone may approve")
    notify: list[str] = Field(default_factory=list, description="webhook URLs, or env:NAME for a secret URL")
    args: dict[str, str] = Field(
        default_factory=dict, description="values for {{args.NAME}} in custom gate queries (Argo's args)")
    alpha_scope: AlphaScope = Field(
        default="per_gate_stage",
        description="per_gate_stage: each gate's alpha holds for that gate in that stage; family: "
                    "family_alpha is the chance of any false rollback across all gates and stages "
                    "(split evenly, Bonferroni)")
    family_alpha: float | None = Field(default=None, gt=0.0, lt=0.5,
                                       description="alpha_scope family only: the family-wise budget")

    @field_validator("notify")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not re.match(r"^(https?://[^\s/]+|env:[A-Za-z_][A-Za-z0-9_]*$)", url):
                raise ValueError(f"notify target {url!r}: write an http(s):// URL, or env:NAME to read a "
                                 "secret URL from the worker's environment")
        return urls

    @model_validator(mode="after")
    def _order(self) -> Plan:
        names = [s.name for s in self.stages]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"stage names must be unique: {', '.join(dupes)} appears more than once")
        fulls = [i for i, s in enumerate(self.stages) if s.kind == "full"]
        if fulls != [len(self.stages) - 1]:
            raise ValueError("the last stage, and only the last, must be of kind 'full'")
        last = 0.0
        for s in self.stages:
            if s.kind == "percent":
                assert s.percent is not None
                if s.percent <= last:
                    raise ValueError(f"stage {s.name!r}: percents must strictly increase "
                                     f"({s.percent:g} after {last:g})")
                last = s.percent
        if self.analysis_interval <= timedelta(0):
            raise ValueError("analysis_interval must be positive")
        if self.approval_timeout <= timedelta(0):
            raise ValueError("approval_timeout must be positive")
        self._few_gates()
        self._pairwise_in_shadow()
        self._args_defined()
        self._alpha_policy()
        return self

    def _pairwise_in_shadow(self) -> None:
        """A ``win_rate`` gate judges shadow pairs: only a shadow stage has them (elsewhere it would wait
        for data forever)."""
        for i, stage in enumerate(self.stages):
            if stage.kind == "shadow":
                continue
            for g in self._own_gates(i):
                if g.metric in PAIRWISE_GATES:
                    where = f"stages[{i}].gates" if stage.gates is not None else "gates"
                    raise ValueError(f"{where}: {g.metric} compares shadow answers with stable's, so it "
                                     f"cannot judge stage {stage.name!r} (kind {stage.kind}): put it in the "
                                     "shadow stage's own gates")

    def _few_gates(self) -> None:
        where = [("gates", self.gates)] + [(f"stages[{i}].gates", s.gates or []) for i, s in
                                           enumerate(self.stages)]
        for path, gates in where:
            if len(gates) > MAX_GATES:
                raise ValueError(f"{path}: {len(gates)} gates, at most {MAX_GATES} per stage (the rollout "
                                 "carries each gate's counters): split the checks over stages, or drop some")
            labels = [g.label for g in gates]
            dupes = sorted({x for x in labels if labels.count(x) > 1})
            if dupes:
                raise ValueError(f"{path}: two gates are both named {dupes[0]!r}: give one a 'name'")

    def _args_defined(self) -> None:
        for name in self.args:
            if not re.fullmatch(ARG_NAME, name):
                raise ValueError(f"args: {name!r} is not a valid argument name ([A-Za-z_][A-Za-z0-9_-]*)")
        where = [("gates", self.gates)] + [(f"stages[{i}].gates", s.gates or []) for i, s in
                                           enumerate(self.stages)]
        for path, gates in where:
            for n, gate in enumerate(gates):
                missing = [a for a in template_args(gate.query or "") if a not in self.args]
                if missing:
                    raise ValueError(f"{path}[{n}].query uses {{{{args.{missing[0]}}}}}, which the plan's "
                                     f"'args' does not define: add args: {{{missing[0]}: ...}}")

    def _alpha_policy(self) -> None:
        if self.alpha_scope == "family":
            if self.family_alpha is None:
                raise ValueError("alpha_scope 'family' needs 'family_alpha' (e.g. 0.05 across all gates and "
                                 "stages)")
            for i in range(len(self.stages)):
                for g in self._own_gates(i):
                    if "alpha" in g.model_fields_set:
                        raise ValueError(f"gate {g.label!r} of stage {self.stages[i].name!r} sets 'alpha', "
                                         "but alpha_scope 'family' splits family_alpha over the gates: "
                                         "remove the gate's alpha or use alpha_scope 'per_gate_stage'")
        elif self.family_alpha is not None:
            raise ValueError("'family_alpha' needs alpha_scope 'family' (or remove it)")

    def _own_gates(self, index: int) -> list[Gate]:
        stage = self.stages[index]
        if stage.gates is not None:
            return list(stage.gates)
        return [] if stage.kind == "full" else list(self.gates)

    def comparisons(self) -> int:
        """How many deciding gate × stage checks the plan makes (what a family-wise alpha is split over)."""
        return sum(1 for i in range(len(self.stages)) for g in self._own_gates(i) if not g.dry_run)

    def alpha_text(self) -> str:
        """What α means in this plan, as the status shows it."""
        if self.alpha_scope == "family":
            n = max(1, self.comparisons())
            assert self.family_alpha is not None
            return (f"family-wise α {self.family_alpha:g} across {n} gate×stage checks "
                    f"({self.family_alpha / n:.3g} each, Bonferroni)")
        alphas = sorted({g.alpha for i in range(len(self.stages)) for g in self._own_gates(i)})
        shown = ", ".join(f"{a:g}" for a in alphas) or "-"
        return f"α {shown} per gate per stage (each gate's own false-rollback chance in each stage)"

    def gates_for(self, index: int) -> list[Gate]:
        """The gates of stage ``index``: its own, else the plan's (none for ``full`` unless it says).

        With ``alpha_scope: family`` each gate carries its share of ``family_alpha``.
        """
        gates = self._own_gates(index)
        if self.alpha_scope == "family" and self.family_alpha is not None:
            share = self.family_alpha / max(1, self.comparisons())
            gates = [g.model_copy(update={"alpha": share}) for g in gates]
        return gates

    def may_approve(self, who: str) -> bool:
        """Whether ``who`` may approve or promote (anyone when the plan lists no approvers)."""
        return not self.approvers or who in self.approvers


def _stage(**kw: Any) -> Stage:
    return Stage.model_validate(kw)


DEFAULT_PLAN = Plan(
    name="default",
    stages=[
        _stage(name="shadow", kind="shadow", shadow_fraction=0.2, min_duration="10m", max_duration="2h",
               min_samples=200, gates=[g.model_dump(exclude_unset=True) for g in SHADOW_GATES]),
        _stage(name="internal", kind="segments", segments=["internal"], min_duration="30m",
               max_duration="4h", min_samples=50, approval="required"),
        _stage(name="beta", kind="segments", segments=["beta"], min_duration="2h", max_duration="12h",
               min_samples=200, approval="required"),
        _stage(name="canary-5", kind="percent", percent=5, min_duration="2h", max_duration="12h",
               min_samples=500),
        _stage(name="canary-10", kind="percent", percent=10, min_duration="4h", max_duration="1d",
               min_samples=1000, approval="required"),
        _stage(name="full", kind="full"),
    ],
)

FAST_PLAN = Plan(
    name="fast",
    stages=[
        _stage(name="shadow", kind="shadow", shadow_fraction=0.5, min_duration="10s", max_duration="2m",
               min_samples=10, gates=[g.model_dump(exclude_unset=True) for g in FAST_SHADOW_GATES]),
        _stage(name="internal", kind="segments", segments=["internal"], min_duration="10s",
               max_duration="2m", min_samples=5, approval="required"),
        _stage(name="beta", kind="segments", segments=["beta"], min_duration="10s", max_duration="2m",
               min_samples=5),
        _stage(name="canary-5", kind="percent", percent=5, min_duration="10s", max_duration="2m",
               min_samples=5),
        _stage(name="canary-10", kind="percent", percent=10, min_duration="10s", max_duration="2m",
               min_samples=10),
        _stage(name="full", kind="full"),
    ],
    gates=list(FAST_GATES),
    analysis_interval="5s",
    approval_timeout="10m",
)

PRESETS: dict[str, Plan] = {"default": DEFAULT_PLAN, "fast": FAST_PLAN}


#: The plan-level gates of the first presets (absolute error margin, no fallback_rate). Rollouts started
#: before the presets changed replay with them: see :func:`legacy_input` and ``workflow.patched``.
LEGACY_GATES: tuple[Gate, ...] = (
    _gate("error_rate", 0.01, "absolute"),
    _gate("latency_p95", 0.20),
    _gate("cost_per_request", 0.20),
    _gate("negative_feedback_rate", 0.02, "absolute"),
)
#: The marker under which new rollouts take the current presets (``workflow.patched``).
PRESETS_PATCH = "presets-v2-relative-margins"


def legacy_input(data: Any) -> Any:
    """A rollout's input read the way the first presets did: a preset name, or an inline plan omitting
    ``gates``, takes :data:`LEGACY_GATES` (so a history recorded then replays the same decisions)."""
    if not isinstance(data, dict):
        return data
    plan = data.get("plan", "default")
    if isinstance(plan, str) and plan in PRESETS:
        base = PRESETS[plan]
        stages = [s.model_copy(update={"gates": list(LEGACY_GATES[:3])}) if s.gates is not None else s
                  for s in base.stages]
        return {**data, "plan": base.model_copy(update={"gates": list(LEGACY_GATES), "stages": stages})}
    if isinstance(plan, dict) and "gates" not in plan:
        gates = [g.model_dump(exclude_unset=True) for g in LEGACY_GATES]
        return {**data, "plan": {**plan, "gates": gates}}
    return data


def resolve_plan(plan: str | Plan) -> Plan:
    """A preset by name, or the inline plan itself.

    Raises:
        ValueError: an unknown preset name.
    """
    if isinstance(plan, Plan):
        return plan
    if plan not in PRESETS:
        raise ValueError(f"unknown plan preset {plan!r}: use one of {', '.join(PRESETS)} or an inline plan")
    return PRESETS[plan]


class RolloutInput(BaseModel):
    """What starts a rollout (the JSON of ``temporal workflow start --input``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    config_key: ConfigKey
    candidate_version: int = Field(ge=1)
    plan: str | Plan = "default"
    requested_by: str = Field(default="unknown", min_length=1, max_length=200)
    reason: str = Field(default="", max_length=2000)

    @field_validator("plan")
    @classmethod
    def _known_preset(cls, plan: str | Plan, info: ValidationInfo) -> str | Plan:
        if isinstance(plan, str) and (info.context or {}).get("preset_resolved_later"):
            return plan  # the workflow: the validate activity resolves it once (frozen into history)
        resolve_plan(plan)
        return plan

    def resolved_plan(self) -> Plan:
        """The plan this rollout follows."""
        return resolve_plan(self.plan)

    def provisional_plan(self) -> Plan:
        """The plan to show until the preset is resolved for good (the preset as this code has it, or the
        default preset when this code no longer knows it)."""
        return self.plan if isinstance(self.plan, Plan) else PRESETS.get(self.plan, DEFAULT_PLAN)


def undeclared_evaluator(plan: Plan, candidate: ConfigSpec) -> str | None:
    """What is wrong when an ``eval_score`` / ``eval_pass_rate`` gate of ``plan`` names an evaluator the
    candidate's config does not declare (None: every one is declared)."""
    declared = [e.name for e in candidate.evaluators or ()]
    where = [("plan.gates", plan.gates)] + [(f"plan.stages[{i}].gates", s.gates or [])
                                           for i, s in enumerate(plan.stages)]
    for path, gates in where:
        for n, gate in enumerate(gates):
            if gate.metric in EVAL_GATES and gate.evaluator not in declared:
                known = ", ".join(declared) or "none: add evaluators: [{name, kind}] to the config"
                return (f"{path}[{n}].evaluator: {gate.evaluator!r} is not an evaluator of "
                        f"{candidate.key} (declared: {known})")
            spec = candidate.evaluator(gate.evaluator or "")
            if gate.metric in PAIRWISE_GATES and spec is not None and spec.kind != "pairwise":
                return (f"{path}[{n}].evaluator: {gate.metric} needs a pairwise evaluator, and "
                        f"{gate.evaluator!r} of {candidate.key} is of kind {spec.kind} (declare "
                        "{name: ..., kind: pairwise, judge: JUDGE_CONFIG})")
    return None


__all__ = [
    "DEFAULT_GATES",
    "DEFAULT_PLAN",
    "FAST_PLAN",
    "LEGACY_GATES",
    "PRESETS",
    "PRESETS_PATCH",
    "Duration",
    "Plan",
    "RolloutInput",
    "Stage",
    "format_duration",
    "legacy_input",
    "parse_duration",
    "resolve_plan",
    "undeclared_evaluator",
]
