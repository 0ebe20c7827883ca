"""What users said, next to what they asked and got: feedback joined with the sampled traffic log.

For each version: the recent feedback (positive or negative) with excerpts of the request and the answer, and
the most common failure patterns in its logged traffic — error types, truncated answers (``finish_reason``
``length``) and answers that try to be JSON but do not parse. What a team reads to refine its prompts.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from canaryflow.registry import traffic as tlog


@dataclass
class FeedbackItem:
    """One piece of feedback with what it was about (excerpts are empty when the request was not sampled)."""

    request_id: str
    version: int
    variation: str
    sentiment: str
    comment: str | None
    at: str
    question: str = ""
    answer: str = ""
    finish_reason: str | None = None
    error_type: str | None = None


@dataclass
class VersionReport:
    """Feedback and failure patterns of one version."""

    version: int
    positive: int = 0
    negative: int = 0
    items: list[FeedbackItem] = field(default_factory=list)
    logged_requests: int = 0
    patterns: Counter[str] = field(default_factory=Counter)


def excerpt(text: str, width: int = 100) -> str:
    """``text`` on one line, cut to ``width`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def looks_like_broken_json(text: str) -> bool:
    """True for an answer that tries to be JSON (``{``, ``[`` or a json fence) but does not parse."""
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`").removeprefix("json").strip()
    if not body.startswith(("{", "[")):
        return False
    try:
        json.loads(body)
    except ValueError:
        return True
    return False


def failure_patterns(record: tlog.TrafficRecord) -> list[str]:
    """The failure patterns one logged request shows (empty for a clean answer)."""
    found = []
    if record.error_type:
        found.append(f"error: {record.error_type}")
    text = str(record.response.get("text") or "")
    if record.response.get("finish_reason") == "length":
        found.append("truncated answer (finish_reason=length)")
    if text and looks_like_broken_json(text):
        found.append("invalid JSON")
    return found


def _question(request: dict[str, Any]) -> str:
    messages = request.get("messages") or []
    users = [m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return str(users[-1]) if users else ""


def feedback_report(registry: Any, key: str, *, version: int | None = None, negative_only: bool = False,
                    limit: int = 10, scan: int = 2000) -> list[VersionReport]:
    """Recent feedback of config ``key`` grouped by version (newest version first).

    Args:
        registry: a :class:`~canaryflow.registry.Registry` (or its engine).
        key: the config key.
        version: only this version.
        negative_only: list only negative feedback (counts still show both).
        limit: feedback items listed per version.
        scan: how many of the newest logged requests to read for excerpts and patterns.
    """
    logged = [r for r in tlog.traffic(registry, key, limit=scan) if version is None or r.version == version]
    by_id = {r.request_id: r for r in logged}
    reports: dict[int, VersionReport] = {}

    def report(v: int) -> VersionReport:
        return reports.setdefault(v, VersionReport(v))

    for rec in logged:
        rep = report(rec.version)
        rep.logged_requests += 1
        rep.patterns.update(failure_patterns(rec))
    # Feedback on requests the traffic log sampled comes first: those show what was asked and answered.
    given = tlog.feedback(registry, key, version=version, limit=scan)
    for fb in sorted(given, key=lambda f: f.request_id not in by_id):
        rep = report(fb.version)
        if fb.sentiment == "negative":
            rep.negative += 1
        else:
            rep.positive += 1
        if (negative_only and fb.sentiment != "negative") or len(rep.items) >= limit:
            continue
        item = FeedbackItem(fb.request_id, fb.version, fb.variation, fb.sentiment, fb.comment,
                            fb.created_at.isoformat(timespec="seconds"))
        seen = by_id.get(fb.request_id)
        if seen is not None:
            item.question = excerpt(_question(seen.request))
            item.answer = excerpt(str(seen.response.get("text") or ""))
            item.finish_reason = seen.response.get("finish_reason")
            item.error_type = seen.error_type
        rep.items.append(item)
    return sorted(reports.values(), key=lambda r: -r.version)


def format_report(reports: list[VersionReport], key: str) -> str:
    """Plain text, one block per version."""
    if not reports:
        return f"no feedback or logged traffic for {key} yet"
    out: list[str] = []
    for rep in reports:
        total = rep.positive + rep.negative
        share = f" ({100 * rep.negative / total:.0f}% negative)" if total else ""
        out.append(f"{key} v{rep.version}: {rep.positive} positive, {rep.negative} negative{share}; "
                   f"{rep.logged_requests} logged requests")
        if rep.patterns:
            out.append("  most common failure patterns:")
            out += [f"    {n:>4}  {name}" for name, n in rep.patterns.most_common(5)]
        for item in sorted(rep.items, key=lambda i: i.at, reverse=True):
            mark = "-" if item.sentiment == "negative" else "+"
            out.append(f"  [{mark}] {item.at} {item.request_id} ({item.variation})"
                       + (f" — {item.comment}" if item.comment else ""))
            if item.question:
                out.append(f"      asked:  {item.question}")
            if item.error_type:
                out.append(f"      failed: {item.error_type}")
            elif item.answer or item.finish_reason:
                cut = " [truncated]" if item.finish_reason == "length" else ""
                out.append(f"      answer: {item.answer}{cut}")
        out.append("")
    return "\n".join(out).rstrip()


__all__ = ["FeedbackItem", "VersionReport", "excerpt", "failure_patterns", "feedback_report", "format_report",
           "looks_like_broken_json"]
