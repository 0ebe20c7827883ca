"""A lean HTTP/1.1 keep-alive transport for the providers' official clients.

``openai.AsyncOpenAI`` and ``anthropic.AsyncAnthropic`` still build, authenticate and send every request
through their own ``httpx2.AsyncClient``; this transport only moves the bytes. Compared with the default
httpcore/anyio stack it writes the request head and body in one ``write`` (one segment instead of two),
parses the response head in one pass and keeps idle connections per host — about 0.5 ms less per request on
loopback, most of the gateway's added latency.

Plain HTTP and HTTPS (``ssl`` context from certifi when installed), HTTP/1.1 only, no proxies: the factory
uses the default transport when proxy variables are set or ``CANARYFLOW_PROVIDER_TRANSPORT=httpx``.
Timeouts and socket errors surface as httpx2's exceptions, so the clients map them as usual
(``APITimeoutError``, ``APIConnectionError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2

_Key = tuple[str, str, int]
_CHUNK = 65536


def _ssl_context() -> ssl.SSLContext:
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi comes with httpx2
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


class _Conn:
    __slots__ = ("idle_since", "loop", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0
        self.loop = asyncio.get_running_loop()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class _Body(httpx2.AsyncByteStream):
    """A response body; gives its connection back to the pool once read to the end (keep-alive)."""

    def __init__(self, transport: LeanTransport, key: _Key, conn: _Conn, length: int | None, chunked: bool,
                 reusable: bool, read_timeout: float | None) -> None:
        self._transport = transport
        self._key = key
        self._conn = conn
        self._length = length
        self._chunked = chunked
        self._reusable = reusable
        self._timeout = read_timeout
        self._done = False
        self._closed = False

    async def _read(self, n: int = _CHUNK, *, exactly: bool = False, line: bool = False) -> bytes:
        """One read under the read timeout (per read, as httpx does; never across a ``yield``)."""
        reader = self._conn.reader
        try:
            async with asyncio.timeout(self._timeout):
                if line:
                    return await reader.readline()
                return await (reader.readexactly(n) if exactly else reader.read(n))
        except TimeoutError as exc:
            self._reusable = False
            raise httpx2.ReadTimeout("timed out reading the response body") from exc
        except (OSError, asyncio.IncompleteReadError) as exc:
            self._reusable = False
            raise httpx2.ReadError(str(exc) or type(exc).__name__) from exc

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._chunked:
            while True:
                size_line = await self._read(line=True)
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError as exc:
                    self._reusable = False
                    raise httpx2.RemoteProtocolError(f"bad chunk size {size_line[:40]!r}") from exc
                if size == 0:
                    while (await self._read(line=True)) not in (b"\r\n", b""):
                        pass  # trailers
                    break
                data = await self._read(size + 2, exactly=True)
                yield data[:-2]
        elif self._length is not None:
            left = self._length
            while left > 0:
                data = await self._read(min(left, _CHUNK))
                if not data:
                    self._reusable = False
                    raise httpx2.RemoteProtocolError("connection closed before the response body ended")
                left -= len(data)
                yield data
        else:
            self._reusable = False
            while data := await self._read():
                yield data
        self._done = True

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._transport._release(self._key, self._conn, self._done and self._reusable)


class LeanTransport(httpx2.AsyncBaseTransport):
    """HTTP/1.1 over asyncio streams with a keep-alive pool (see the module docstring).

    Args:
        max_connections: connections open at most (requests beyond wait for one).
        max_keepalive: idle connections kept per host.
        keepalive_expiry: seconds an idle connection is kept.
    """

    def __init__(self, *, max_connections: int = 1000, max_keepalive: int = 256,
                 keepalive_expiry: float = 30.0) -> None:
        self._idle: dict[_Key, list[_Conn]] = {}
        self._max_connections = max_connections
        self._slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
        self._max_keepalive = max_keepalive
        self._expiry = keepalive_expiry
        self._ssl: ssl.SSLContext | None = None

    async def _connect(self, key: _Key, timeout: float | None) -> _Conn:
        scheme, host, port = key
        ctx = None
        if scheme == "https":
            ctx = self._ssl = self._ssl or _ssl_context()
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port, ssl=ctx,
                                                               server_hostname=host if ctx else None)
        except TimeoutError as exc:
            raise httpx2.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc
        except OSError as exc:
            raise httpx2.ConnectError(str(exc) or type(exc).__name__) from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Conn(reader, writer)

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        slots = self._slots.get(loop)
        if slots is None:  # one per event loop (a cached client may outlive a test's loop)
            for old in [lp for lp in self._slots if lp.is_closed()]:
                del self._slots[old]
            slots = self._slots[loop] = asyncio.Semaphore(self._max_connections)
        return slots

    def _checkout(self, key: _Key) -> _Conn | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        loop = asyncio.get_running_loop()
        while idle:
            conn = idle.pop()
            if conn.loop is loop and now - conn.idle_since < self._expiry and not conn.reader.at_eof() \
                    and not conn.writer.is_closing():
                return conn
            if not conn.loop.is_closed():
                conn.close()
        return None

    def _release(self, key: _Key, conn: _Conn, reusable: bool) -> None:
        slots = self._slots.get(conn.loop)
        if slots is not None:
            slots.release()
        if reusable and not conn.reader.at_eof() and not conn.writer.is_closing():
            idle = self._idle.setdefault(key, [])
            if len(idle) < self._max_keepalive:
                conn.idle_since = time.monotonic()
                idle.append(conn)
                return
        conn.close()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request`` and return the response with its body still to be read."""
        url = request.url
        scheme = url.scheme
        port = url.port or (443 if scheme == "https" else 80)
        key: _Key = (scheme, url.host, port)
        timeouts: dict[str, Any] = request.extensions.get("timeout") or {}
        body = await request.aread()
        lines = [request.method.encode(), b" ", url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            lines += (name, b": ", value, b"\r\n")
        lines.append(b"\r\n")
        payload = b"".join(lines) + body
        slots = self._semaphore()
        if slots.locked():  # every connection busy: wait up to the pool timeout
            try:
                async with asyncio.timeout(timeouts.get("pool")):
                    await slots.acquire()
            except TimeoutError as exc:
                raise httpx2.PoolTimeout("no connection available") from exc
        else:
            await slots.acquire()  # free: returns at once (no timer to arm and cancel)
        conn: _Conn | None = None
        try:
            conn = self._checkout(key)
            reused = conn is not None
            while True:
                if conn is None:
                    conn = await self._connect(key, timeouts.get("connect"))
                try:
                    head = await self._exchange(conn, payload, timeouts)
                except _Stale:
                    conn.close()
                    if not reused:
                        raise httpx2.RemoteProtocolError("server closed the connection without a response") \
                            from None
                    conn, reused = None, False  # an idle connection the server had closed: once more, fresh
                    continue
                break
        except BaseException:
            slots.release()
            if conn is not None:
                conn.close()
            raise
        return self._response(key, conn, head, request, timeouts.get("read"))

    async def _exchange(self, conn: _Conn, payload: bytes, timeouts: dict[str, Any]) -> bytes:
        try:
            conn.writer.write(payload)
            async with asyncio.timeout(timeouts.get("read")):
                return await conn.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _Stale from exc
            raise httpx2.RemoteProtocolError("incomplete response head") from exc
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise _Stale from exc
        except TimeoutError as exc:
            raise httpx2.ReadTimeout("timed out waiting for the response") from exc
        except (OSError, asyncio.LimitOverrunError) as exc:
            raise httpx2.ReadError(str(exc) or type(exc).__name__) from exc

    def _response(self, key: _Key, conn: _Conn, head: bytes, request: httpx2.Request,
                  read_timeout: float | None) -> httpx2.Response:
        status_line, _, rest = head[:-4].partition(b"\r\n")
        parts = status_line.split(b" ", 2)
        try:
            status = int(parts[1])
        except (IndexError, ValueError) as exc:
            self._release(key, conn, False)
            raise httpx2.RemoteProtocolError(f"bad status line {status_line[:80]!r}") from exc
        headers: list[tuple[bytes, bytes]] = []
        length: int | None = None
        chunked = False
        reusable = True
        for line in rest.split(b"\r\n") if rest else ():
            name, _, value = line.partition(b":")
            value = value.strip()
            headers.append((name, value))
            lower = name.lower()
            if lower == b"content-length":
                length = int(value)
            elif lower == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lower == b"connection":
                reusable = b"close" not in value.lower()
        if chunked:
            length = None
        elif length is None and (status in (204, 304) or 100 <= status < 200 or request.method == "HEAD"):
            length = 0
        stream = _Body(self, key, conn, length, chunked, reusable, read_timeout)
        return httpx2.Response(status, headers=headers, stream=stream, request=request,
                               extensions={"http_version": b"HTTP/1.1",
                                           "reason_phrase": parts[2] if len(parts) > 2 else b""})

    async def aclose(self) -> None:
        """Close every idle connection."""
        for idle in self._idle.values():
            for conn in idle:
                if not conn.loop.is_closed():
                    conn.close()
        self._idle.clear()


class _Stale(Exception):
    """A reused connection the server had already closed (no response byte read)."""


__all__ = ["LeanTransport"]
