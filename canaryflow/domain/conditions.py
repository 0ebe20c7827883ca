"""Success/failure conditions of custom gates: ``result <op> number`` joined by ``and`` / ``or``.

A tiny tokenizer and parser, no ``eval``: anything else (names other than ``result``, calls, attribute
access, parentheses, arithmetic) is rejected with a message naming the offending text. ``and`` binds
tighter than ``or``, as in Python.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from canaryflow.domain.errors import ValidationFailed

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_TOKEN = re.compile(
    r"\s*(?:(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|(?P<op><=|>=|==|!=|<|>)|(?P<word>[A-Za-z_]+))"
)
_MAX_LEN = 500


@dataclass(frozen=True)
class Comparison:
    """``result <op> number``."""

    op: str
    value: float

    def holds(self, result: float) -> bool:
        """Whether the comparison holds for ``result``."""
        return _OPS[self.op](result, self.value)


@dataclass(frozen=True)
class Condition:
    """A disjunction of conjunctions of comparisons (``a and b or c`` = ``(a and b) or c``)."""

    text: str
    clauses: tuple[tuple[Comparison, ...], ...]

    def holds(self, result: float) -> bool:
        """Evaluate the condition for a query result (NaN never satisfies a comparison but ``!=``)."""
        return any(all(c.holds(result) for c in clause) for clause in self.clauses)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise ValidationFailed(
                f"condition {text!r}: unexpected {text[pos:].strip()[:20]!r}; "
                "write `result <op> number`, joined by and/or (ops: < <= > >= == !=)"
            )
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def parse_condition(text: str) -> Condition:
    """Parse ``result >= 0.99``, ``result < 0.02 or result > 5``.

    Raises:
        ValidationFailed: for anything that is not ``result <op> number`` joined by and/or.
    """
    if not text or not text.strip():
        raise ValidationFailed("condition is empty; write e.g. 'result < 0.02'")
    if len(text) > _MAX_LEN:
        raise ValidationFailed(f"condition is longer than {_MAX_LEN} characters")
    toks = _tokens(text)
    clauses: list[tuple[Comparison, ...]] = []
    current: list[Comparison] = []
    i = 0
    while True:
        part = toks[i : i + 3]
        if (
            len(part) < 3
            or part[0] != ("word", "result")
            or part[1][0] != "op"
            or part[2][0] != "num"
        ):
            got = " ".join(v for _, v in part) or "end of text"
            raise ValidationFailed(
                f"condition {text!r}: expected `result <op> number` at {got!r} (ops: < <= > >= == !=)"
            )
        value = float(part[2][1])
        if not math.isfinite(value):
            raise ValidationFailed(f"condition {text!r}: {part[2][1]!r} is not a finite number")
        current.append(Comparison(part[1][1], value))
        i += 3
        if i == len(toks):
            clauses.append(tuple(current))
            return Condition(text.strip(), tuple(clauses))
        joiner = toks[i]
        if joiner == ("word", "and"):
            pass
        elif joiner == ("word", "or"):
            clauses.append(tuple(current))
            current = []
        else:
            raise ValidationFailed(f"condition {text!r}: expected 'and' or 'or' at {joiner[1]!r}")
        i += 1


__all__ = ["Comparison", "Condition", "parse_condition"]
