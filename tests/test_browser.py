"""The Temporal UI, in a real headless Chromium, shows a running rollout with its stage, state and details.

A Temporal dev server (UI on a free port) and a real worker run a rollout of the example config that waits
for approval at its ``internal`` stage. The workflow list filtered by canaryflow's search attributes shows it
(and a filter on another state does not); its page shows the search attributes and the current details the
workflow keeps. The page is saved to a temporary folder (the README's picture comes from the "Ten lines"
themselves: ``make screenshot``, see tests/test_demo.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.segments import SegmentFile
from canaryflow.registry import Registry
from canaryflow.temporal.devserver import start_dev_server, temporal_binary
from tests.servers import Prometheus, free_port
from tests.temporal_ui import CHROMIUM, CHROMIUM_ARGS, capture_workflow_page

ROOT = Path(__file__).resolve().parents[1]
KEY = "support-bot"
WORKFLOW_ID = f"rollout-{KEY}"
PLAN = {"stages": [
    {"name": "shadow", "kind": "shadow", "shadow_fraction": 0.1, "min_duration": "1s", "gates": []},
    {"name": "internal", "kind": "segments", "segments": ["internal"], "min_duration": "1s", "gates": [],
     "approval": "required"},
    {"name": "full", "kind": "full"}], "analysis_interval": "1s"}

pytestmark = [pytest.mark.browser, pytest.mark.temporal]


@dataclass
class Rollout:
    ui_url: str
    env: dict[str, str]


def _query_status(env: dict[str, str]) -> dict[str, object] | None:
    cmd = [temporal_binary(), "workflow", "query", "--workflow-id", WORKFLOW_ID, "--type", "status",
           "--output", "json"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30, check=False)
    if out.returncode != 0:
        return None
    result = json.loads(out.stdout)["queryResult"][0]
    return dict(result)


@pytest.fixture(scope="module")
def rollout(prometheus: Prometheus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rollout]:
    """A dev server with its UI, a worker, and a rollout of support-bot v2 waiting for approval."""
    work = tmp_path_factory.mktemp("browser")
    port, ui_port = free_port(), free_port()
    server = start_dev_server(port, ui_port, db_file=work / "temporal.db", log_file=work / "temporal.log")
    db_url = f"sqlite:///{work / 'registry.db'}"
    reg = Registry(db_url)
    for n in (1, 2):
        spec = yaml.safe_load((ROOT / "examples" / f"{KEY}.v{n}.yaml").read_text())
        reg.push_config(ConfigSpec.model_validate(spec), author="test")
    segments = yaml.safe_load((ROOT / "examples" / "segments.yaml").read_text())
    reg.push_segments(SegmentFile.model_validate(segments), by="test")
    env = dict(os.environ, CANARYFLOW_DB_URL=db_url, CANARYFLOW_TEMPORAL_ADDRESS=f"127.0.0.1:{port}",
               CANARYFLOW_PROMETHEUS_URL=prometheus.url, TEMPORAL_ADDRESS=f"127.0.0.1:{port}")
    with open(work / "worker.log", "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "worker"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    try:
        payload = {"config_key": KEY, "candidate_version": 2, "plan": PLAN, "requested_by": "alice",
                   "reason": "shorter answers, lower cost"}
        subprocess.run([temporal_binary(), "workflow", "start", "--task-queue", "canaryflow", "--type",
                        "RolloutWorkflow", "--workflow-id", WORKFLOW_ID, "--input", json.dumps(payload),
                        "--static-summary", f"{KEY} v1 → v2 (shorter answers, lower cost)",
                        "--static-details", "plan: shadow → **internal** (approval required) → full"],
                       env=env, check=True, capture_output=True, timeout=30)
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline:
            status = _query_status(env)
            if status and status.get("state") == "awaiting_approval":
                break
            time.sleep(0.5)
        assert status and status.get("state") == "awaiting_approval", (
            f"the rollout never waited for approval: {status}; "
            f"worker log: {(work / 'worker.log').read_text()[-2000:]}")
        yield Rollout(f"http://127.0.0.1:{ui_port}", env)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        reg.close()
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _list_url(ui: str, query: str) -> str:
    return f"{ui}/namespaces/default/workflows?query={urllib.parse.quote(query)}"


def test_workflow_list_shows_the_rollout_by_stage_and_state(rollout: Rollout, browser: object) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    waiting = (f'CanaryflowConfigKey="{KEY}" AND CanaryflowStage="internal" '
               'AND CanaryflowState="awaiting_approval"')
    page.goto(_list_url(rollout.ui_url, waiting))
    row = page.get_by_role("row").filter(has_text=WORKFLOW_ID)
    expect(row).to_be_visible(timeout=30_000)
    expect(row).to_contain_text("Running", ignore_case=True)
    expect(row).to_contain_text("RolloutWorkflow")
    # The same list filtered on another state does not show it: the attributes carry the real state.
    page.goto(_list_url(rollout.ui_url, f'CanaryflowConfigKey="{KEY}" AND CanaryflowState="rolled_back"'))
    expect(page.get_by_text("No Workflows", exact=False)).to_be_visible(timeout=30_000)
    expect(page.get_by_role("row").filter(has_text=WORKFLOW_ID)).to_have_count(0)
    page.close()


def test_workflow_page_shows_search_attributes_and_current_details(rollout: Rollout, browser: object,
                                                                    tmp_path: Path) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    page = browser.new_page(viewport={"width": 1400, "height": 820})
    page.goto(f"{rollout.ui_url}/namespaces/default/workflows/{WORKFLOW_ID}")
    expect(page.get_by_text("RolloutWorkflow").first).to_be_visible(timeout=30_000)

    page.get_by_role("tab", name="Search Attributes").click()
    attributes = page.get_by_text('"CanaryflowState"', exact=False).first
    expect(attributes).to_be_visible(timeout=15_000)
    body = page.inner_text("body")
    assert '"CanaryflowStage": "internal"' in body
    assert '"CanaryflowState": "awaiting_approval"' in body
    assert f'"CanaryflowConfigKey": "{KEY}"' in body

    page.close()
    shot = tmp_path / "temporal-ui.png"
    shown = capture_workflow_page(browser, rollout.ui_url, WORKFLOW_ID, shot, "awaiting_approval")
    assert f"{KEY} v1 → v2" in shown.summary
    assert "internal" in shown.details
    assert "a human approval of stage internal" in shown.details
    assert shot.stat().st_size > 10_000
