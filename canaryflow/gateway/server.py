"""Assemble and run the gateway: registry → cached client → traffic plane → ASGI app → uvicorn.

uvicorn runs on uvloop with httptools and no access log.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from typing import Any

from starlette.applications import Starlette

from canaryflow.domain.evaluators import ScorerRegistry
from canaryflow.errors import CanaryflowError
from canaryflow.gateway.app import build_app
from canaryflow.metrics.instruments import Metrics
from canaryflow.registry import Registry
from canaryflow.registry.traffic import Redactor, TrafficLog
from canaryflow.serving.client import Client
from canaryflow.serving.traffic import TrafficPlane

STALE_AFTER_S = 30.0


def health_of(client: Client, stale_after: float = STALE_AFTER_S) -> dict[str, Any]:
    """``/healthz``: can the registry be reached now, and how old is the serving cache?"""
    started = time.perf_counter()
    report: dict[str, Any] = {"registry": "ok"}
    try:
        client.registry.revisions()
        client.refresh()  # an idle gateway's cache is refreshed by the probe (else it looks stale)
    except Exception as exc:  # any failure means unreachable
        report["registry"] = f"unreachable: {exc}"
    report["registry_ms"] = round((time.perf_counter() - started) * 1000, 2)
    cache = client.status()
    age = cache.get("seconds_since_check")
    report["cache"] = cache
    report["cache_stale"] = age is not None and age > stale_after
    report["ok"] = report["registry"] == "ok" and not report["cache_stale"]
    return report


def build_gateway(db_url: str | None = None, *, client: Client | None = None, traffic_rate: float = 0.1,
                  retention: int = 100_000, redactor: Redactor | None = None, shadow_concurrency: int = 4,
                  shadow_queue: int = 100, metrics: Metrics | None = None, timeout: float = 60.0,
                  max_body_bytes: int | None = None, evaluation_queue: int = 1000,
                  scorers: ScorerRegistry | None = None) -> tuple[Starlette, TrafficPlane]:
    """The gateway app and its traffic plane.

    Args:
        db_url: the registry database (None: ``CANARYFLOW_DB_URL``); ignored when ``client`` is given.
        client: an existing cached client.
        traffic_rate: share of requests written to the traffic log (0 turns it off).
        retention: traffic-log rows kept per config.
        redactor: applied to logged text (default: e-mails and API-key-looking strings).
        shadow_concurrency: shadow calls in flight at most.
        shadow_queue: shadow jobs waiting at most (more are dropped and counted).
        metrics: the instruments (None: the process default, served at ``/metrics``).
        timeout: seconds per provider attempt.
        max_body_bytes: larger request bodies get 413 unparsed (None: ``CANARYFLOW_GATEWAY_MAX_BODY_BYTES``
            or 32 MiB).
        evaluation_queue: answers waiting for their online evaluators at most (more are dropped, counted).
        scorers: the online evaluators' plug-ins (``judge`` / ``pairwise``); default: deterministic only.
    """
    client = client or Client(Registry(db_url))
    log = TrafficLog(client.registry, rate=traffic_rate, redactor=redactor, retention=retention) \
        if traffic_rate > 0 else None
    plane = TrafficPlane(client, registry=client.registry, traffic_log=log, metrics=metrics, timeout=timeout,
                         shadow_concurrency=shadow_concurrency, shadow_queue=shadow_queue,
                         evaluation_queue=evaluation_queue, scorers=scorers)
    try:  # every served version's series at 0 before the first request (metrics/instruments.py)
        client.warm()
    except CanaryflowError as exc:
        logging.getLogger("canaryflow.gateway").warning("gateway starts with a cold cache: %s", exc)
    return build_app(plane, health=lambda: health_of(client), max_body_bytes=max_body_bytes), plane


def _freeze_heap() -> None:
    """Move what startup allocated (~260k objects: modules, registry, clients) out of the collector's reach,
    so no full collection re-walks it while serving (one took ~130 ms on the benchmark machine)."""
    import canaryflow.providers.anthropic_provider  # loaded now, not by the first request
    import canaryflow.providers.openai_provider
    import canaryflow.providers.transport  # noqa: F401

    gc.collect()
    gc.freeze()


def serve(host: str, port: int, **options: Any) -> None:
    """Run the gateway with uvicorn until interrupted (``options`` go to :func:`build_gateway`)."""
    import uvicorn

    from canaryflow import tracing
    from canaryflow.gateway.auth import protect

    tracing.configure(service_name="canaryflow-gateway")  # OTEL_* variables; off when they ask nothing
    app, _ = build_gateway(**options)
    app = protect(app, host)  # client keys required beyond loopback (canaryflow/gateway/auth.py)
    _freeze_heap()
    # Keep idle connections longer than clients' pools do (httpx: 5 s, uvicorn's default is also 5 s), so a
    # client never reuses a connection the gateway is closing at that very moment.
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                loop="asyncio" if sys.platform == "win32" else "uvloop",
                http="httptools", timeout_keep_alive=75)


__all__ = ["build_gateway", "health_of", "serve"]
