"""Turn pydantic's errors into one readable message that names the source, the field and the fix."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import pydantic

from canaryflow.domain.errors import ValidationFailed

M = TypeVar("M", bound=pydantic.BaseModel)


def field_path(loc: tuple[int | str, ...]) -> str:
    """Render a pydantic location as ``messages[0].content``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def describe(exc: pydantic.ValidationError) -> list[str]:
    """One line per problem: ``field.path: what is wrong``."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (remove it or check its spelling)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        lines.append(f"{field_path(loc)}: {msg}")
    return lines


def parse(model: type[M], data: Any, *, source: str | None = None) -> M:
    """Validate ``data`` into ``model`` or raise :class:`ValidationFailed` naming every bad field."""
    if model is not None and not isinstance(data, Mapping) and not isinstance(data, model):
        raise ValidationFailed(
            f"expected a mapping of fields, got {type(data).__name__}", source=source
        )
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = describe(exc)
        raise ValidationFailed("; ".join(problems), source=source, problems=problems) from exc
