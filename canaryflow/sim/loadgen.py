"""Synthetic users sending the simulator's known questions through the gateway, with feedback.

Users come in three kinds — ``internal`` (an ``@acme.com`` e-mail), ``beta`` (``beta: true``) and
``regular`` — so the segments of DESIGN.md match them. Requests go out at a fixed rate (open loop, at most
``concurrency`` in flight) with the official ``openai`` client, the user's key and attributes in
``extra_body={"canaryflow": ...}``. Each answer is checked with :func:`canaryflow.sim.questions.is_correct`
and a positive or negative ``POST /v1/feedback`` follows (``feedback_share`` of the answers).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai

from canaryflow.sim.questions import is_correct, sample_question


@dataclass(frozen=True)
class User:
    """A synthetic user."""

    key: str
    kind: str
    attributes: dict[str, Any]


def make_users(n: int, rng: random.Random, *, internal_share: float = 0.1, beta_share: float = 0.2
               ) -> list[User]:
    """``n`` users: ~``internal_share`` internal, ~``beta_share`` beta, the rest regular."""
    users = []
    for i in range(n):
        draw = rng.random()
        if draw < internal_share:
            users.append(User(f"emp-{i}", "internal", {"email": f"emp{i}@acme.com", "plan": "enterprise"}))
        elif draw < internal_share + beta_share:
            users.append(User(f"beta-{i}", "beta", {"email": f"user{i}@example.com", "beta": True,
                                                     "plan": "pro"}))
        else:
            users.append(User(f"user-{i}", "regular", {"email": f"user{i}@example.com",
                                                        "plan": rng.choice(["free", "pro"])}))
    return users


@dataclass
class LoadgenSummary:
    """What a run did."""

    sent: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    by_variation: Counter[str] = field(default_factory=Counter)
    correct: Counter[str] = field(default_factory=Counter)
    fallbacks: int = 0
    feedback_sent: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    def lines(self) -> list[str]:
        """A human-readable summary."""
        lat = sorted(self.latencies)

        def q(p: float) -> float:
            return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else 0.0

        rate = self.sent / self.elapsed_s if self.elapsed_s else 0.0
        out = [f"sent {self.sent} in {self.elapsed_s:.1f}s ({rate:.1f}/s): ok {self.ok}, "
               f"errors {sum(self.errors.values())} {dict(self.errors) or ''}".rstrip(),
               f"latency p50 {q(0.5):.1f} ms, p95 {q(0.95):.1f} ms; fallbacks {self.fallbacks}"]
        for name, count in sorted(self.by_variation.items()):
            right = self.correct[name]
            out.append(f"  {name:<24} {count:>6} answers, {right / count:6.1%} correct")
        out.append(f"feedback: {self.feedback_sent['positive']} positive, "
                   f"{self.feedback_sent['negative']} negative")
        return out


async def run_loadgen(base_url: str, config: str, *, rate: float = 10.0, duration: float = 10.0,
                      concurrency: int = 16, users: int = 200, seed: int = 7, feedback_share: float = 1.0,
                      api_key: str = "loadgen", variables: dict[str, str] | None = None) -> LoadgenSummary:
    """Send ``rate`` requests per second for ``duration`` seconds through the gateway at ``base_url``.

    Args:
        base_url: the gateway, e.g. ``http://127.0.0.1:8080``.
        config: the config key (sent as ``model``).
        rate: requests per second.
        duration: seconds of load.
        concurrency: requests in flight at most.
        users: how many synthetic users.
        seed: seeds users, questions and feedback draws.
        feedback_share: share of answers that get feedback.
        api_key: sent as the OpenAI key (the gateway does not check it).
        variables: the config's template variables (``canaryflow.variables``).
    """
    rng = random.Random(seed)
    people = make_users(users, rng)
    summary = LoadgenSummary()
    gate = asyncio.Semaphore(concurrency)
    root = base_url.rstrip("/")
    client = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key=api_key, max_retries=0, timeout=60.0)
    http = httpx.AsyncClient(base_url=root, timeout=30.0)

    async def one(user: User, prompt: str, give_feedback: bool) -> None:
        async with gate:
            started = time.perf_counter()
            try:
                raw = await client.chat.completions.with_raw_response.create(
                    model=config, messages=[{"role": "user", "content": prompt}],
                    extra_body={"canaryflow": {"user": user.key, "attributes": user.attributes,
                                               "variables": variables or {}}})
            except openai.APIStatusError as exc:
                summary.errors[f"http_{exc.status_code}"] += 1
                return
            except openai.APIError as exc:
                summary.errors[type(exc).__name__] += 1
                return
            summary.latencies.append(time.perf_counter() - started)
            completion = raw.parse()
            summary.ok += 1
            name = f"v{raw.headers.get('x-canaryflow-version')} {raw.headers.get('x-canaryflow-variation')}"
            summary.by_variation[name] += 1
            summary.fallbacks += raw.headers.get("x-canaryflow-fallback") == "true"
            answer = completion.choices[0].message.content or ""
            right = is_correct(prompt, answer)
            summary.correct[name] += bool(right)
            if give_feedback and right is not None:
                sentiment = "positive" if right else "negative"
                r = await http.post("/v1/feedback", json={
                    "request_id": raw.headers.get("x-canaryflow-request-id"), "sentiment": sentiment})
                if r.status_code == 200:
                    summary.feedback_sent[sentiment] += 1

    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter()
    total = max(1, int(rate * duration))
    try:
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            user = rng.choice(people)
            prompt = sample_question(rng).prompt
            summary.sent += 1
            tasks.append(asyncio.create_task(one(user, prompt, rng.random() < feedback_share)))
        await asyncio.gather(*tasks)
    finally:
        summary.elapsed_s = time.perf_counter() - start
        await client.close()
        await http.aclose()
    return summary


__all__ = ["LoadgenSummary", "User", "make_users", "run_loadgen"]
