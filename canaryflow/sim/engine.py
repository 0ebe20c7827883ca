"""The simulator's decisions, free of HTTP: for one request, which error or which answer, how slow.

Every request draws from its own ``random.Random`` seeded by (seed, a digest of model + messages, how many
times that exact request was seen before), so a run repeats for the same seed whatever the interleaving of
concurrent requests. Draws always happen in the same order: error, latency, answer, length.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
from collections import Counter, deque
from dataclasses import dataclass, field

from canaryflow.domain.judging import parse_prompt
from canaryflow.sim.judge import grade
from canaryflow.sim.profiles import ModelProfile, apply_markers, default_profiles, lookup, strip_markers
from canaryflow.sim.questions import TOKEN_PATTERN as _TOKEN
from canaryflow.sim.questions import count_tokens, find_question, lorem, pieces
from canaryflow.sim.requests import SimRequest
from canaryflow.sim.schema import example, violate

_Z95 = 1.6448536269514722
_MAX_SEEN = 100_000


@dataclass
class ToolCall:
    """One function call the simulated model makes; ``error`` names how it is wrong, if it is."""

    id: str
    name: str
    arguments: str
    error: str | None = None

    def input(self) -> dict[str, object]:
        """The arguments as an object (``{}`` when they are not a JSON object)."""
        try:
            value = json.loads(self.arguments)
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}


@dataclass
class Outcome:
    """What the simulator answers to one request."""

    kind: str  # ok | rate_limit | server_error | timeout | status
    status: int
    latency_s: float
    ttft_s: float
    text: str = ""
    pieces: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    finish_reason: str = "stop"
    retry_after_s: float | None = None
    hang_s: float = 0.0
    stream_error_after: int | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)


def sample_latency(rng: random.Random, median_ms: float, p95_ms: float) -> float:
    """Seconds from a lognormal with the given median and 95th percentile (one Gaussian draw)."""
    z = rng.gauss(0.0, 1.0)
    if median_ms <= 0:
        return 0.0
    sigma = math.log(p95_ms / median_ms) / _Z95 if p95_ms > median_ms else 0.0
    return math.exp(math.log(median_ms) + sigma * z) / 1000.0


def input_token_count(messages: list[dict[str, str]]) -> int:
    """Simulated prompt tokens: content tokens plus 4 per message plus 3."""
    return sum(count_tokens(m.get("content", "")) + 4 for m in messages) + 3


class Simulator:
    """Profiles, seed and counters of one simulated provider endpoint (thread-safe)."""

    def __init__(self, seed: int = 0, profiles: dict[str, ModelProfile] | None = None,
                 latency_scale: float = 1.0):
        self.seed = seed
        self.latency_scale = latency_scale
        self._initial = {k: v.model_copy() for k, v in (profiles or default_profiles()).items()}
        self.profiles = {k: v.model_copy() for k, v in self._initial.items()}
        self._seen: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self.traceparents: deque[str] = deque(maxlen=1000)  # W3C traceparent of the latest requests
        self._lock = threading.Lock()

    def reset(self, seed: int | None = None) -> None:
        """Back to the initial profiles, counters and (optionally new) seed."""
        with self._lock:
            if seed is not None:
                self.seed = seed
            self.profiles = {k: v.model_copy() for k, v in self._initial.items()}
            self._seen.clear()
            self.stats.clear()
            self.traceparents.clear()

    def update_profile(self, model: str, changes: dict[str, object]) -> ModelProfile:
        """Merge ``changes`` into ``model``'s profile (created from ``default`` if new); validated."""
        with self._lock:
            base = lookup(self.profiles, model)
            merged = ModelProfile.model_validate({**base.model_dump(), **changes})
            self.profiles[model] = merged
            return merged

    def _rng(self, model: str, messages: list[dict[str, str]]) -> random.Random:
        digest = hashlib.sha1(json.dumps([model, messages], sort_keys=True).encode()).hexdigest()[:16]
        with self._lock:
            if len(self._seen) > _MAX_SEEN:
                self._seen.clear()
            n = self._seen[digest]
            self._seen[digest] = n + 1
        return random.Random(f"{self.seed}:{digest}:{n}")

    def plan(self, model: str, messages: list[dict[str, str]], max_tokens: int | None = None, *,
             request: SimRequest | None = None) -> Outcome:
        """Decide the outcome of one request (``request``: its tools, tool choice and schema, if any).

        Raises:
            ValueError: a malformed ``[sim:...]`` marker.
        """
        profile = apply_markers(lookup(self.profiles, model), [m.get("content", "") for m in messages], model)
        rng = self._rng(model, messages)
        u_error = rng.random()
        latency = sample_latency(rng, profile.latency_median_ms, profile.latency_p95_ms) * self.latency_scale
        ttft = latency * profile.ttft_fraction
        outcome = self._error(profile, u_error, latency)
        last_user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        judged = parse_prompt(last_user) if outcome is None and "[canaryflow:judge" in last_user else None
        if judged is not None:
            text = grade(profile, rng, judged, request.schema if request is not None else None)
            inp = input_token_count(messages)
            outcome = Outcome("ok", 200, latency, ttft, text=text, pieces=pieces(text), input_tokens=inp,
                              output_tokens=count_tokens(text))
        elif outcome is None:
            outcome = self._answer(profile, rng, messages, max_tokens, latency, ttft)
            if request is not None and (request.tools or request.schema is not None or request.json_mode
                                        or request.extra_input_tokens):
                _shape(outcome, profile, rng, request)
        with self._lock:
            self.stats["requests"] += 1
            self.stats[outcome.kind] += 1
        return outcome

    @staticmethod
    def _error(profile: ModelProfile, u: float, latency: float) -> Outcome | None:
        if profile.status is not None:
            return Outcome("status", profile.status, latency * 0.2, 0.0)
        edge = profile.rate_limit_rate
        if u < edge:
            return Outcome("rate_limit", 429, latency * 0.05, 0.0, retry_after_s=profile.retry_after_s)
        edge += profile.error_rate
        if u < edge:
            return Outcome("server_error", 500, latency * 0.5, 0.0)
        edge += profile.timeout_rate
        if u < edge:
            return Outcome("timeout", 504, 0.0, 0.0, hang_s=profile.hang_s)
        return None

    @staticmethod
    def _answer(profile: ModelProfile, rng: random.Random, messages: list[dict[str, str]],
                max_tokens: int | None, latency: float, ttft: float) -> Outcome:
        last_user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        question = find_question(strip_markers(last_user))
        u_quality = rng.random()
        if question is not None:
            text = question.answer if u_quality < profile.quality else rng.choice(question.wrong)
        else:
            jitter = rng.uniform(0.5, 1.5)
            text = lorem(rng, max(1, round(profile.output_tokens * jitter)))
        if profile.json_answers:
            text = json.dumps({"answer": text})
        finish = "stop"
        if max_tokens is not None and count_tokens(text) > max_tokens:
            text = _truncate(text, max_tokens)
            finish = "length"
        if profile.finish in ("length", "content_filter"):
            finish = profile.finish
            if finish == "content_filter":
                text = ""
        inp = input_token_count(messages)
        return Outcome("ok", 200, latency, ttft, text=text, pieces=pieces(text), input_tokens=inp,
                       output_tokens=count_tokens(text), finish_reason=finish,
                       cached_input_tokens=int(inp * profile.cached_fraction),
                       stream_error_after=profile.stream_error_after)


_TOOL_ERRORS = {"chat": ("invalid_json", "unknown_tool", "bad_arguments"),
                "responses": ("invalid_json", "unknown_tool", "bad_arguments"),
                "messages": ("unknown_tool", "bad_arguments")}  # Anthropic's tool input is always an object


def _id(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                            for _ in range(24))


def _tool_call(profile: ModelProfile, rng: random.Random, req: SimRequest) -> ToolCall | None:
    """The call the model makes, or None when it answers instead (draws only when tools are offered)."""
    if not req.tools or req.tool_choice == "none":
        return None
    if req.tool_choice == "auto" and (req.after_tool or rng.random() >= profile.tool_use_rate):
        return None
    tool = next((t for t in req.tools if t.name == req.forced_tool), None) or rng.choice(req.tools)
    args: object = example(tool.parameters, rng)
    name, arguments, error = tool.name, json.dumps(args), None
    if rng.random() < profile.tool_error_rate:
        kinds = _TOOL_ERRORS.get(req.api, _TOOL_ERRORS["chat"])
        error = profile.tool_error if profile.tool_error in kinds else rng.choice(kinds)
        if error == "invalid_json":
            arguments = arguments[:-1] if len(arguments) > 1 else "{"
        elif error == "unknown_tool":
            taken = {t.name for t in req.tools}
            name = next(f"{tool.name}_{suffix}" for suffix in ("v2", "new", "x", "alt", "old")
                        if f"{tool.name}_{suffix}" not in taken)
        else:
            arguments = json.dumps(violate(tool.parameters, rng))
    prefix = "toolu_" if req.api == "messages" else "call_"
    return ToolCall(_id(rng, prefix), name, arguments, error)


def _shape(out: Outcome, profile: ModelProfile, rng: random.Random, req: SimRequest) -> None:
    """Turn a text answer into a tool call or a structured answer, as the request asks."""
    out.input_tokens += req.extra_input_tokens
    if req.tools:
        out.input_tokens += sum(count_tokens(json.dumps(t.parameters)) + 8 for t in req.tools)
    if out.finish_reason == "content_filter":
        return
    call = _tool_call(profile, rng, req)
    if call is not None:
        out.tool_calls = [call]
        out.text, out.pieces, out.finish_reason = "", [], "tool_calls"
        out.output_tokens = count_tokens(call.name + call.arguments) + 4
        return
    if req.schema is not None:
        bad = rng.random() < profile.schema_error_rate
        value = violate(req.schema, rng) if bad else example(req.schema, rng, text=out.text)
        out.text = json.dumps(value)
    elif req.json_mode and not profile.json_answers:
        out.text = json.dumps({"answer": out.text})
    else:
        return
    out.pieces = pieces(out.text)
    out.output_tokens = count_tokens(out.text)
    out.finish_reason = "stop"


def _truncate(text: str, n_tokens: int) -> str:
    """The first ``n_tokens`` tokens of ``text`` (by :func:`count_tokens`)."""
    for i, match in enumerate(_TOKEN.finditer(text), start=1):
        if i == n_tokens:
            return text[:match.end()]
    return text


__all__ = ["Outcome", "Simulator", "ToolCall", "input_token_count", "sample_latency"]
