"""``canaryflow demo``: the whole story on the local stack, each step printed with the command behind it.

1. push a stable config and two candidates (one cheaper and as good; one whose prompt makes the simulator
   fail and slow down) and start the load generator;
2. roll out the good candidate with the stock Temporal CLI and the ``fast`` plan, approving its gated stages
   with ``temporal workflow signal``, until it is promoted;
3. roll out the bad candidate and watch it roll back by itself, with the failed gate's evidence;
4. compare the versions side by side and print the URLs.

Everything runs in a fresh ``<dir>/demo`` (registry, Temporal database, Prometheus data, logs) so the story
repeats from a clean slate; what the demo started stops at the end (``--keep`` leaves the stack up).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canaryflow.devstack import DevStack, Ports, canaryflow_command, stop_group, tail
from canaryflow.errors import CanaryflowError
from canaryflow.temporal.devserver import temporal_binary

#: The demo's copies of examples/ with the {{product}} variable filled in (the load generator sends none).
EXAMPLES = Path(__file__).resolve().parents[1] / "deploy" / "demo"
SEGMENTS = Path(__file__).resolve().parents[1] / "examples" / "segments.yaml"
KEY = "support-bot"
WORKFLOW_ID = f"rollout-{KEY}"


#: The quality rollout: every request mirrored to the candidate, whose answers the pairwise judge compares
#: with stable's; it must win (ties count half) at least 40 % of the pairs. Nobody sees a candidate answer.
QUALITY_PLAN: dict[str, Any] = {
    "stages": [{"name": "shadow", "kind": "shadow", "shadow_fraction": 1.0, "min_duration": "10s",
                "max_duration": "90s",
                "gates": [{"metric": "win_rate", "evaluator": "pref", "floor": 0.4},
                          {"metric": "error_rate", "margin": 0.5, "floor": 0.1}]},
               {"name": "full", "kind": "full"}],
    "analysis_interval": "2s", "on_inconclusive": "rollback"}


def demo_plan(quick: bool = False) -> dict[str, Any]:
    """The ``fast`` preset with stages capped at 20 s (30 s in shadow): with the demo's little traffic the
    sequential judge stays INCONCLUSIVE on the small stages, which then wait for a human approval.

    ``quick`` (CI): stages after shadow last 5–10 s and the analysis runs every 2 s (shadow keeps its 30 s:
    that is where the bad candidate is caught).
    """
    from canaryflow.domain.plan import FAST_PLAN

    plan = FAST_PLAN.model_dump(mode="json", exclude={"name"}, exclude_none=True, exclude_defaults=True)
    for stage in plan["stages"]:
        if stage["kind"] != "full":
            shadow = stage["kind"] == "shadow"
            stage["max_duration"] = "30s" if shadow else ("10s" if quick else "20s")
            if quick and not shadow:
                stage["min_duration"] = "5s"
    if quick:
        plan["analysis_interval"] = "2s"
    return plan


@dataclass
class Story:
    """Runs and prints the demo's commands against a started :class:`DevStack`."""

    stack: DevStack
    quick: bool = False
    say: Callable[[str], None] = print
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = self.stack.env()
        env["TEMPORAL_ADDRESS"] = env["CANARYFLOW_TEMPORAL_ADDRESS"]
        env["TEMPORAL_NAMESPACE"] = env["CANARYFLOW_TEMPORAL_NAMESPACE"]
        return env

    def step(self, title: str) -> None:
        self.say(f"\n=== {title}")

    def run(self, args: list[str], *, show: bool = True, check: bool = True) -> str:
        """Run ``canaryflow ...`` or ``temporal ...`` (printed as typed), return its stdout."""
        if show:
            self.say("$ " + shlex.join(args))
        tool = canaryflow_command(*args[1:]) if args[0] == "canaryflow" else [temporal_binary(), *args[1:]]
        done = subprocess.run(tool, env=self.env, capture_output=True, text=True, timeout=120, check=False)
        if show and done.stdout.strip():
            self.say("  " + done.stdout.strip().replace("\n", "\n  "))
        if check and done.returncode != 0:
            raise CanaryflowError(f"'{shlex.join(args)}' failed ({done.returncode}): "
                                  f"{(done.stderr or done.stdout).strip()[-400:]}")
        return done.stdout

    def start_load(self, rate: float, seconds: float) -> None:
        args = ["canaryflow", "loadgen", KEY, "--rate", f"{rate:g}", "--duration", f"{seconds:g}",
                "--concurrency", "64"]
        log = self.stack.logs / "loadgen.log"
        self.say("$ " + shlex.join(args) + f" > {log} &")
        with open(log, "ab") as out:
            self.background.append(subprocess.Popen(
                canaryflow_command(*args[1:]), env=self.env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True))

    def stop_background(self) -> None:
        """Stop the load generator(s) and wait until each one's whole process group is gone."""
        for proc in self.background:
            stop_group(proc, 10.0)
        self.background.clear()

    # ------------------------------------------------------------------------------------ rollouts
    def start_rollout(self, version: int, reason: str, plan: dict[str, Any] | None = None) -> None:
        """``temporal workflow start`` with the rollout input written to a file the user can read (the
        demo's fast plan unless ``plan``)."""
        payload = {"config_key": KEY, "candidate_version": version, "plan": plan or demo_plan(self.quick),
                   "requested_by": "demo", "reason": reason}
        path = self.stack.root / f"rollout-v{version}.json"
        text = json.dumps(payload, separators=(",", ":"))
        path.write_text(text + "\n")
        cap = "10 s (--quick)" if self.quick else "20 s"
        what = "a shadow stage judged on answer quality" if plan else f"the fast plan, stages capped at {cap}"
        self.say(f"$ cat {path}   # {what}\n  {text}")
        self.run(["temporal", "workflow", "start", "--task-queue", "canaryflow", "--type", "RolloutWorkflow",
                  "--workflow-id", WORKFLOW_ID, "--input-file", str(path),
                  "--static-summary", f"{KEY} v{version}: {reason}"])

    def status(self) -> dict[str, Any] | None:
        """The rollout's ``status`` query (stock CLI), or None while it cannot answer (a slow answer too:
        the caller asks again, within its own deadline)."""
        try:
            out = subprocess.run([temporal_binary(), "workflow", "query", "--workflow-id", WORKFLOW_ID,
                                  "--type", "status", "--output", "json"], env=self.env, capture_output=True,
                                 text=True, timeout=30, check=False)
        except subprocess.TimeoutExpired:
            return None
        if out.returncode != 0:
            return None
        return _query_payload(out.stdout)

    def closed_status(self) -> str | None:
        """COMPLETED / FAILED / ... once the workflow has closed, else None."""
        try:
            out = subprocess.run([temporal_binary(), "workflow", "describe", "--workflow-id", WORKFLOW_ID,
                                  "--output", "json"], env=self.env, capture_output=True, text=True,
                                 timeout=30, check=False)
        except subprocess.TimeoutExpired:
            return None
        if out.returncode != 0:
            return None
        info = json.loads(out.stdout).get("workflowExecutionInfo", {})
        status = str(info.get("status", ""))
        if "RUNNING" in status or not status:
            return None
        return status.rsplit("_", 1)[-1].upper()

    def follow(self, *, approve: bool, deadline_s: float) -> tuple[str, dict[str, Any] | None]:
        """Print the rollout's progress until it closes; approve what waits for approval if ``approve``."""
        deadline = time.monotonic() + deadline_s
        stage_seen, state_seen, last_line = "", "", 0.0
        approved: set[str] = set()
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            st = self.status()
            if st is not None:
                last = st
                stage, state = _stage_name(st), str(st.get("state"))
                if stage != stage_seen:
                    if stage_seen:
                        ended = verdict_lines(st.get("last_verdict"))[:1]
                        self.say(f"    {stage_seen} done" + (f": {ended[0]}" if ended else ""))
                    self.say(f"  · stage {stage} ({_exposure(st)})")
                    stage_seen, last_line = stage, time.monotonic()
                elif state != state_seen or time.monotonic() - last_line > 15:
                    self.say(f"    [{state}] {st.get('waiting_for') or ''}".rstrip())
                    last_line = time.monotonic()
                state_seen = state
                # the approval itself, not the state: a status read while the last stage opens can still
                # say awaiting_approval after its approval was taken
                waiting = str((st.get("approval") or {}).get("stage") or "")
                if approve and state == "awaiting_approval" and waiting and waiting not in approved:
                    approved.add(waiting)
                    why = (st.get("approval") or {}).get("why", "")
                    self.say(f"    {waiting} waits for approval ({why}); the numbers a human reads first:")
                    for line in verdict_lines(st.get("last_verdict")):
                        self.say(f"      {line}")
                    body = {"by": "demo", "stage": waiting, "comment": "reviewed the numbers"}
                    self.run(["temporal", "workflow", "signal", "--workflow-id", WORKFLOW_ID,
                              "--name", "approve", "--input", json.dumps(body, separators=(",", ":"))])
            closed = self.closed_status()
            if closed is not None:
                return closed, self.status() or last
            time.sleep(1.0)
        raise CanaryflowError(f"the rollout did not finish within {deadline_s:g}s; see "
                              f"{self.stack.urls()['Temporal UI']} and {self.stack.logs}/worker.log"
                              f"{tail(self.stack.logs / 'worker.log')}")


def _exposure(st: dict[str, Any]) -> str:
    try:
        stage = st["plan"]["stages"][int(st.get("stage_index", 0))]
    except (KeyError, IndexError, TypeError, ValueError):
        return "?"
    kind = stage.get("kind")
    if kind == "shadow":
        return f"candidate answers {float(stage.get('shadow_fraction') or 0) * 100:g} % of traffic in shadow"
    if kind == "segments":
        return "segments " + ", ".join(stage.get("segments") or [])
    if kind == "percent":
        return f"{stage.get('percent'):g} % of users"
    return "everyone"


def _query_payload(stdout: str) -> dict[str, Any] | None:
    """The status dict out of ``temporal workflow query --output json`` (whatever the CLI version wraps)."""
    try:
        data: Any = json.loads(stdout)
    except ValueError:
        return None
    for _ in range(4):
        if isinstance(data, dict) and "config_key" in data:
            return data
        if isinstance(data, dict):
            data = data.get("queryResult", data.get("result", next(iter(data.values()), None)))
        elif isinstance(data, list) and data:
            data = data[0]
        else:
            return None
    return None


def _stage_name(st: dict[str, Any]) -> str:
    try:
        return str(st["plan"]["stages"][int(st.get("stage_index", 0))]["name"])
    except (KeyError, IndexError, TypeError, ValueError):
        return "?"


def verdict_lines(verdict: dict[str, Any] | None) -> list[str]:
    if not verdict:
        return []
    out = [f"verdict {verdict.get('verdict')} (candidate n={verdict.get('candidate_samples', 0):g}, "
           f"stable n={verdict.get('stable_samples', 0):g})"]
    for gate in verdict.get("gates", []):
        last = gate.get("last") or {}
        ev = last.get("evidence") or {}
        numbers = ""
        if ev.get("candidate_value") is not None or ev.get("stable_value") is not None:
            cand, stable = _fmt(ev.get("candidate_value")), _fmt(ev.get("stable_value"))
            numbers = f": candidate {cand} vs stable {stable}"
            if ev.get("margin") is not None:
                numbers += f", margin {ev.get('margin'):g} {ev.get('mode') or ''}".rstrip()
        note = f" — {ev['note']}" if ev.get("note") else ""
        out.append(f"{gate.get('gate')} {gate.get('verdict')}{numbers}{note}")
    return out


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{float(v):.4g}"


def run_demo(*, state_dir: Path, quick: bool = False, keep: bool = False, ports: Ports | None = None,
             say: Callable[[str], None] = print) -> None:
    """Tell the story on a fresh stack under ``state_dir/demo``; stop what was started (unless ``keep``)."""
    from canaryflow.demo_story import tell

    root = state_dir / "demo"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    os.environ["CANARYFLOW_DB_URL"] = f"sqlite:///{(root / 'canaryflow.db').resolve()}"
    stack = DevStack(root=root, ports=ports or Ports(), echo=say)
    story = Story(stack, quick=quick, say=say)
    try:
        say("=== Starting the local stack (Temporal dev server + UI, Prometheus, simulator, gateway, worker)")
        stack.start()
        tell(story)
        if keep:
            say("\nThe stack stays up (--keep): Ctrl-C stops it.")
            with contextlib.suppress(KeyboardInterrupt):
                while not stack.dead():
                    time.sleep(1)
    except KeyboardInterrupt:
        say("\ninterrupted: stopping what the demo started")
        raise
    finally:
        story.stop_background()
        stack.stop()
        say("Stopped everything the demo started.")


__all__ = ["EXAMPLES", "KEY", "SEGMENTS", "WORKFLOW_ID", "Story", "demo_plan", "run_demo", "verdict_lines"]
