"""A judge's spending limit per hour, in US dollars or in calls (pure; the caller passes the time).

``budget_per_hour: 2.5`` (dollars), ``{usd: 2.5}`` or ``{calls: 600}`` on a ``judge`` / ``pairwise``
evaluator. :class:`HourlyMeter` keeps what was spent in the last hour in 60 one-minute buckets (bounded
memory whatever the traffic) and says whether one more call fits. A call in flight counts as a call at
once and its dollars when it returns, so a dollar budget can be overshot by the calls in flight at the
moment it is reached (at most the scoring queue's concurrency).
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

BUCKET_S = 60.0
BUCKETS = 60


class Budget(BaseModel):
    """A limit per hour: ``usd`` (the judge's own cost) or ``calls``, exactly one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    usd: float | None = Field(default=None, gt=0.0, description="dollars per hour")
    calls: int | None = Field(default=None, ge=1, description="judge calls per hour")

    @model_validator(mode="before")
    @classmethod
    def _number_is_dollars(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {"usd": value}
        return value

    @model_validator(mode="after")
    def _one_unit(self) -> Budget:
        if (self.usd is None) == (self.calls is None):
            raise ValueError("a budget is either {usd: DOLLARS} or {calls: N} per hour (a plain number is "
                             "dollars), not both and not neither")
        return self

    def describe(self) -> str:
        """``$2.5/h`` or ``600 calls/h``."""
        return f"${self.usd:g}/h" if self.usd is not None else f"{self.calls} calls/h"


class HourlyMeter:
    """What one judge spent in the last hour, against its :class:`Budget`."""

    def __init__(self, budget: Budget | None) -> None:
        self.budget = budget
        self._calls: dict[int, int] = {}
        self._usd: dict[int, float] = {}

    def _trim(self, now: float) -> int:
        minute = math.floor(now / BUCKET_S)
        oldest = minute - BUCKETS + 1
        for book in (self._calls, self._usd):
            for k in [k for k in book if k < oldest]:
                del book[k]
        return minute

    def spent(self, now: float) -> tuple[int, float]:
        """``(calls, dollars)`` in the last hour."""
        self._trim(now)
        return sum(self._calls.values()), sum(self._usd.values())

    def allows(self, now: float) -> bool:
        """Whether one more call fits in the budget (always, without one)."""
        if self.budget is None:
            return True
        calls, usd = self.spent(now)
        if self.budget.calls is not None:
            return calls < self.budget.calls
        return usd < (self.budget.usd or 0.0)

    def start(self, now: float) -> None:
        """Count a call now (before it is made)."""
        minute = self._trim(now)
        self._calls[minute] = self._calls.get(minute, 0) + 1

    def cost(self, now: float, usd: float) -> None:
        """Add a finished call's dollars."""
        if usd > 0:
            minute = self._trim(now)
            self._usd[minute] = self._usd.get(minute, 0.0) + usd


__all__ = ["BUCKETS", "BUCKET_S", "Budget", "HourlyMeter"]
