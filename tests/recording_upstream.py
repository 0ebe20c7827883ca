"""A recording upstream: an HTTP server that records the body it receives and returns the answer it is given.

It stands where a provider would (OpenAI ``/v1/chat/completions``, ``/v1/responses``, ``/v1/embeddings``;
Anthropic ``/v1/messages``), so tests can assert that the provider received exactly the caller's fields plus
the config's decisions, and that the caller received exactly the provider's answer. A streamed request
(``"stream": true``) is answered with :attr:`Recorder.events` as server-sent events (``event:`` lines for
Anthropic and Responses events, ``data: [DONE]`` after chat chunks).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from canaryflow.providers.factory import clear_cache
from canaryflow.sim.server import ThreadedServer


@dataclass
class Received:
    """One request the upstream received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Recorder:
    """What the upstream answers next, and what it received."""

    answer: Any = None
    answers: list[Any] = field(default_factory=list)
    """Answers to give in turn before falling back to :attr:`answer` (a scripted conversation)."""
    events: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    by_path: dict[str, Any] = field(default_factory=dict)
    """Answers for particular paths (e.g. ``/v1/responses``), before :attr:`answers` and :attr:`answer`."""
    failing: dict[str, int] = field(default_factory=dict)
    """Paths answered with this error status instead (a provider that is down)."""
    received: list[Received] = field(default_factory=list)

    @property
    def last(self) -> Received:
        """The last request received."""
        return self.received[-1]

    def reset(
        self,
        answer: Any = None,
        events: list[dict[str, Any]] | None = None,
        status: int = 200,
        answers: list[Any] | None = None,
    ) -> None:
        """Set the next answer(s) and forget what was received."""
        self.answer, self.events, self.status = answer, list(events or []), status
        self.answers = list(answers or [])
        self.failing = {}
        self.by_path = {}
        self.received.clear()


def _sse(path: str, events: list[dict[str, Any]]) -> Iterator[bytes]:
    named = not path.endswith("/chat/completions")
    for event in events:
        data = json.dumps(event).encode()
        yield (
            (b"event: " + str(event.get("type")).encode() + b"\ndata: " + data + b"\n\n")
            if named
            else b"data: " + data + b"\n\n"
        )
    if not named:
        yield b"data: [DONE]\n\n"


def recording_app(rec: Recorder) -> Starlette:
    """The upstream's ASGI app."""

    async def record(request: Request) -> Response:
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        rec.received.append(Received(request.method, request.url.path, dict(request.headers), body))
        if request.url.path in rec.failing:
            return JSONResponse(
                {"error": {"message": "down", "type": "server_error"}},
                status_code=rec.failing[request.url.path],
            )
        if isinstance(body, dict) and body.get("stream") is True:
            return StreamingResponse(_sse(request.url.path, rec.events), media_type="text/event-stream")
        if request.url.path in rec.by_path:
            return JSONResponse(rec.by_path[request.url.path], status_code=rec.status)
        return JSONResponse(rec.answers.pop(0) if rec.answers else rec.answer, status_code=rec.status)

    return Starlette(routes=[Route("/{path:path}", record, methods=["GET", "POST"])])


@contextlib.contextmanager
def recording_upstream() -> Iterator[tuple[Recorder, ThreadedServer]]:
    """Run the upstream and point ``OPENAI_*``/``ANTHROPIC_*`` at it (restored afterwards)."""
    rec = Recorder()
    server = ThreadedServer(recording_app(rec))
    server.start()
    wanted = {
        "OPENAI_BASE_URL": f"{server.url}/v1",
        "ANTHROPIC_BASE_URL": server.url,
        "OPENAI_API_KEY": "sk-test-openai",
        "ANTHROPIC_API_KEY": "sk-ant-test",
    }
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    clear_cache()
    try:
        yield rec, server
    finally:
        clear_cache()
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


__all__ = ["Received", "Recorder", "recording_app", "recording_upstream"]
