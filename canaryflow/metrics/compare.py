"""Side-by-side comparison of a config's versions, variations or segments, from Prometheus.

One instant query per figure over ``window`` (``increase(...[window])``), grouped by the chosen label:
requests, error rate, p50/p95 latency, input/output tokens and cost per request, and feedback. This is what
``canaryflow compare`` and the demo print.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Literal

import httpx

from canaryflow.errors import CanaryflowError, ValidationFailed

By = Literal["version", "variation", "segment"]
_WINDOW = re.compile(r"^[0-9]+(ms|s|m|h|d|w|y)$")


@dataclass
class Row:
    """One group's figures (``None`` where Prometheus has no data)."""

    group: str
    requests: float = 0.0
    errors: float = 0.0
    error_rate: float | None = None
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    input_tokens_per_request: float | None = None
    output_tokens_per_request: float | None = None
    cost_per_request_usd: float | None = None
    feedback_positive: float = 0.0
    feedback_negative: float = 0.0
    negative_feedback_rate: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    quality: dict[str, dict[str, float]] = field(default_factory=dict)
    """Online evaluators: ``{evaluator: {"mean": score, "scored": answers}}`` (a pairwise one's mean is the
    win rate against stable, ties half)."""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _group_labels(by: By) -> tuple[str, ...]:
    return {"version": ("version",), "variation": ("variation", "version"), "segment": ("segment",)}[by]


def queries(key: str, window: str, by: By) -> dict[str, str]:
    """The PromQL behind each figure (shown by ``--json`` and the demo)."""
    if not _WINDOW.match(window):
        raise ValidationFailed(f"--window {window!r} is not a Prometheus duration (e.g. 5m, 1h, 1d)",
                               source="window")
    g = ", ".join(_group_labels(by))
    # Mirrored shadow calls are the candidate's answers to stable's traffic: shown apart by variation only.
    sel = f'config="{key}"' + ("" if by == "variation" else ', variation!="shadow"')

    def inc(metric: str, extra: str = "") -> str:
        return f"sum by ({g}) (increase({metric}{{{sel}{extra}}}[{window}]))"

    def quantile(q: float) -> str:
        return (f"histogram_quantile({q}, sum by ({g}, le) "
                f"(increase(gen_ai_client_operation_duration_seconds_bucket{{{sel}}}[{window}])))")

    def per_token(kind: str) -> str:
        typed = f', gen_ai_token_type="{kind}"'
        return (f'{inc("gen_ai_client_token_usage_sum", typed)} / '
                f'{inc("gen_ai_client_token_usage_count", typed)}')

    return {
        "requests": inc("canaryflow_requests_total"),
        "errors": inc("canaryflow_requests_total", ', outcome="error"'),
        "latency_p50_s": quantile(0.5),
        "latency_p95_s": quantile(0.95),
        "input_tokens_per_request": per_token("input"),
        "output_tokens_per_request": per_token("output"),
        "cost_usd": inc("canaryflow_cost_usd_total"),
        "feedback_positive": inc("canaryflow_feedback_total", ', sentiment="positive"'),
        "feedback_negative": inc("canaryflow_feedback_total", ', sentiment="negative"'),
        "eval_score_sum": _by_evaluator(inc("canaryflow_eval_score_sum")),
        "eval_score_count": _by_evaluator(inc("canaryflow_eval_score_count")),
    }


def _by_evaluator(promql: str) -> str:
    """``sum by (g) (...)`` → ``sum by (g, evaluator) (...)``."""
    return promql.replace(") (increase(", ", evaluator) (increase(", 1)


def instant(prometheus_url: str, promql: str, *, timeout: float = 10.0) -> list[tuple[dict[str, str], float]]:
    """Run one instant query; ``[(labels, value)]``. Raises CanaryflowError when Prometheus cannot answer."""
    try:
        r = httpx.get(f"{prometheus_url.rstrip('/')}/api/v1/query", params={"query": promql}, timeout=timeout)
    except httpx.HTTPError as exc:
        raise CanaryflowError(f"cannot reach Prometheus at {prometheus_url} ({exc}); start the stack with "
                              "'canaryflow dev' or set CANARYFLOW_PROMETHEUS_URL") from exc
    if r.status_code != 200:
        raise CanaryflowError(f"Prometheus refused a query ({r.status_code}): {r.text[:200]}")
    return [({k: str(v) for k, v in s["metric"].items()}, float(s["value"][1]))
            for s in r.json()["data"]["result"]]


def compare(prometheus_url: str, key: str, *, window: str = "1h", by: By = "version") -> list[Row]:
    """The comparison table of config ``key`` over ``window``, one row per group, busiest first."""
    if by not in ("version", "variation", "segment"):
        raise ValidationFailed(f"--by {by!r}: choose version, variation or segment", source="by")
    names = _group_labels(by)
    rows: dict[tuple[str, ...], Row] = {}

    def row(labels: dict[str, str]) -> Row:
        ident = tuple(labels.get(n, "") for n in names)
        if ident not in rows:
            rows[ident] = Row(group=_describe(by, labels), labels={n: labels.get(n, "") for n in names})
        return rows[ident]

    for figure, promql in queries(key, window, by).items():
        for labels, value in instant(prometheus_url, promql):
            if not math.isfinite(value):
                continue
            r = row(labels)
            if figure.startswith("eval_score_"):
                got = r.quality.setdefault(labels.get("evaluator", "?"), {"mean": 0.0, "scored": 0.0})
                got["mean" if figure == "eval_score_sum" else "scored"] = value
            elif figure == "cost_usd":
                r.cost_per_request_usd = value  # divided by requests below
            else:
                setattr(r, figure, value)
    for r in rows.values():
        r.error_rate = r.errors / r.requests if r.requests > 0 else None
        if r.cost_per_request_usd is not None:
            r.cost_per_request_usd = r.cost_per_request_usd / r.requests if r.requests > 0 else None
        total = r.feedback_positive + r.feedback_negative
        r.negative_feedback_rate = r.feedback_negative / total if total > 0 else None
        for name, q in list(r.quality.items()):
            if q["scored"] > 0:
                q["mean"] = q["mean"] / q["scored"]
            else:
                del r.quality[name]
    return sorted(rows.values(), key=lambda r: (-r.requests, r.group))


def _describe(by: By, labels: dict[str, str]) -> str:
    if by == "version":
        return f"v{labels.get('version', '?')}"
    if by == "variation":
        return f"{labels.get('variation', '?')} v{labels.get('version', '?')}"
    return labels.get("segment", "none")


def format_table(rows: list[Row], by: By) -> str:
    """A plain-text table (fits 110 columns)."""
    head: tuple[str, ...] = (by, "requests", "errors", "p50", "p95", "in tok/req", "out tok/req",
                             "cost/1k req", "feedback +/-", "neg")
    lines: list[tuple[str, ...]] = [head]
    for r in rows:
        lines.append((
            r.group, f"{r.requests:.0f}", _pct(r.error_rate), _secs(r.latency_p50_s), _secs(r.latency_p95_s),
            _num(r.input_tokens_per_request), _num(r.output_tokens_per_request), _usd(r.cost_per_request_usd),
            f"{r.feedback_positive:.0f}/{r.feedback_negative:.0f}", _pct(r.negative_feedback_rate)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths,
                                                                                         strict=True)))
           for line in lines]
    scored = [r for r in rows if r.quality]
    if scored:
        out.append("online evaluators (mean score 0-1, answers scored; pairwise: win rate vs stable):")
        out += [f"  {r.group}: " + ", ".join(f"{name} {q['mean']:.3f} (n={q['scored']:.0f})"
                                            for name, q in sorted(r.quality.items())) for r in scored]
    return "\n".join(out)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _secs(v: float | None) -> str:
    return "-" if v is None else (f"{v * 1000:.0f}ms" if v < 1 else f"{v:.2f}s")


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def _usd(v: float | None) -> str:
    """Per thousand requests: a readable number for cents-per-request models and fractions of a cent alike."""
    return "-" if v is None else f"${1000 * v:.4g}"


__all__ = ["By", "Row", "compare", "format_table", "instant", "queries"]
