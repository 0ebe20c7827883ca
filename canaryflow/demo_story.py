"""The demo's narrative: what a product team does, step by step, on a started stack."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from canaryflow.errors import CanaryflowError

if TYPE_CHECKING:
    from canaryflow.demo import Story


def _wait_for_traffic(story: Story, requests: int, deadline_s: float = 60.0) -> None:
    """Until Prometheus has counted ``requests`` requests of the demo config."""
    from canaryflow.demo import KEY

    url = story.stack.env()["CANARYFLOW_PROMETHEUS_URL"]
    query = f'sum(canaryflow_requests_total{{config="{KEY}"}})'
    deadline = time.monotonic() + deadline_s
    seen = 0.0
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=5)
            result = answer.json()["data"]["result"]
            seen = float(result[0]["value"][1]) if result else 0.0
        except (httpx.HTTPError, KeyError, ValueError):
            seen = 0.0
        if seen >= requests:
            story.say(f"  Prometheus has counted {seen:.0f} requests of {KEY}")
            return
        time.sleep(1)
    raise CanaryflowError(f"only {seen:.0f} requests of {KEY} reached Prometheus in {deadline_s:g}s; "
                          f"see {story.stack.logs}/loadgen.log and gateway.log")


def _shown(path: Path) -> Path:
    """``path`` relative to the current directory when it is under it (shorter commands to copy)."""
    rel = os.path.relpath(path)
    return Path(rel) if not rel.startswith("..") else path


def tell(story: Story) -> None:
    """Steps 1–5 of the story; raises CanaryflowError when something does not go as told."""
    from canaryflow.demo import EXAMPLES, KEY, QUALITY_PLAN, SEGMENTS, WORKFLOW_ID, verdict_lines

    started = time.monotonic()
    ex, segments = _shown(EXAMPLES), _shown(SEGMENTS)
    story.step("1. Push the stable config and two candidates (configs are versioned, immutable)")
    story.run(["canaryflow", "segment", "push", str(segments)])
    story.run(["canaryflow", "config", "push", str(ex / f"{KEY}.v1.yaml")])
    story.say("  (the first version of a config becomes its stable version)")
    story.run(["canaryflow", "config", "push", str(ex / f"{KEY}.v2.yaml")])
    story.say("  v2: a shorter prompt and fewer output tokens — cheaper, as good")
    story.run(["canaryflow", "config", "push", str(ex / f"{KEY}.v3.yaml")])
    story.say("  v3: its prompt carries simulator markers that make the provider fail and slow down")
    story.run(["canaryflow", "config", "diff", KEY, "1", "2"], check=False)
    story.run(["canaryflow", "config", "list"], check=False)
    story.say("  Which version serves whom (segment pin → candidate exposure → stable):")
    for user, attr in (("ann", "email=ann@acme.com"), ("bob", "beta=true"), ("cy", "plan=free")):
        story.run(["canaryflow", "resolve", KEY, "--user", user, "--attr", attr], check=False)

    story.step("   Users send traffic through the gateway (load generator: internal, beta, regular users)")
    story.start_load(rate=10.0, seconds=900.0)
    _wait_for_traffic(story, 40 if story.quick else 100)

    story.step("2. Roll out v2 with the stock Temporal CLI and the 'fast' plan "
               "(shadow → internal → beta → 5 % → 10 % → full)")
    story.start_rollout(2, "cheaper prompt")
    ui = story.stack.urls()["Temporal UI"]
    story.say(f"  watch it live: {ui}/namespaces/default/workflows/{WORKFLOW_ID}")
    outcome, status = story.follow(approve=True, deadline_s=240)
    if outcome != "COMPLETED":
        raise CanaryflowError(f"the good candidate did not reach full: the workflow ended {outcome}"
                              f" in stage {status and status.get('state')}")
    story.say("  ✔ v2 reached full and is now the stable version")
    story.run(["canaryflow", "serve", "show", KEY], check=False)

    story.step("3. Roll out v3, the bad candidate: the gates catch it and it rolls back by itself")
    story.start_rollout(3, "even shorter answers")
    story.say("  (this time nobody approves anything: the gates alone decide)")
    outcome, status = story.follow(approve=False, deadline_s=180)
    if outcome != "FAILED":
        raise CanaryflowError(f"the bad candidate should have rolled back, but the workflow ended {outcome}")
    story.say("  ✔ rolled back by itself; the failed gate's evidence:")
    last = (status or {}).get("last_verdict")  # the rolled-back stage's last analysis, with its numbers
    failed = [v for v in (status or {}).get("verdicts", []) if v.get("verdict") == "FAIL"]
    shown = last if (last and last.get("verdict") == "FAIL") or not failed else failed[-1]
    for line in verdict_lines(shown):
        story.say(f"      {line}")
    described = story.run(["temporal", "workflow", "describe", "--workflow-id", WORKFLOW_ID], check=False,
                          show=False)
    story.say(f"$ temporal workflow describe --workflow-id {WORKFLOW_ID} | grep Message")
    for line in described.splitlines():
        if "Message:" in line:
            story.say("  " + line.strip())
    story.run(["temporal", "workflow", "list", "--query", f'CanaryflowConfigKey="{KEY}"'], check=False)
    story.run(["canaryflow", "serve", "show", KEY], check=False)
    story.say("  The audit trail: every serving change, who made it, from where (cli or the rollout) and why")
    story.run(["canaryflow", "audit", KEY], check=False)

    story.step("4. Roll out v4: errors and latency as good as stable, answers worse — caught in shadow by "
               "its judge, before any user sees it")
    story.run(["canaryflow", "config", "push", str(ex / "pair-judge.v1.yaml"), str(ex / f"{KEY}.v4.yaml")])
    story.say("  pair-judge: a versioned config (rubric, model, output schema); v4 names it in a pairwise "
              "evaluator")
    story.start_rollout(4, "terser answers", QUALITY_PLAN)
    outcome, status = story.follow(approve=False, deadline_s=150)
    if outcome != "FAILED":
        raise CanaryflowError(f"the worse-answering candidate should have rolled back, but the workflow "
                              f"ended {outcome}")
    story.say("  ✔ rolled back in shadow on its win rate; the workflow's failure message:")
    described = story.run(["temporal", "workflow", "describe", "--workflow-id", WORKFLOW_ID], check=False,
                          show=False)
    for line in described.splitlines():
        if "Message:" in line:
            story.say("  " + line.strip())
    story.say("  The pairs it lost, with the judge's reasons:")
    story.run(["canaryflow", "feedback", KEY, "--version", "4", "--limit", "3"], check=False)

    story.step("5. Compare the versions side by side (from Prometheus) and read the feedback")
    story.run(["canaryflow", "compare", KEY, "--window", "15m", "--by", "variation"], check=False)
    story.run(["canaryflow", "feedback", KEY, "--negative", "--limit", "2"], check=False)

    story.step("Where to look")
    for name, url in story.stack.urls().items():
        story.say(f"  {name:<32} {url}")
    story.say(f"  {'Logs':<32} {story.stack.logs}/")
    story.say(f"\nThe story took {time.monotonic() - started:.0f}s.")
