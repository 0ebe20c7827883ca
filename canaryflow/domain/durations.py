"""Durations as plans write them: ``"90s"``, ``"10m"``, ``"2h"``, ``"1d"`` (combinable: ``"1h30m"``), a
number of seconds, or ISO 8601 (``"PT10M"``). Shared by plans and gates."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_SHORT = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)d)?\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*"
                    r"(?:(\d+(?:\.\d+)?)s)?\s*$")
_ISO = re.compile(r"^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?"
                  r"(?:(\d+(?:\.\d+)?)S)?)?$", re.IGNORECASE)


def parse_duration(value: Any) -> timedelta:
    """Parse ``"90s"``, ``"10m"``, ``"2h"``, ``"1d"``, ``"1h30m"``, ISO 8601 or seconds into a timedelta.

    Raises:
        ValueError: the value is none of these forms.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration is a string like '90s', '10m', '2h', '1d' or ISO 8601 'PT10M'")
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    if isinstance(value, str) and value.strip():
        text = value.strip()
        for pattern in (_SHORT, _ISO):
            m = pattern.match(text)
            if m and any(m.groups()):
                d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
                return timedelta(days=d, hours=h, minutes=mi, seconds=s)
    raise ValueError(f"invalid duration {value!r}: write '90s', '10m', '2h', '1d' or ISO 8601 'PT10M'")


def format_duration(value: timedelta) -> str:
    """Render a timedelta the way plans write it: ``"1d2h"``, ``"10m"``, ``"90s"`` → ``"1m30s"``."""
    total = value.total_seconds()
    if total <= 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        n = int(total // size)
        if n:
            out += f"{n}{unit}"
            total -= n * size
    if total or not out:
        out += f"{total:g}s"
    return out


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]


__all__ = ["Duration", "format_duration", "parse_duration"]
