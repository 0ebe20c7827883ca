"""Webhook notifications: Slack-compatible JSON (``text`` plus ``blocks`` with the fields) POSTed with httpx.

A failing webhook never blocks or fails a rollout: errors are reported in the result, not raised, and the
workflow bounds the activity with a short timeout. Targets are URLs or ``env:NAME`` (the URL is read from the
worker's environment, so secret webhook URLs stay out of workflow histories). Every POST carries an
``Idempotency-Key`` header, the same for every retry of one event.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
from temporalio import activity

from canaryflow.temporal import names
from canaryflow.temporal.messages import Notification, NotifyResult


def slack_payload(note: Notification) -> dict[str, Any]:
    """The JSON body: ``text`` for any webhook, ``blocks`` with the fields for Slack."""
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": note.text}}]
    if note.fields:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in list(note.fields.items())[:10]
                ],
            }
        )
    return {"text": note.text, "event": note.event, "fields": note.fields, "blocks": blocks}


def _url(target: str) -> str | None:
    if target.startswith("env:"):
        return os.environ.get(target[4:]) or None
    return target


async def send(note: Notification, timeout: float = 5.0) -> NotifyResult:
    """POST ``note`` to every target; returns what was delivered and what failed (never raises)."""
    delivered, failed = 0, []
    body = slack_payload(note)
    async with httpx.AsyncClient(timeout=timeout) as http:
        for target in note.targets:
            url = _url(target)
            if url is None:
                failed.append(f"{target}: not set in the worker's environment")
                continue
            try:
                r = await http.post(url, json=body, headers={"Idempotency-Key": note.idempotency_key})
                r.raise_for_status()
                delivered += 1
            except httpx.HTTPError as exc:
                shown = target if target.startswith("env:") else httpx.URL(url).host
                failed.append(f"{shown}: {type(exc).__name__}")
    return NotifyResult(delivered=delivered, failed=failed)


@activity.defn(name=names.NOTIFY)
async def notify(note: Notification) -> NotifyResult:
    """Send one rollout event to the plan's webhooks; failures are logged and returned, never raised."""
    result = await send(note)
    if result.failed:
        activity.logger.warning("notification %s not delivered to: %s", note.event, "; ".join(result.failed))
    return result


__all__ = ["notify", "send", "slack_payload"]
