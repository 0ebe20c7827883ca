"""An app that uses canaryflow only through OpenFeature: resolve the AI config as a flag, call the model with
the official client, and report the call and the user's feedback through the Tracking API — so the
rollout's gates (error rate, latency, tokens, negative feedback) see this app's traffic.

    pip install 'canaryflow[openfeature]'
    export CANARYFLOW_DB_URL=sqlite:///canaryflow.db OPENAI_BASE_URL=http://127.0.0.1:8091/v1
    OPENAI_API_KEY=sk-sim python examples/openfeature_app.py --users 20 --metrics-port 9464

It prints one JSON line (what it served), then serves its metrics on ``--metrics-port`` for Prometheus
until standard input closes (Ctrl-D).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from typing import Any

import anthropic
import openai
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.track import TrackingEventDetails
from prometheus_client import start_http_server

import canaryflow
from canaryflow.metrics.instruments import Metrics
from canaryflow.openfeature import CanaryflowProvider
from canaryflow.providers.errors import map_error

QUESTION = "My invoice shows the wrong VAT number. How do I fix it?"


def call_model(cfg: dict[str, Any]) -> tuple[str, str, int, int]:
    """Call the resolved provider/model with the resolved messages: text, finish reason, token usage."""
    params = cfg["parameters"]
    messages = [*cfg["messages"], {"role": "user", "content": QUESTION}]
    if cfg["provider"] == "anthropic":
        system = "\n".join(m["content"] for m in messages if m["role"] == "system")
        msg = anthropic.Anthropic(max_retries=0).messages.create(
            model=cfg["model"], system=system, max_tokens=int(params.get("max_tokens", 1024)),
            messages=[m for m in messages if m["role"] != "system"])
        text = "".join(getattr(b, "text", "") for b in msg.content)
        return text, str(msg.stop_reason or "stop"), msg.usage.input_tokens, msg.usage.output_tokens
    done = openai.OpenAI(max_retries=0).chat.completions.create(
        model=cfg["model"], messages=messages, temperature=params.get("temperature"),
        max_completion_tokens=params.get("max_tokens"))
    usage = done.usage
    return (done.choices[0].message.content or "", str(done.choices[0].finish_reason),
            usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="support-bot")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--product", default="Acme")
    parser.add_argument("--metrics-port", type=int, default=0, help="serve /metrics here (0: don't)")
    args = parser.parse_args(argv)

    client = canaryflow.Client()
    metrics = Metrics()
    client.traffic(metrics=metrics, traffic_rate=0.0)  # tracked calls are counted in these instruments
    if args.metrics_port:
        start_http_server(args.metrics_port, addr="127.0.0.1", registry=metrics.registry)
    api.set_provider_and_wait(CanaryflowProvider(client, variables={"product": args.product}), "support")
    flags = api.get_client("support")

    served: Counter[str] = Counter()
    for i in range(args.users):
        ctx = EvaluationContext(f"user-{i}", {"plan": "pro" if i % 2 else "free"})
        details = flags.get_object_details(args.config, {}, ctx)
        if details.error_code is not None:  # the flag's default: the app decides what to do without it
            print(f"no config: {details.error_code} {details.error_message}", file=sys.stderr)
            served["default"] += 1
            continue
        cfg: dict[str, Any] = dict(details.value)  # type: ignore[arg-type]
        rid = str(details.flag_metadata["request_id"])
        started = time.perf_counter()
        try:
            text, finish, tokens_in, tokens_out = call_model(cfg)
        except (openai.APIError, anthropic.APIError) as exc:
            error = map_error(exc, provider=cfg["provider"], model=cfg["model"])
            flags.track("completion", ctx, TrackingEventDetails(time.perf_counter() - started, {
                "request_id": rid, "outcome": "error", "error_type": error.error_type}))
            served[f"{details.variant}-error"] += 1
            continue
        flags.track("completion", ctx, TrackingEventDetails(time.perf_counter() - started, {
            "request_id": rid, "finish_reason": finish, "input_tokens": tokens_in,
            "output_tokens": tokens_out}))
        liked = len(text) < 400 and i % 5 != 0  # the app's own thumbs up / down
        flags.track("feedback", ctx, TrackingEventDetails(attributes={
            "request_id": rid, "sentiment": "positive" if liked else "negative"}))
        served[f"{details.variant}-v{cfg['version']}"] += 1

    print(json.dumps({"config": args.config, "served": dict(served)}), flush=True)
    if args.metrics_port:
        sys.stdin.read()  # keep /metrics up for Prometheus until stdin closes
    api.shutdown()
    client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
