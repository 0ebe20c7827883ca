"""What users said, next to what they asked and got: feedback joined with the sampled traffic log.

For each version: the recent feedback (positive or negative) with excerpts of the request and the answer, and
the most common failure patterns in its logged traffic — error types, truncated answers (``finish_reason``
``length``) and answers that try to be JSON but do not parse. What a team reads to refine its prompts.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from canaryflow.registry import traffic as tlog
from canaryflow.registry.implicit import EventSummary, event_summaries
from canaryflow.registry.tables import utcnow


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
    implicit: list[EventSummary] = field(default_factory=list)
    """Implicit feedback events (edited, copied, …) on this version's requests served in the window."""


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
                    limit: int = 10, window_s: float | None = 3600.0,
                    scan: int = 2000) -> list[VersionReport]:
    """Feedback of config ``key`` over the last ``window_s`` seconds, grouped by version (newest first).

    The counts are every feedback stored in the window (the same window ``canaryflow compare`` reads from
    Prometheus); the listed items are the newest ``limit`` per version, with excerpts when the traffic log
    sampled their request; the failure patterns come from up to ``scan`` of each version's newest logged
    requests in the window (a sample: ``logged_requests`` says how many).

    Args:
        registry: a :class:`~canaryflow.registry.Registry` (or its engine).
        key: the config key.
        version: only this version.
        negative_only: list only negative feedback (counts still show both).
        limit: feedback items listed per version.
        window_s: how far back, in seconds (None: everything stored).
        scan: logged requests read per version for the failure patterns.
    """
    since = utcnow() - timedelta(seconds=window_s) if window_s is not None else None
    counts = tlog.count_feedback(registry, key, since=since, version=version)
    logged_counts = tlog.count_traffic(registry, key, since=since)
    implicit = [e for e in event_summaries(registry, key, served_from=since)
                if version is None or e.version == version]
    versions = ({v for v, _ in counts} | {v for v in logged_counts if version is None or v == version}
                | {e.version for e in implicit})
    reports = []
    for v in sorted(versions, reverse=True):
        rep = VersionReport(v, positive=sum(n for (ver, sent), n in counts.items() if ver == v and
                                            sent != "negative"),
                            negative=counts.get((v, "negative"), 0),
                            implicit=[e for e in implicit if e.version == v])
        for rec in tlog.traffic(registry, key, limit=scan, version=v, since=since):
            rep.logged_requests += 1
            rep.patterns.update(failure_patterns(rec))
        given = tlog.feedback(registry, key, version=v, limit=limit, since=since,
                              sentiment="negative" if negative_only else None)
        seen = tlog.find_requests(registry, [fb.request_id for fb in given])
        for fb in given:
            item = FeedbackItem(fb.request_id, fb.version, fb.variation, fb.sentiment, fb.comment,
                                fb.created_at.isoformat(timespec="seconds"))
            asked = seen.get(fb.request_id)
            if asked is not None:
                item.question = excerpt(_question(asked.request))
                item.answer = excerpt(str(asked.response.get("text") or ""))
                item.finish_reason = asked.response.get("finish_reason")
                item.error_type = asked.error_type
            rep.items.append(item)
        reports.append(rep)
    return reports


def format_report(reports: list[VersionReport], key: str, window: str = "") -> str:
    """Plain text: what was counted, then one block per version."""
    span = f" in the last {window}" if window else ""
    if not reports:
        return f"no feedback or logged traffic for {key}{span}"
    out: list[str] = [f"{key}, feedback{span}: every feedback counted (registry); excerpts and failure "
                      "patterns from the sampled traffic log", ""]
    for rep in reports:
        total = rep.positive + rep.negative
        share = f" ({100 * rep.negative / total:.0f}% negative)" if total else ""
        out.append(f"{key} v{rep.version}: {rep.positive} positive, {rep.negative} negative{share}; "
                   f"patterns from {rep.logged_requests} logged requests")
        if rep.implicit:
            out.append("  implicit feedback (requests with the event; mean value where it has one):")
            out += [f"    {e.variation:<9} {e.event:<15} {e.requests:>5}"
                    + (f"  mean {e.mean_value:g}" if e.mean_value is not None else "") for e in rep.implicit]
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
