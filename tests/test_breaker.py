"""CircuitBreaker's running window counters against a straightforward recount of the window."""

from __future__ import annotations

import random

import pytest

from canaryflow.providers.breaker import CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recount:
    """The reference: keeps every call and recounts the window on each record (the original O(window))."""

    def __init__(self, threshold: float, window_s: float, min_calls: int) -> None:
        self.threshold, self.window_s, self.min_calls = threshold, window_s, min_calls
        self.calls: list[tuple[float, bool]] = []
        self.open = False

    def record(self, now: float, ok: bool) -> None:
        self.calls.append((now, ok))
        self.calls = [(t, good) for t, good in self.calls if not now - t > self.window_s]
        failures = sum(1 for _, good in self.calls if not good)
        if len(self.calls) >= self.min_calls and failures / len(self.calls) >= self.threshold:
            self.open = True
            self.calls = []

    def counts(self) -> tuple[int, int]:
        return sum(1 for _, good in self.calls if not good), len(self.calls)


@pytest.mark.parametrize("seed", range(5))
def test_running_counters_equal_a_recount_under_a_random_sequence(seed: int) -> None:
    rng = random.Random(seed)
    clock = FakeClock()
    threshold, window = rng.choice([0.3, 0.5, 0.9]), rng.choice([1.0, 5.0, 30.0])
    min_calls = rng.randint(1, 20)
    breaker = CircuitBreaker(failure_threshold=threshold, window_s=window, min_calls=min_calls,
                             cooldown_s=2.0, clock=clock)
    ref = Recount(threshold, window, min_calls)
    opened = 0
    for _ in range(5000):
        clock.now += rng.choice([0.0, 0.001, 0.01, 0.1, rng.uniform(0, 2 * window)])
        state = breaker.state("p", "m")
        if state != "closed":
            # the reference only models the closed window; a probe's success closes with an empty window
            assert state in ("open", "half_open")
            if breaker.allow("p", "m"):
                good = rng.random() < 0.7
                breaker.record("p", "m", good)
                if good:
                    ref.calls, ref.open = [], False
            continue
        ok = rng.random() > rng.choice([0.05, 0.4, 0.8])
        breaker.record("p", "m", ok)
        ref.record(clock.now, ok)
        if ref.open:
            opened += 1
            assert breaker.state("p", "m") == "open"
        else:
            assert breaker.state("p", "m") == "closed"
            assert breaker.window_counts("p", "m") == ref.counts()
    assert breaker.window_counts("other", "m") == (0, 0)
    assert opened > 0  # the sequences exercise opening, not only counting


def test_a_long_window_at_a_high_rate_keeps_exact_counts() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=0.5, window_s=7500, min_calls=10, clock=clock)
    for i in range(60_000):  # a call every 0.25 s (exact in binary) for twice the window, one failure in ten
        clock.now += 0.25
        breaker.record("p", "m", i % 10 != 0)
    failures, calls = breaker.window_counts("p", "m")
    assert calls == 30_001 and failures == 3_000  # both ends of the window count
    assert breaker.state("p", "m") == "closed"
