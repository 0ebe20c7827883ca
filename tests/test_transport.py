"""LeanTransport against small real HTTP servers: keep-alive, a closed idle connection, chunked bodies,
timeouts and refused connections surface as httpx2's errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx2
import pytest

from canaryflow.errors import ValidationFailed
from canaryflow.providers import factory
from canaryflow.providers.transport import LeanTransport
from tests.servers import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return await reader.readexactly(length) if length else b""


class Server:
    def __init__(self, respond: Callable[[bytes, int], bytes], *, close_after: bool = False,
                 delay: float = 0.0) -> None:
        self.respond, self.close_after, self.delay = respond, close_after, delay
        self.connections = 0
        self.port = free_port()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                body = await _read_request(reader)
                await asyncio.sleep(self.delay)
                writer.write(self.respond(body, served))
                served += 1
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


def plain(body: bytes, n: int) -> bytes:
    data = b'{"echo": ' + (body or b"null") + b', "n": ' + str(n).encode() + b"}"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(data)
    return head + data


def chunked(body: bytes, n: int) -> bytes:
    parts = [b"data: one\n\n", b"data: two\n\n", b"data: [DONE]\n\n"]
    out = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    for p in parts:
        out += b"%x\r\n%s\r\n" % (len(p), p)
    return out + b"0\r\n\r\n"


async def test_keep_alive_reuses_one_connection_and_sends_the_body() -> None:
    async with Server(plain) as srv, httpx2.AsyncClient(transport=LeanTransport()) as client:
        for i in range(5):
            r = await client.post(f"http://127.0.0.1:{srv.port}/v1/x", json={"i": i})
            assert r.status_code == 200 and r.json() == {"echo": {"i": i}, "n": i}
        assert srv.connections == 1


async def test_an_idle_connection_the_server_closed_is_replaced() -> None:
    srv = Server(plain, close_after=True)
    async with srv, httpx2.AsyncClient(transport=LeanTransport()) as client:
        for i in range(6):  # back to back: the close may or may not have arrived; either way it succeeds
            r = await client.post(f"http://127.0.0.1:{srv.port}/", json=i)
            assert r.json()["echo"] == i
            if i >= 3:
                await asyncio.sleep(0.05)  # the close has arrived before the next request
        assert srv.connections == 6


async def test_a_chunked_stream_is_read_chunk_by_chunk_then_the_connection_is_reused() -> None:
    async with Server(chunked) as srv, httpx2.AsyncClient(transport=LeanTransport()) as client:
        for _ in range(2):
            async with client.stream("POST", f"http://127.0.0.1:{srv.port}/", json={}) as r:
                lines = [line async for line in r.aiter_lines() if line]
            assert lines == ["data: one", "data: two", "data: [DONE]"]
        assert srv.connections == 1


async def test_timeouts_and_refused_connections_are_httpx_errors() -> None:
    async with Server(plain, delay=2.0) as srv, httpx2.AsyncClient(transport=LeanTransport()) as client:
        with pytest.raises(httpx2.ReadTimeout):
            await client.post(f"http://127.0.0.1:{srv.port}/", json={}, timeout=0.2)
        with pytest.raises(httpx2.ConnectError):
            await client.post(f"http://127.0.0.1:{free_port()}/", json={})


@pytest.mark.parametrize(("mode", "base_url", "proxy", "lean"), [
    (None, "http://127.0.0.1:8091/v1", None, True),          # plain HTTP sidecar / simulator
    (None, "https://api.openai.com/v1", None, False),        # the providers' own TLS endpoints
    (None, None, None, False),                               # no base URL: the official (HTTPS) one
    ("lean", "https://api.openai.com/v1", None, True),
    ("httpx", "http://127.0.0.1:8091/v1", None, False),
    (None, "http://127.0.0.1:8091/v1", "http://proxy:3128", False),
])
def test_the_transport_is_chosen_per_endpoint(monkeypatch: pytest.MonkeyPatch, mode: str | None,
                                              base_url: str | None, proxy: str | None, lean: bool) -> None:
    for var in ("CANARYFLOW_PROVIDER_TRANSPORT", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY",
                "https_proxy", "http_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    if mode:
        monkeypatch.setenv("CANARYFLOW_PROVIDER_TRANSPORT", mode)
    if proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy)
    assert factory._use_lean(base_url) is lean


def test_an_unknown_transport_mode_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARYFLOW_PROVIDER_TRANSPORT", "turbo")
    with pytest.raises(ValidationFailed, match="CANARYFLOW_PROVIDER_TRANSPORT"):
        factory._use_lean("http://127.0.0.1:1/v1")
