"""Circuit breakers per config, variation, provider and model, opened by a failure rate over a window.

Keyed by ``scope`` = (config, variation) as well as provider/model, so a candidate whose calls to a model
fail (429s, 5xx) opens only its own circuit: stable users of the same provider/model keep being served by it,
and each variation's fallbacks are counted against that variation alone.

``closed`` → (failures / calls ≥ threshold over the last ``window_s``, at least ``min_calls``) → ``open``
→ (``cooldown_s`` later) → ``half_open``: one probe call at a time; its success closes the circuit, its
failure opens it again. Time comes from an injectable ``clock`` so tests drive it without sleeping.

Each circuit keeps running counts of the calls and failures in its window, updated as calls enter and
leave it, so :meth:`CircuitBreaker.record` is O(1) amortised whatever the request rate.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]


@dataclass
class _Circuit:
    calls: deque[tuple[float, bool]] = field(default_factory=deque)
    failures: int = 0
    state: str = "closed"
    opened_at: float = 0.0
    probe_started: float | None = None


Scope = tuple[str, str]
"""(config key, variation) of the calls a circuit counts; ``("", "")`` for unscoped callers."""
UNSCOPED: Scope = ("", "")


class CircuitBreaker:
    """Failure-rate circuit breakers keyed by (config, variation, provider, model)."""

    def __init__(self, *, failure_threshold: float = 0.5, window_s: float = 30.0, min_calls: int = 10,
                 cooldown_s: float = 15.0, clock: Clock = time.monotonic):
        if not 0 < failure_threshold <= 1:
            raise ValueError("failure_threshold must be in (0, 1]")
        self.failure_threshold = failure_threshold
        self.window_s = window_s
        self.min_calls = max(1, min_calls)
        self.cooldown_s = cooldown_s
        self.clock = clock
        self._circuits: dict[tuple[str, str, str, str], _Circuit] = {}
        self._lock = threading.Lock()

    def _get(self, provider: str, model: str, scope: Scope) -> _Circuit:
        key = (scope[0], scope[1], provider, model)
        circuit = self._circuits.get(key)
        if circuit is None:
            circuit = self._circuits[key] = _Circuit()
        return circuit

    def state(self, provider: str, model: str, scope: Scope = UNSCOPED) -> str:
        """``closed``, ``open`` or ``half_open`` (an open circuit past its cooldown reads half_open)."""
        with self._lock:
            circuit = self._get(provider, model, scope)
            if circuit.state == "open" and self.clock() - circuit.opened_at >= self.cooldown_s:
                return "half_open"
            return circuit.state

    def allow(self, provider: str, model: str, scope: Scope = UNSCOPED) -> bool:
        """Whether a call for ``scope`` may go to ``provider``/``model`` now (claims the probe when
        half-open)."""
        circuit = self._circuits.get((scope[0], scope[1], provider, model))
        if circuit is not None and circuit.state == "closed":  # the common case: no lock, no clock
            return True
        with self._lock:
            circuit = self._get(provider, model, scope)
            now = self.clock()
            if circuit.state == "closed":
                return True
            if circuit.state == "open":
                if now - circuit.opened_at < self.cooldown_s:
                    return False
                circuit.state = "half_open"
                circuit.probe_started = None
            stale = circuit.probe_started is not None and now - circuit.probe_started >= self.cooldown_s
            if circuit.probe_started is None or stale:
                circuit.probe_started = now
                return True
            return False

    def record(self, provider: str, model: str, ok: bool, scope: Scope = UNSCOPED) -> None:
        """Count a finished call (``ok=False`` only for failures that say the provider is unhealthy)."""
        with self._lock:
            circuit = self._get(provider, model, scope)
            now = self.clock()
            if circuit.state != "closed":
                if ok:
                    circuit.state = "closed"
                    circuit.calls.clear()
                    circuit.failures = 0
                else:
                    circuit.state = "open"
                    circuit.opened_at = now
                circuit.probe_started = None
                return
            calls = circuit.calls
            calls.append((now, ok))
            failures = circuit.failures if ok else circuit.failures + 1
            window = self.window_s
            while calls and now - calls[0][0] > window:
                if not calls.popleft()[1]:
                    failures -= 1
            circuit.failures = failures
            if len(calls) >= self.min_calls and failures / len(calls) >= self.failure_threshold:
                circuit.state = "open"
                circuit.opened_at = now
                calls.clear()
                circuit.failures = 0

    def window_counts(self, provider: str, model: str, scope: Scope = UNSCOPED) -> tuple[int, int]:
        """(failures, calls) currently counted in the closed circuit's window (for tests and diagnostics)."""
        with self._lock:
            circuit = self._get(provider, model, scope)
            return circuit.failures, len(circuit.calls)


__all__ = ["UNSCOPED", "CircuitBreaker", "Clock", "Scope"]
