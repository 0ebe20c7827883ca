"""How the config, segment, serve, resolve and audit commands print: rich tables, or dicts for --json."""

from __future__ import annotations

import difflib
import sys
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.resolution import Resolution
from canaryflow.domain.segments import Segment
from canaryflow.domain.serving import ServingState
from canaryflow.registry import AuditEvent, ConfigSummary, VersionRecord

# Piped output (CI, `make demo | tee`) gets a wide console instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 160)


def _v(version: int | None) -> str:
    return f"v{version}" if version is not None else "-"


def configs_table(rows: list[ConfigSummary]) -> Table:
    """``config list``."""
    table = Table("config", "latest", "stable", "candidate", "stage", "revision", title="configs")
    for r in rows:
        table.add_row(r.key, _v(r.latest_version), _v(r.stable_version), _v(r.candidate_version),
                      r.stage_kind, str(r.revision))
    return table


def version_yaml(spec: ConfigSpec) -> str:
    """The version's content (no metadata) as YAML."""
    return yaml.safe_dump(spec.content(), sort_keys=False, allow_unicode=True, width=1_000_000)


def version_view(rec: VersionRecord) -> Table:
    """``config show``: the record's facts, then its content."""
    table = Table(show_header=False, title=f"{rec.key} v{rec.version}", title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for name, value in [("created", rec.created_at.isoformat(timespec="seconds")),
                        ("author", rec.author or "-"), ("rationale", rec.rationale or "-"),
                        ("labels", ", ".join(rec.labels) or "-"), ("content hash", rec.content_hash)]:
        table.add_row(name, value)
    table.add_row("content", Text(version_yaml(rec.spec).rstrip()))
    return table


def history_table(records: list[VersionRecord], state: ServingState) -> Table:
    """``config history``: every version, marked with its role in the serving state."""
    table = Table("version", "created", "author", "rationale", "labels", "hash", "serving",
                  title=f"{state.config_key} history")
    for rec in records:
        role = []
        if rec.version == state.stable_version:
            role.append("stable")
        if rec.version == state.exposure.candidate_version:
            role.append(f"candidate ({state.exposure.stage_kind})")
        role += [f"pinned:{seg}" for seg, v in state.pins.items() if v == rec.version]
        table.add_row(_v(rec.version), rec.created_at.strftime("%Y-%m-%d %H:%M:%S"), rec.author or "-",
                      rec.rationale or "-", ", ".join(rec.labels), rec.content_hash[:12], ", ".join(role))
    return table


def diff_lines(a: VersionRecord, b: VersionRecord) -> list[str]:
    """A unified diff of two versions' content."""
    return list(difflib.unified_diff(version_yaml(a.spec).splitlines(), version_yaml(b.spec).splitlines(),
                                     f"{a.key} v{a.version}", f"{b.key} v{b.version}", lineterm=""))


def print_diff(lines: list[str]) -> None:
    """Colour a unified diff."""
    if not lines:
        console.print("identical content")
    for line in lines:
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else \
            "cyan" if line.startswith("@@") else None
        console.print(Text(line, style=style or ""), soft_wrap=True)


def clause_text(segment: Segment) -> str:
    """A segment's rules as one readable line."""
    rules = []
    for rule in segment.rules:
        rules.append(" AND ".join(
            f"{c.attribute} {c.op}" + (f" {', '.join(map(repr, c.values))}" if c.values else "")
            for c in rule.clauses))
    return " OR ".join(f"({r})" if len(rules) > 1 else r for r in rules)


def segments_table(segments: list[Segment]) -> Table:
    """``segment list``."""
    table = Table("segment", "rules", "description", title="segments")
    for s in segments:
        table.add_row(s.name, clause_text(s), s.description)
    return table


def state_dict(state: ServingState) -> dict[str, Any]:
    """A serving state, JSON-ready."""
    return state.model_dump(mode="json")


def state_view(state: ServingState) -> Table:
    """``serve show``."""
    exp = state.exposure
    table = Table(show_header=False, title=f"{state.config_key} serving state (revision {state.revision})",
                  title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows = [("stable", _v(state.stable_version)), ("candidate", _v(exp.candidate_version)),
            ("stage", f"{exp.stage or '-'} ({exp.stage_kind})")]
    if exp.stage_kind == "segments":
        rows.append(("exposed segments", ", ".join(exp.segments)))
        if exp.holdback:
            rows.append(("held back on stable", f"{exp.holdback * 100:g} % of their users"))
    if exp.stage_kind == "percent":
        rows.append(("percent", f"{exp.percent:g} % (salt {exp.salt!r})"))
    if exp.stage_kind == "shadow":
        rows.append(("shadow fraction", f"{exp.shadow_fraction:g}"))
    rows.append(("pins", ", ".join(f"{s} → v{v}" for s, v in sorted(state.pins.items())) or "-"))
    rows.append(("owned by", state.owner or "- (no rollout)"))
    when = state.updated_at.isoformat(timespec="seconds") if state.updated_at else "-"
    rows.append(("last change", f"{when} by {state.updated_by or '-'} via {state.updated_source or '-'}: "
                                f"{state.updated_reason or '-'}"))
    for name, value in rows:
        table.add_row(name, value)
    return table


def resolution_view(res: Resolution) -> Table:
    """``resolve``."""
    table = Table(show_header=False, title=f"{res.config_key} → v{res.version} ({res.variation})",
                  title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("reason", res.reason)
    table.add_row("segment", res.segment)
    table.add_row("provider / model", f"{res.provider} / {res.model}")
    table.add_row("parameters", ", ".join(f"{k}={v}" for k, v in res.parameters.items()) or "-")
    table.add_row("fallback", " → ".join(f"{f['provider']}/{f['model']}" for f in res.fallback) or "-")
    if res.tools:
        choice = res.tool_choice
        table.add_row("tools", ", ".join(t["name"] for t in res.tools)
                      + (f" (tool_choice {choice if isinstance(choice, str) else choice['name']})"
                         if choice is not None else ""))
    if res.response_format is not None:
        table.add_row("response format", f"json_schema {res.response_format['name']}")
    if res.shadow_version is not None:
        table.add_row("shadow", f"v{res.shadow_version} mirrors {res.shadow_fraction:g} of requests")
    for m in res.messages:
        table.add_row(m["role"], Text(m["content"]))
    return table


def _change(event: AuditEvent) -> str:
    before, after = event.before, event.after
    if event.action == "push_version":
        return f"v{after.get('version')} {str(after.get('content_hash', ''))[:12]}"
    if "stable_version" in after:
        parts = []
        for field in ("stable_version",):
            if before.get(field) != after.get(field):
                parts.append(f"stable {_v(before.get(field))}→{_v(after.get(field))}")
        b_exp, a_exp = before.get("exposure") or {}, after.get("exposure") or {}
        if b_exp != a_exp:
            desc = a_exp.get("stage_kind", "none")
            if a_exp.get("candidate_version") is not None:
                desc = f"candidate v{a_exp['candidate_version']} {desc}"
                if a_exp.get("stage_kind") == "percent":
                    desc += f" {a_exp.get('percent', 0):g}%"
                if a_exp.get("stage_kind") == "segments":
                    desc += f" {','.join(a_exp.get('segments', []))}"
            parts.append(f"exposure → {desc}")
        if before.get("pins") != after.get("pins"):
            parts.append(f"pins → {after.get('pins') or '{}'}")
        return "; ".join(parts)
    return ", ".join(f"{k}={v}" for k, v in after.items() if k not in ("rules",))[:80]


def audit_table(events: list[AuditEvent]) -> Table:
    """``audit``: oldest first."""
    table = Table("#", "at (UTC)", "config", "action", "actor", "source", "reason", "change",
                  title="audit trail")
    for col in table.columns[:4]:
        col.no_wrap = True
    for e in events:
        table.add_row(str(e.id), e.at.strftime("%m-%d %H:%M:%S"), e.config_key or "-", e.action, e.actor,
                      e.source, e.reason, _change(e))
    return table


__all__ = ["audit_table", "configs_table", "console", "diff_lines", "history_table", "print_diff",
           "resolution_view", "segments_table", "state_dict", "state_view", "version_view", "version_yaml"]
