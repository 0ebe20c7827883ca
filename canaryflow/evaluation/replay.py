"""Call a stored configuration version on caller messages through the provider adapters.

Shared by the ``shadow_replay`` and evaluation activities. Provider failures become failed
:class:`~canaryflow.domain.evaluation.CallOutcome` values (their ``error_type`` from the taxonomy), never
exceptions; concurrency and request rate are bounded by :class:`Pacer`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from canaryflow.domain.config import ConfigSpec, render_text
from canaryflow.domain.evaluation import CallOutcome
from canaryflow.errors import CanaryflowError, ProviderError
from canaryflow.providers import ChatRequest, get_provider
from canaryflow.providers.pricing import cost_usd

T = TypeVar("T")
_NUMBER = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)")
JUDGE_PROMPT = (
    "Rate how well the CANDIDATE answer agrees in meaning with the REFERENCE answer to the same request. "
    "Reply with one number between 0 (contradicts or unrelated) and 1 (same meaning)."
)


def render_messages(spec: ConfigSpec, variables: Mapping[str, object], key: str) -> list[dict[str, str]]:
    """The version's own messages with ``{{placeholders}}`` filled (RenderError if one is missing)."""
    return [{"role": m.role, "content": render_text(m.content, variables, config_key=key)}
            for m in spec.messages]


def _cost(provider: str, model: str, input_tokens: int, output_tokens: int, cached: int) -> float:
    """Dollar cost through the price table (0 for a model it does not know)."""
    try:
        return cost_usd(provider, model, input_tokens, output_tokens, cached)
    except CanaryflowError:
        return 0.0


async def call_version(
    spec: ConfigSpec,
    caller: Sequence[dict[str, str]],
    *,
    key: str,
    variables: Mapping[str, object] | None = None,
    timeout: float = 30.0,
) -> CallOutcome:
    """One call of ``spec`` (no fallback: the version itself is what is measured)."""
    started = time.perf_counter()
    try:
        messages = [*render_messages(spec, variables or {}, key), *caller]
        provider = get_provider(spec.provider)
        result = await provider.complete(
            ChatRequest(spec.model, messages, spec.parameters.as_kwargs()), timeout=timeout)
    except ProviderError as exc:
        return CallOutcome(ok=False, error_type=exc.error_type, latency_s=time.perf_counter() - started)
    except CanaryflowError:
        return CallOutcome(ok=False, error_type="bad_request", latency_s=time.perf_counter() - started)
    except Exception:  # an adapter bug counts as an error of this call, not a crash of the replay
        return CallOutcome(ok=False, error_type="other", latency_s=time.perf_counter() - started)
    return CallOutcome(
        ok=True, text=result.text, finish_reason=result.finish_reason,
        latency_s=time.perf_counter() - started, input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        cost_usd=_cost(result.provider, result.model, result.input_tokens, result.output_tokens,
                       result.cached_input_tokens),
    )


def parse_judge_score(text: str) -> float | None:
    """The first number of a judge model's reply as a score in [0, 1] (0–10 and 0–100 scales too)."""
    m = _NUMBER.search(text)
    if not m:
        return None
    value = float(m.group(1))
    for scale in (1.0, 10.0, 100.0):
        if value <= scale:
            return value / scale
    return None


async def judge_pair(
    judge: ConfigSpec, request: Sequence[dict[str, str]], reference: str, candidate: str, *,
    key: str, timeout: float = 30.0,
) -> float | None:
    """Ask a judge-model configuration how far ``candidate`` agrees with ``reference`` (None on failure)."""
    question = next((m["content"] for m in reversed(request) if m.get("role") == "user"), "")
    prompt = f"{JUDGE_PROMPT}\n\nREQUEST:\n{question}\n\nREFERENCE:\n{reference}\n\nCANDIDATE:\n{candidate}"
    out = await call_version(judge, [{"role": "user", "content": prompt}], key=key, timeout=timeout)
    return parse_judge_score(out.text) if out.ok else None


class Pacer:
    """Bounded concurrency and a maximum start rate (requests per second) for replayed calls."""

    def __init__(self, concurrency: int, rate_per_s: float) -> None:
        self._sem = asyncio.Semaphore(max(1, concurrency))
        self._interval = 1.0 / rate_per_s if rate_per_s > 0 else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` once a concurrency slot is free and the rate allows."""
        async with self._sem:
            async with self._lock:
                now = time.monotonic()
                wait = self._next - now
                self._next = max(now, self._next) + self._interval
            if wait > 0:
                await asyncio.sleep(wait)
            return await fn()


__all__ = ["JUDGE_PROMPT", "Pacer", "call_version", "judge_pair", "parse_judge_score", "render_messages"]
