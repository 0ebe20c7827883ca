"""A rollout's page in the Temporal UI, read and saved by a real headless Chromium (playwright)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@dataclass(frozen=True)
class WorkflowPage:
    """What the User Metadata tab of a workflow's page shows."""

    summary: str
    details: str


def capture_workflow_page(browser: object, ui_url: str, workflow_id: str, shot: Path,
                          details_contain: str) -> WorkflowPage:
    """Open ``workflow_id``'s page, wait until its current details show ``details_contain``, save the page
    to ``shot`` and return the summary and details as rendered."""
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    page = browser.new_page(viewport={"width": 1400, "height": 820})
    try:
        page.goto(f"{ui_url}/namespaces/default/workflows/{workflow_id}")
        expect(page.get_by_text("RolloutWorkflow").first).to_be_visible(timeout=30_000)
        page.get_by_role("tab", name="User Metadata").click()
        # Summary and current details are markdown the UI renders in frames: the summary first, details last.
        summary = page.frame_locator("iframe").first.locator("body")
        details = page.frame_locator("iframe").last.locator("body")
        expect(details).to_contain_text(details_contain, timeout=15_000)
        page.screenshot(path=str(shot))
        return WorkflowPage(summary.inner_text(), details.inner_text())
    finally:
        page.close()
