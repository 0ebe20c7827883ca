"""A minimal HTTP/1.1 keep-alive client over asyncio streams, for load generators that must cost less than
what they measure (httpx's connection pool slows down sharply at high concurrency: ≈60 req/s at 32 in
flight against the bare simulator). Used by ``benchmarks/bench_gateway.py`` and the gateway load test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from urllib.parse import urlsplit


class Conn:
    """One keep-alive connection posting JSON to one URL; reconnects after the server closes it."""

    def __init__(self, url: str, headers: Mapping[str, str] | None = None) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
        self.head = (f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                     "Content-Type: application/json\r\n"
                     + "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()))
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def request(self, body: Mapping[str, object]) -> bytes:
        """The raw bytes of a POST of ``body`` (build once, send many times)."""
        data = json.dumps(body).encode()
        return f"{self.head}Content-Length: {len(data)}\r\n\r\n".encode() + data

    async def post(self, raw: bytes) -> int:
        """Send one request made by :meth:`request`, read the whole answer; returns its status.

        Raises:
            ConnectionError: the connection broke before a whole answer arrived (``asyncio`` errors).
        """
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        reader = self.reader
        try:
            self.writer.write(raw)
            line = await reader.readline()
            if not line:
                raise ConnectionResetError("the server closed the connection before answering")
            status = int(line.split()[1])
            length, chunked, close = 0, False, False
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "transfer-encoding":
                    chunked = "chunked" in value
                elif name == "connection":
                    close = "close" in value.lower()
            if chunked:
                while True:
                    size = int((await reader.readline()).strip(), 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            elif length:
                await reader.readexactly(length)
        except (asyncio.IncompleteReadError, OSError) as exc:
            self.close()
            raise ConnectionResetError(f"the connection broke mid-answer: {exc}") from exc
        if close:
            self.close()
        return status

    def close(self) -> None:
        """Close the connection (the next post opens a new one)."""
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


__all__ = ["Conn"]
