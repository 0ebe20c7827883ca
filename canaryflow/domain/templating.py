"""Templated custom queries: ``$selector``, ``$window`` and plan arguments ``{{args.NAME}}`` (Argo's syntax).

A custom gate's ``query`` is a template. :func:`check_template` refuses what cannot be filled (a ``{{...}}``
that is not ``{{args.NAME}}``); :func:`template_args` lists the arguments a query needs, so a plan can refuse
one it does not define; :func:`render` fills everything in. Pure: the metrics adapter calls it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from canaryflow.domain.errors import ValidationFailed

ARG_NAME = r"[A-Za-z_][A-Za-z0-9_-]{0,62}"
_PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_ARG = re.compile(rf"^args\.({ARG_NAME})$")


def template_args(template: str) -> list[str]:
    """The ``{{args.NAME}}`` names a template uses, in order of first use."""
    names: list[str] = []
    for m in _PLACEHOLDER.finditer(template):
        arg = _ARG.match(m.group(1))
        if arg and arg.group(1) not in names:
            names.append(arg.group(1))
    return names


def check_template(template: str) -> None:
    """Refuse a placeholder that :func:`render` could not fill.

    Raises:
        ValidationFailed: a ``{{...}}`` that is not ``{{args.NAME}}``.
    """
    for m in _PLACEHOLDER.finditer(template):
        if not _ARG.match(m.group(1)):
            raise ValidationFailed(
                f"unknown placeholder {m.group(0)!r}: write $selector, $window or {{{{args.NAME}}}} "
                "(NAME defined in the plan's 'args')")


def render(template: str, *, selector: str, window: str, args: Mapping[str, str]) -> str:
    """Fill ``{{args.NAME}}``, ``$selector`` (label matchers, no braces) and ``$window`` (e.g. ``60s``).

    Raises:
        ValidationFailed: an argument the plan does not define.
    """
    def arg(m: re.Match[str]) -> str:
        name = m.group(1)
        hit = _ARG.match(name)
        if hit is None:
            raise ValidationFailed(f"unknown placeholder {m.group(0)!r}")
        if hit.group(1) not in args:
            raise ValidationFailed(f"query uses {{{{args.{hit.group(1)}}}}} but the plan's 'args' does not "
                                   f"define {hit.group(1)!r}")
        return args[hit.group(1)]

    text = _PLACEHOLDER.sub(arg, template)
    return text.replace("$selector", selector).replace("$window", window)


__all__ = ["ARG_NAME", "check_template", "render", "template_args"]
