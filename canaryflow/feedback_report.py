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

from canaryflow.registry import evaluations as evals
from canaryflow.registry import traffic as tlog
from canaryflow.registry.implicit import EventSummary, event_summaries, top_events
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
    quality: list[evals.EvaluatorSummary] = field(default_factory=list)
    """Online evaluators' results on this version's answers in the window (per variation)."""
    lowest: list[Ranked] = field(default_factory=list)
    """The lowest-scored answers (absolute evaluators and judges), lowest first."""
    lost: list[Ranked] = field(default_factory=list)
    """Shadow inputs where this version's answer lost to stable's (pairwise judges), with the reason."""
    most_edited: list[Ranked] = field(default_factory=list)
    """Answers users edited the most (``edited`` events, largest edit distance first)."""


PAIRWISE_LABELS = frozenset({"win", "tie", "loss"})


@dataclass
class Ranked:
    """One answer in a failure ranking: what ranked it (an evaluator's score, an edit distance), why (the
    judge's or check's reason), and excerpts when the traffic log sampled the request."""

    request_id: str
    variation: str
    by: str
    value: float
    label: str = ""
    reason: str = ""
    question: str = ""
    answer: str = ""


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
    quality = [q for q in evals.summaries(registry, key, since=since)
               if version is None or q.version == version]
    versions = ({v for v, _ in counts} | {v for v in logged_counts if version is None or v == version}
                | {e.version for e in implicit} | {q.version for q in quality})
    reports = []
    for v in sorted(versions, reverse=True):
        rep = VersionReport(v, positive=sum(n for (ver, sent), n in counts.items() if ver == v and
                                            sent != "negative"),
                            negative=counts.get((v, "negative"), 0),
                            implicit=[e for e in implicit if e.version == v],
                            quality=[q for q in quality if q.version == v])
        for rec in tlog.traffic(registry, key, limit=scan, version=v, since=since):
            rep.logged_requests += 1
            rep.patterns.update(failure_patterns(rec))
        _rank_quality(registry, key, rep, limit=limit, since=since)
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


def _rank_quality(registry: Any, key: str, rep: VersionReport, *, limit: int,
                  since: Any) -> None:
    """Fill ``rep``'s failure rankings: lowest scores, pairs lost to stable, most edited answers."""
    names = sorted({q.evaluator for q in rep.quality})
    scored: list[Ranked] = []
    for name in names:
        for r in evals.lowest(registry, key, rep.version, evaluator=name, limit=limit, since=since):
            item = Ranked(r.request_id, r.variation, name, r.score, r.label, r.reason)
            if r.label in PAIRWISE_LABELS:
                if r.label == "loss":
                    rep.lost.append(item)
            elif r.score < 1.0:
                scored.append(item)
    rep.lowest = sorted(scored, key=lambda i: i.value)[:limit]
    rep.lost = rep.lost[:limit]
    rep.most_edited = [Ranked(e.request_id, e.variation, "edited", e.value)
                       for e in top_events(registry, key, rep.version, event="edited", limit=limit,
                                           served_from=since)]
    ranked = [*rep.lowest, *rep.lost, *rep.most_edited]
    seen = tlog.find_requests(registry, list({i.request_id for i in ranked}))
    for item in ranked:
        asked = seen.get(item.request_id)
        if asked is not None:
            item.question = excerpt(_question(asked.request))
            item.answer = excerpt(str(asked.response.get("text") or ""))


def _ranking(title: str, items: list[Ranked], unit: str) -> list[str]:
    if not items:
        return []
    out = [f"  {title}:"]
    for i in items:
        what = f"{i.by} {i.value:g}" if unit == "score" else f"edit distance {i.value:g}"
        label = f" {i.label}" if i.label and unit == "score" else ""
        why = f" — {i.reason}" if i.reason else ""
        out.append(f"    {i.request_id} ({i.variation}) {what}{label}{why}")
        if i.question:
            out.append(f"      asked:  {i.question}")
        if i.answer:
            out.append(f"      answer: {i.answer}")
    return out


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
        if rep.quality:
            out.append("  online evaluators (answers scored, mean score, share passing; pairwise: win rate):")
            out += [f"    {q.variation:<9} {q.evaluator:<15} {q.scored:>5}  mean {q.mean_score:.3f}  "
                    f"pass {100 * q.pass_rate:.0f}%" for q in rep.quality]
        out += _ranking("lowest-scored answers", rep.lowest, "score")
        out += _ranking("inputs where it lost to stable (pairwise judge)", rep.lost, "score")
        out += _ranking("most edited answers", rep.most_edited, "edit")
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


__all__ = ["FeedbackItem", "Ranked", "VersionReport", "excerpt", "failure_patterns", "feedback_report",
           "format_report", "looks_like_broken_json"]
