"""Implicit feedback: the events users' apps already know about an answer, validated. Pure.

``track(request_id, event, value?)`` names one of :data:`EVENTS`. ``edited`` carries the edit distance
(characters changed, an integer ≥ 0) and ``dwell_seconds`` the seconds spent on the answer (≥ 0); the other
events carry no value (a value sent with them is refused, never dropped). One row per request and event: a
later event of the same kind on the same request replaces the earlier one (as explicit feedback does).
"""

from __future__ import annotations

import math

from canaryflow.domain.errors import ValidationFailed

VALUED = {"edited": "the edit distance (characters changed, an integer >= 0)",
          "dwell_seconds": "the seconds spent on the answer (a number >= 0)"}
"""Events whose value is required, and what it means."""
EVENTS = ("edited", "copied", "shared", "regenerated", "task_completed", "abandoned", "dwell_seconds")
"""Every implicit event canaryflow accepts (the ``event`` label of ``canaryflow_implicit_feedback_total``)."""


def check_event(event: object, value: object = None) -> tuple[str, float | None]:
    """``(event, value)`` as stored, or :class:`ValidationFailed` naming the field and the fix."""
    if not isinstance(event, str) or event not in EVENTS:
        raise ValidationFailed(f"'event' must be one of {', '.join(EVENTS)}, got {event!r}", source="event")
    if event not in VALUED:
        if value is not None:
            raise ValidationFailed(f"event {event!r} carries no value: leave 'value' out (only "
                                   f"{' and '.join(VALUED)} have one)", source="value")
        return event, None
    if value is None or isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value < 0:
        raise ValidationFailed(f"event {event!r} needs 'value': {VALUED[event]}, got {value!r}",
                               source="value")
    if event == "edited" and value != int(value):
        raise ValidationFailed(f"event 'edited' needs 'value': {VALUED['edited']}, got {value!r}",
                               source="value")
    return event, float(value)


__all__ = ["EVENTS", "VALUED", "check_event"]
