"""The ``judge`` and ``pairwise`` evaluator kinds: scorers that call a judge config through the traffic plane.

A judge is an ordinary config, so its calls take the same road as any request (resolution of the judge's
own serving state — a judge being rolled out serves its candidate to some samples, bucketed by request id —,
the fallback runner with its breakers, metrics under the judge's config key: its own
``canaryflow_requests_total``, latency, tokens and ``canaryflow_cost_usd_total``). An evaluator's
``version`` pins one version of the judge instead (variation ``pinned``).

``judge`` scores one answer (live, shadow or replayed): the judge's ``score`` mapped to 0–1, passed at the
evaluator's ``threshold``. ``pairwise`` compares a shadow answer with stable's answer to the same request,
in an order drawn from the request id (:func:`canaryflow.domain.pairwise.candidate_first`), and scores the
candidate 1 (win), ½ (tie) or 0 (loss); ``passed`` is a win, the label ``win`` / ``tie`` / ``loss``.

``budget_per_hour`` limits each evaluator of each config version in this process
(:class:`~canaryflow.domain.budget.HourlyMeter`): over it a sample is dropped with reason ``budget``
(:class:`JudgeDropped`) and no call is made. The judge's reason is kept short in the score; the prompt
and answers never leave the call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from canaryflow.domain.budget import HourlyMeter
from canaryflow.domain.evaluators import EvaluatorContext, EvaluatorSpec, Sample, Score, ScorerRegistry
from canaryflow.domain.judging import (
    JudgeDropped,
    JudgeKind,
    Scale,
    check_judge,
    judge_prompt,
    pairwise_prompt,
    parse_verdict,
)
from canaryflow.domain.pairwise import VALUE, candidate_first, outcome
from canaryflow.domain.resolution import Resolution, resolution_for
from canaryflow.errors import ValidationFailed
from canaryflow.providers.base import CallerRequest


class JudgePlane(Protocol):
    """What a judge scorer needs of :class:`~canaryflow.serving.traffic.TrafficPlane`."""

    resolver: Any

    async def aprepare(self, key: str, *, context: Mapping[str, Any] | None = None,
                       variables: Mapping[str, object] | None = None,
                       parameters: Mapping[str, Any] | None = None) -> Resolution: ...

    async def acomplete(self, res: Resolution, messages: Sequence[Mapping[str, Any]], *,
                        variables: Mapping[str, object] | None = None,
                        request: CallerRequest | None = None) -> Any: ...


def question_of(messages: Sequence[Mapping[str, Any]]) -> str:
    """The caller's last user message as text (text parts joined)."""
    for m in reversed(messages):
        if m.get("role") != "user":
            continue
        content = m.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "\n".join(str(p.get("text", "")) for p in content
                             if isinstance(p, Mapping) and p.get("type") in ("text", "input_text"))
    return ""


class JudgeScorer:
    """One ``judge`` / ``pairwise`` evaluator of one config version (see the module docstring)."""

    def __init__(self, spec: EvaluatorSpec, ctx: EvaluatorContext, plane: JudgePlane,
                 clock: Callable[[], float] = time.time) -> None:
        self.spec, self.ctx, self.plane, self.clock = spec, ctx, plane, clock
        self.kind: JudgeKind = "pairwise" if spec.kind == "pairwise" else "judge"
        self.meter = HourlyMeter(spec.budget_per_hour)
        self._scales: dict[int, Scale] = {}

    async def _resolve(self, request_id: str) -> Resolution:
        key = self.spec.judge or ""
        res = await self.plane.aprepare(key, context={"key": request_id})
        version = self.spec.version
        if version is None or version == res.version:
            return res
        pinned = resolution_for(res, self.plane.resolver.spec(key, version), version, {})
        return replace(pinned, version=version, variation="pinned", reason=f"evaluator pins v{version}")

    def _scale(self, key: str, version: int) -> Scale:
        if version not in self._scales:
            try:
                self._scales[version] = check_judge(self.plane.resolver.spec(key, version), self.kind,
                                                    field=f"evaluator {self.spec.name!r}")
            except ValidationFailed as exc:
                raise JudgeDropped("judge_config", str(exc)) from exc
        return self._scales[version]

    async def score(self, sample: Sample) -> list[Score]:
        """Call the judge on ``sample`` and return its score (none for a pairwise sample without stable's
        answer).

        Raises:
            JudgeDropped: over budget (``budget``) or a judge version that cannot judge (``judge_config``).
            JudgeOutputInvalid: the judge's answer is not a verdict.
            ProviderError: the judge's providers failed (counted under the judge's own config).
        """
        if self.kind == "pairwise" and sample.reference is None:
            return []
        budget = self.meter.budget
        if budget is not None and not self.meter.allows(self.clock()):
            raise JudgeDropped("budget", f"evaluator {self.spec.name!r}: budget {budget.describe()} reached")
        res = await self._resolve(sample.request_id)
        scale = self._scale(res.config_key, res.version)
        question = question_of(sample.messages)
        first = candidate_first(sample.request_id, self.spec.name)
        if self.kind == "pairwise":
            reference = sample.reference or ""
            a, b = (sample.text, reference) if first else (reference, sample.text)
            prompt = pairwise_prompt(question, a, b)
        else:
            prompt = judge_prompt(question, sample.text)
        self.meter.start(self.clock())
        message = {"role": "user", "content": prompt}
        # a whole request: the judge config's response_format is applied as for any caller
        request = CallerRequest("chat", {"model": res.config_key, "messages": [message]})
        done = await self.plane.acomplete(res, [message], request=request)
        self.meter.cost(self.clock(), done.cost_usd)
        verdict = parse_verdict(done.text, self.kind, scale)
        name = self.spec.name
        if self.kind == "pairwise":
            assert verdict.winner is not None
            result = outcome(verdict.winner, first)
            return [Score(name, VALUE[result], result == "win", result, verdict.reason)]
        assert verdict.score is not None
        passed = verdict.score >= self.spec.threshold
        label = verdict.label or ("pass" if passed else "fail")
        return [Score(name, verdict.score, passed, label, verdict.reason)]


class JudgeScorers:
    """Builds the judge scorers of a traffic plane; :meth:`register` plugs them into a scorer registry."""

    def __init__(self, plane: JudgePlane, clock: Callable[[], float] = time.time) -> None:
        self.plane, self.clock = plane, clock

    def build(self, spec: EvaluatorSpec, ctx: EvaluatorContext) -> JudgeScorer:
        """The scorer of one judge evaluator of one config version (a :data:`ScorerFactory`)."""
        return JudgeScorer(spec, ctx, self.plane, self.clock)

    def register(self, scorers: ScorerRegistry) -> ScorerRegistry:
        """Register ``judge`` and ``pairwise`` in ``scorers`` (returned)."""
        scorers.register("judge", self.build)
        scorers.register("pairwise", self.build)
        return scorers


__all__ = ["JudgePlane", "JudgeScorer", "JudgeScorers", "question_of"]
