"""``canaryflow eval``: replay recorded traffic or a dataset against several versions, side by side."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

import typer
from pydantic import ValidationError

from canaryflow.cli import app
from canaryflow.cli._common import print_json
from canaryflow.errors import CanaryflowError, ValidationFailed
from canaryflow.evaluation.models import EvalInput, EvalResult


def _versions(text: str) -> list[int]:
    try:
        versions = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise ValidationFailed(f"--versions {text!r}: write version numbers separated by commas, e.g. 3,4,5"
                               ) from None
    if not versions or any(v < 1 for v in versions):
        raise ValidationFailed("--versions: give at least one version number >= 1, e.g. 3,4,5")
    return versions


#: Where each built-in provider's official client sends requests, and which variables it reads.
_PROVIDER_ENV = {"openai": ("OPENAI_BASE_URL", "OPENAI_API_KEY", "https://api.openai.com/v1"),
                 "anthropic": ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "https://api.anthropic.com")}


def every_call_failed(result: EvalResult, providers: Iterable[str], env: Mapping[str, str], *,
                      where: str) -> str | None:
    """None if any call succeeded; else one line naming the likely cause (unset variables, the address
    tried, the error types seen) and the fix."""
    calls = sum(s.calls for s in result.stats)
    if calls == 0 or any(s.errors < s.calls for s in result.stats):
        return None
    kinds: dict[str, int] = {}
    for s in result.stats:
        for kind, n in s.error_types.items():
            kinds[kind] = kinds.get(kind, 0) + n
    seen = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
    causes = []
    for provider in sorted(providers):
        if provider not in _PROVIDER_ENV:
            continue
        url_var, key_var, default = _PROVIDER_ENV[provider]
        url = env.get(url_var)
        if not env.get(key_var):
            causes.append(f"{key_var} is not set")
        if not url:
            causes.append(f"{url_var} is not set, so {provider} calls went to {default}")
        elif "connection" in kinds or "timeout" in kinds:
            causes.append(f"{provider} calls to {url_var}={url} could not connect")
    because = "; ".join(causes) or "see the error types"
    return (f"every one of the {calls} calls failed ({seen}) {where}: {because}. Point the providers' "
            "variables at a provider (the dev stack's simulator: '. .canaryflow/env' after 'make dev')")


async def _run_temporal(inp: EvalInput, *, quiet: bool) -> EvalResult:
    from canaryflow.settings import get_settings
    from canaryflow.temporal import connect

    settings = get_settings()
    try:
        client = await connect(settings)
    except Exception as exc:
        raise CanaryflowError(f"cannot reach Temporal at {settings.temporal_address}: {exc} "
                              "(start it with 'canaryflow dev', or use --local)") from exc
    wf_id = f"eval-{inp.config_key}-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow("EvaluationWorkflow", inp, id=wf_id, task_queue=settings.task_queue,
                                         result_type=EvalResult)
    if not quiet:
        typer.echo(f"started workflow {wf_id} on task queue {settings.task_queue}", err=True)
    waiter = asyncio.ensure_future(handle.result())
    shown = ""
    try:
        while not quiet and not waiter.done():
            await asyncio.wait({waiter}, timeout=1.0)
            if waiter.done():
                break
            with contextlib.suppress(Exception):
                p = await handle.query("progress", result_type=dict[str, int])
                line = f"  {p.get('done', 0)}/{p.get('size', 0)} items"
                if p.get("size") and line != shown:
                    typer.echo(line, err=True)
                    shown = line
        result: EvalResult = await waiter
        return result
    except Exception as exc:
        root: BaseException = exc
        while getattr(root, "cause", None) is not None:  # workflow failure → activity error → the reason
            root = root.cause  # type: ignore[attr-defined]
        raise CanaryflowError(f"evaluation {wf_id} failed: {root}") from exc


@app.command("eval")
def eval_command(
    key: str = typer.Argument(..., help="config key"),
    versions: str = typer.Option(..., "--versions", help="versions to compare, e.g. 3,4,5"),
    sample: int | None = typer.Option(None, "--sample", help="replay N sampled recorded requests"),
    dataset: Path | None = typer.Option(None, "--dataset", help="JSONL file of inputs and expected answers"),
    stable: int | None = typer.Option(None, "--stable", help="reference version (default: the stable one)"),
    concurrency: int = typer.Option(4, "--concurrency", help="calls in flight at once"),
    rate: float = typer.Option(20.0, "--rate", help="maximum calls started per second"),
    local: bool = typer.Option(False, "--local", help="run in-process, without Temporal"),
    as_json: bool = typer.Option(False, "--json", help="print the per-version numbers as JSON"),
) -> None:
    """Replay recorded traffic (--sample) or a dataset (--dataset) against several versions and print
    errors, latency quantiles, tokens and cost per request, agreement with stable and accuracy."""

    try:
        inp = EvalInput(config_key=key, versions=_versions(versions), sample=sample,
                        dataset=str(dataset.resolve()) if dataset is not None else None,
                        stable_version=stable, concurrency=concurrency, rate_per_s=rate)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "input"
        raise ValidationFailed(f"{where}: {first['msg']}") from None
    if local:
        from canaryflow.evaluation.run import run_local
        from canaryflow.registry import Registry

        def progress(done: int, size: int) -> None:
            if not as_json:
                typer.echo(f"  {done}/{size} items", err=True)

        registry = Registry()
        result = asyncio.run(run_local(inp, registry, progress))
        providers = {str(registry.get_version(key, s.version).spec.provider) for s in result.stats}
        failed = every_call_failed(result, providers, os.environ, where="in this shell")
    else:
        result = asyncio.run(_run_temporal(inp, quiet=as_json))
        failed = every_call_failed(result, set(), {}, where="in the worker's environment")
    if as_json:
        print_json({"config_key": result.config_key, "stable_version": result.stable_version,
                    "items": result.items, "versions": result.rows()})
    else:
        sys.stderr.flush()  # the progress lines (stderr) come before the table (stdout), even through a pipe
        typer.echo(result.table())
    if failed:
        raise CanaryflowError(failed)
