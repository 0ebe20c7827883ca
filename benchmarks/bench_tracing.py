"""CPU cost of canaryflow's tracing hooks per request, in-process (no network, no server).

One "request" runs what the gateway runs around a plain completion with one provider attempt: the request
span (the ASGI middleware's part: extract the caller's context, start, attach; no middleware when tracing is
off), ``resolved``, the attempt span with the ``traceparent`` injection into the provider request's headers,
``finished``, and the ends.
Measured with tracing off, on but not sampled (ratio 0), and on and sampled (ratio 1, batch processor with
an exporter that drops the spans). Run::

    .venv/bin/python benchmarks/bench_tracing.py [--n 20000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from opentelemetry import propagate
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from canaryflow import tracing
from canaryflow.domain.resolution import Resolution
from canaryflow.providers.base import ChatResult

RES = Resolution("bench", 1, "stable", "stable v1", "openai", "gpt-4o-mini",
                 ({"role": "system", "content": "You are a benchmark assistant."},), {"max_tokens": 100}, (),
                 "none", 1)
RESULT = ChatResult("Paris.", "stop", 20, 3, 0, "openai", "gpt-4o-mini", "chatcmpl-1")
CALLER = [{"role": "user", "content": "What is the capital of France?"}]


class Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def served(headers: dict[str, str]) -> None:
    tracing.resolved(RES)
    with tracing.attempt("openai", "gpt-4o-mini", None, 0) as span:
        if tracing.enabled():
            propagate.inject(headers)  # what the httpx hook does
        span.result(RESULT)
    tracing.finished(RES, CALLER, RESULT, "0" * 32, None, None)


def one_request() -> None:
    headers: dict[str, str] = {"content-type": "application/json"}
    if not tracing.enabled():  # the gateway has no tracing middleware then
        served(headers)
        return
    with tracing.request(propagate.extract(headers), server=True):
        served(headers)


def per_request_us(n: int) -> float:
    for _ in range(n // 10):
        one_request()
    start = time.perf_counter()
    for _ in range(n):
        one_request()
    return (time.perf_counter() - start) / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    rows = [("off", per_request_us(args.n))]
    for label, ratio in (("on, not sampled (ratio 0)", 0.0), ("on, sampled (ratio 1)", 1.0)):
        provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
        provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=100_000))
        tracing.install(provider)
        rows.append((label, per_request_us(args.n)))
        tracing.uninstall()
        provider.shutdown()
    print(f"bench_tracing.py — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
          f"{os.getloadavg()[0]:.2f}, n={args.n}\n")
    print("| tracing | µs per request (hooks only) |\n|---|---|")
    for label, us in rows:
        print(f"| {label} | {us:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
