"""``canaryflow config | segment | serve | resolve | audit``: the registry from the command line.

Every read command takes ``--json``; every change takes ``--by``/``--reason`` and is audited. The database
is ``--db URL`` or ``CANARYFLOW_DB_URL`` (default ``sqlite:///canaryflow.db``).
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from canaryflow.cli import app
from canaryflow.cli._common import print_json

if TYPE_CHECKING:
    from canaryflow.registry import Registry

config_app = typer.Typer(help="Push and inspect versioned AI configs.", no_args_is_help=True)
segment_app = typer.Typer(help="Push and list user segments.", no_args_is_help=True)
serve_app = typer.Typer(help="Who gets which version: stable, pins (changes are audited).",
                        no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(segment_app, name="segment")
app.add_typer(serve_app, name="serve")

DB = typer.Option(None, "--db", envvar="CANARYFLOW_DB_URL", show_envvar=True,
                  help="Registry database URL [default: sqlite:///canaryflow.db].")
JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")
BY = typer.Option(..., "--by", help="Who makes the change (recorded in the audit trail).")
REASON = typer.Option(..., "--reason", help="Why (recorded in the audit trail).")
FORCE = typer.Option(False, "--force", help="Change it even while a rollout owns the config "
                                              "(audited as *_forced; the rollout goes on).")


def _registry(db: str | None) -> Registry:
    from canaryflow.registry import Registry

    return Registry(db)


def _me() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def parse_value(text: str) -> Any:
    """``true``/``false`` → bool, integers and decimals → numbers, anything else stays a string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_pairs(pairs: list[str], option: str, typed: bool) -> dict[str, Any]:
    """``k=v`` options into a dict (a malformed pair is a usage error)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint=option)
        out[name.strip()] = parse_value(value) if typed else value
    return out


# --- config ---------------------------------------------------------------------------------------
@config_app.command("push")
def config_push(
    files: list[Path] = typer.Argument(..., help="Config files (one version each)."),
    author: str | None = typer.Option(None, "--author", help="Author [default: the file's metadata]."),
    rationale: str | None = typer.Option(None, "--rationale", help="Why [default: the file's metadata]."),
    db: str | None = DB, as_json: bool = JSON,
) -> None:
    """Store each file as a new version (identical content returns the existing one). All files are
    validated before any is written."""
    from canaryflow.files import load_configs

    specs = load_configs(files)
    reg = _registry(db)
    results = [reg.push_config(s, author=author, rationale=rationale, source="cli") for s in specs]
    if as_json:
        print_json([r.model_dump(mode="json") for r in results])
        return
    for r in results:
        note = " (the first version: now stable)" if r.became_stable else ""
        note = note if r.created else " unchanged"
        typer.echo(f"{r.key} v{r.version}{note}")


@config_app.command("list")
def config_list(db: str | None = DB, as_json: bool = JSON) -> None:
    """Every config with its latest, stable and candidate versions."""
    from canaryflow.cli.config_views import configs_table, console

    rows = _registry(db).configs()
    if as_json:
        print_json([r.model_dump(mode="json") for r in rows])
    elif not rows:
        typer.echo("no configs yet: canaryflow config push FILE")
    else:
        console.print(configs_table(rows))


@config_app.command("show")
def config_show(key: str, version: int | None = typer.Option(None, "--version", help="[default: latest]"),
                db: str | None = DB, as_json: bool = JSON) -> None:
    """One version: who, when, why, and its content."""
    from canaryflow.cli.config_views import console, version_view

    rec = _registry(db).get_version(key, version)
    if as_json:
        print_json(rec.model_dump(mode="json"))
    else:
        console.print(version_view(rec))


@config_app.command("diff")
def config_diff(key: str, a: int = typer.Argument(..., help="From version."),
                b: int = typer.Argument(..., help="To version."), db: str | None = DB,
                as_json: bool = JSON) -> None:
    """What changed between two versions (content only)."""
    from canaryflow.cli.config_views import diff_lines, print_diff

    reg = _registry(db)
    va, vb = reg.get_version(key, a), reg.get_version(key, b)
    lines = diff_lines(va, vb)
    if as_json:
        changed = sorted(k for k in set(va.spec.content()) | set(vb.spec.content())
                         if va.spec.content().get(k) != vb.spec.content().get(k))
        print_json({"key": key, "from": a, "to": b, "changed_fields": changed, "diff": lines})
    else:
        print_diff(lines)


@config_app.command("history")
def config_history(key: str, db: str | None = DB, as_json: bool = JSON) -> None:
    """Every version of a config, oldest first, marked stable / candidate / pinned."""
    from canaryflow.cli.config_views import console, history_table

    reg = _registry(db)
    records, state = reg.versions(key), reg.serving_state(key)
    if as_json:
        print_json({"key": key, "stable_version": state.stable_version,
                    "candidate_version": state.exposure.candidate_version,
                    "versions": [r.model_dump(mode="json", exclude={"spec"}) for r in records]})
    else:
        console.print(history_table(records, state))


# --- segment --------------------------------------------------------------------------------------
@segment_app.command("push")
def segment_push(file: Path, by: str | None = typer.Option(None, "--by", help="[default: $USER]"),
                 db: str | None = DB, as_json: bool = JSON) -> None:
    """Create or update the file's segments."""
    from canaryflow.files import load_segments

    seg_file = load_segments(file)
    reg = _registry(db)
    existing = {s.name for s in reg.segments()}
    changed = set(reg.push_segments(seg_file, by=by or _me(), source="cli"))
    outcome = {s.name: ("unchanged" if s.name not in changed else "changed" if s.name in existing
                        else "created") for s in seg_file.segments}
    if as_json:
        print_json(outcome)
        return
    for name, what in outcome.items():
        typer.echo(f"segment {name} {what}")


@segment_app.command("list")
def segment_list(db: str | None = DB, as_json: bool = JSON) -> None:
    """Every segment and its rules."""
    from canaryflow.cli.config_views import console, segments_table

    segments = _registry(db).segments()
    if as_json:
        print_json([s.model_dump(mode="json") for s in segments])
    elif not segments:
        typer.echo("no segments yet: canaryflow segment push FILE")
    else:
        console.print(segments_table(segments))


# --- serve ----------------------------------------------------------------------------------------
def _print_state(state: Any, as_json: bool, message: str) -> None:
    if as_json:
        print_json(state.model_dump(mode="json"))
    else:
        typer.echo(f"{message} (revision {state.revision})")


@serve_app.command("show")
def serve_show(key: str, db: str | None = DB, as_json: bool = JSON) -> None:
    """The serving state: stable, candidate exposure, pins, last change."""
    from canaryflow.cli.config_views import console, state_view

    state = _registry(db).serving_state(key)
    if as_json:
        print_json(state.model_dump(mode="json"))
    else:
        console.print(state_view(state))


@serve_app.command("set-stable")
def serve_set_stable(key: str, version: int, by: str = BY, reason: str = REASON, db: str | None = DB,
                     as_json: bool = JSON, force: bool = FORCE) -> None:
    """Serve VERSION to everyone not pinned or in a rollout (refused during a rollout unless --force)."""
    state = _registry(db).set_stable(key, version, by=by, reason=reason, source="cli", force=force)
    _print_state(state, as_json, f"{key}: stable v{state.stable_version}")


@serve_app.command("pin")
def serve_pin(key: str, segment: str = typer.Option(..., "--segment", help="Segment name."),
              version: int = typer.Option(..., "--version", help="Version to serve to the segment."),
              by: str = BY, reason: str = REASON, db: str | None = DB, as_json: bool = JSON,
              force: bool = FORCE) -> None:
    """Serve VERSION to a segment whatever a rollout does (refused during a rollout unless --force)."""
    state = _registry(db).pin(key, segment, version, by=by, reason=reason, source="cli", force=force)
    _print_state(state, as_json, f"{key}: segment {segment} pinned to v{version}")


@serve_app.command("unpin")
def serve_unpin(key: str, segment: str = typer.Option(..., "--segment", help="Segment name."),
                by: str = BY, reason: str = REASON, db: str | None = DB, as_json: bool = JSON) -> None:
    """Remove a segment's pin."""
    reg = _registry(db)
    was_pinned = segment in reg.serving_state(key).pins
    state = reg.unpin(key, segment, by=by, reason=reason, source="cli")
    done = "unpinned" if was_pinned else "was not pinned"
    _print_state(state, as_json, f"{key}: segment {segment} {done}")


# --- resolve and audit ----------------------------------------------------------------------------
@app.command("resolve")
def resolve_cmd(
    key: str,
    user: str = typer.Option(..., "--user", help="The user's key (bucketing)."),
    attr: list[str] = typer.Option([], "--attr", help="Context attribute NAME=VALUE (true/false/numbers "
                                                       "are typed); repeatable."),
    var: list[str] = typer.Option([], "--var", help="Prompt variable NAME=VALUE; repeatable."),
    db: str | None = DB, as_json: bool = JSON,
) -> None:
    """Which version serves this user, why, and the rendered request."""
    from canaryflow.cli.config_views import console, resolution_view
    from canaryflow.domain.resolution import resolve

    context = {"key": user, "attributes": parse_pairs(attr, "--attr", typed=True)}
    variables = parse_pairs(var, "--var", typed=False)
    state, versions, segments = _registry(db).snapshot(key)
    res = resolve(state, versions, segments, context, variables)
    if as_json:
        print_json(res.as_dict())
    else:
        console.print(resolution_view(res))


@app.command("audit")
def audit_cmd(key: str | None = typer.Argument(None, help="Config key [default: every event]."),
              limit: int = typer.Option(50, "--limit", min=1, help="The last N events."),
              db: str | None = DB, as_json: bool = JSON) -> None:
    """The audit trail: who changed what, from where, why (oldest first)."""
    from canaryflow.cli.config_views import audit_table, console

    events = _registry(db).audit(key, limit=limit)
    if as_json:
        print_json([json.loads(e.model_dump_json()) for e in events])
    elif not events:
        typer.echo("no audit events")
    else:
        console.print(audit_table(events))
