"""What the rollout tests share: a real SQLite registry with a config and segments, a scripted analysis
activity (the real one is tested against real Prometheus separately), and a driver that advances a
time-skipping server step by step while reacting to the rollout's state."""

from __future__ import annotations

import asyncio
import gzip
import http.server
import json
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from canaryflow.domain.analysis import AnalysisReport, AnalysisRequest
from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.gates import Evidence, Measurement, Verdict
from canaryflow.domain.rollout_status import RolloutStatus
from canaryflow.domain.segments import SegmentFile
from canaryflow.registry import Registry

SEGMENTS = SegmentFile.model_validate(
    {
        "segments": [
            {
                "name": "internal",
                "rules": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}],
            },
            {"name": "beta", "rules": [{"attribute": "beta", "op": "equals", "values": [True]}]},
        ]
    }
)


def make_registry(path: Path, key: str, versions: int = 2) -> Registry:
    """A SQLite registry with ``versions`` versions of ``key`` (v1 stable) and the internal/beta segments."""
    reg = Registry(f"sqlite:///{path}")
    for n in range(1, versions + 1):
        reg.push_config(
            ConfigSpec.model_validate(
                {
                    "key": key,
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "system", "content": f"You are assistant number {n}."}],
                }
            ),
            author="test",
        )
    reg.push_segments(SEGMENTS, by="test")
    return reg


def unique_key(prefix: str = "bot") -> str:
    """A config key no other test uses (workflow ids are unique per server)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class ScriptedAnalysis:
    """``analyze_stage`` for tests: per stage, a list of verdicts (the last one repeats); PASS otherwise."""

    def __init__(self, script: dict[str, list[Verdict]] | None = None, samples: float = 10_000) -> None:
        self.script = script or {}
        self.samples = samples
        self.calls: list[str] = []
        self.block: set[str] = set()
        self.release = asyncio.Event()

    @activity.defn(name="analyze_stage")
    async def analyze_stage(self, req: AnalysisRequest) -> AnalysisReport:
        self.calls.append(req.stage)
        if req.stage in self.block:  # hold this stage's analysis until the test releases it
            await self.release.wait()
        verdicts = self.script.get(req.stage, [Verdict.PASS])
        n = self.calls.count(req.stage) - 1
        verdict = verdicts[min(n, len(verdicts) - 1)]
        now = time.time()
        return AnalysisReport(
            at=now,
            candidate_samples=self.samples,
            stable_samples=self.samples * 19,
            measurements=[
                Measurement(
                    gate=g.label,
                    verdict=verdict,
                    at=now,
                    evidence=Evidence(
                        candidate_value=0.05 if verdict is Verdict.FAIL else 0.01,
                        stable_value=0.01,
                        candidate_samples=self.samples,
                        stable_samples=self.samples * 19,
                        margin=g.margin,
                        mode=g.mode,
                    ),
                )
                for g in req.gates
            ],
        )


Reaction = Callable[[RolloutStatus], Awaitable[bool]]
HISTORIES = Path(__file__).parent / "histories"
#: ``CANARYFLOW_RECORD_HISTORIES=<release>`` adds each scenario's history as ``<test>-<n>-<release>.json.gz``
#: beside the older ones; an existing history is never overwritten (tests/test_replay.py replays them all).
SAVE_HISTORIES = "CANARYFLOW_RECORD_HISTORIES"


async def save_history(client: Client, handle: WorkflowHandle[Any, Any], name: str) -> None:
    """Add every run of ``handle``'s workflow (continue-as-new makes several) as gzipped JSON; a history
    that exists already is kept as it is (histories are append-only)."""
    HISTORIES.mkdir(exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
    runs, run_id = [], handle.first_execution_run_id or handle.run_id
    while run_id:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        runs.append(history)
        last = history.events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.HasField("workflow_execution_continued_as_new_event_attributes")
            else None
        )
    for i, history in enumerate(runs):
        path = HISTORIES / f"{safe}{'' if i == 0 else f'-run{i}'}.json.gz"
        if path.exists():
            raise FileExistsError(f"{path} exists: histories are never rewritten; record under a new "
                                  f"{SAVE_HISTORIES} label")
        data = json.dumps(history.to_json_dict(), separators=(",", ":")).encode()
        path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))


async def advance(env: WorkflowEnvironment, seconds: float, rpc_timeout: float = 300.0) -> None:
    """``env.sleep(seconds)`` on the time-skipping server, with a bounded RPC timeout long enough for a busy
    machine to run every workflow task the skipped time holds (the default one is short)."""
    req = SleepRequest()
    req.duration.FromTimedelta(timedelta(seconds=seconds))
    await env.client.test_service.unlock_time_skipping_with_sleep(req, timeout=timedelta(seconds=rpc_timeout))


async def _query_status(handle: WorkflowHandle[Any, Any], attempts: int = 3) -> RolloutStatus:
    """The ``status`` query, asked again when the server gave up waiting for the worker's answer (a worker
    replaying a whole history on a loaded machine, ``max_cached_workflows=0``): the query is read-only."""
    for attempt in range(attempts):
        try:
            status: RolloutStatus = await handle.query("status", result_type=RolloutStatus)
            return status
        except RPCError as exc:
            if "deadline exceeded" not in str(exc) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


async def drive(
    env: WorkflowEnvironment,
    handle: WorkflowHandle[Any, Any],
    react: Reaction,
    step: float = 600.0,
    max_steps: int = 3000,
) -> RolloutStatus:
    """Advance the server's clock ``step`` seconds at a time; after each step show ``react`` the state.

    ``react`` returns True to stop driving. Returns the last state seen (the workflow may have ended).
    """
    status: RolloutStatus | None = None
    for _ in range(max_steps):
        status = await _query_status(handle)
        if await react(status):
            return status
        desc = await handle.describe()
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return status
        await env.sleep(step)
    raise AssertionError(f"the rollout did not get there in {max_steps} steps; last state: {status}")


class Webhook:
    """A real HTTP endpoint on loopback that records every POSTed JSON body with its headers."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.received.append((dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[str]:
        return [body["event"] for _, body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
