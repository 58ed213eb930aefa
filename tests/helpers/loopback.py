"""A raw asyncio HTTP server on 127.0.0.1 for client tests: the test writes the bytes it answers.

Shared by the wire client's and the dispatcher's tests, so both see the same
server: it counts accepted connections and, when asked, keeps the raw bytes of
every request it read (head and body).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class RawServer:
    """A running raw server: its port, one entry per accepted connection, and the requests read."""

    port: int
    accepted: list[int] = field(default_factory=list)
    seen: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Recorder:
    """A StreamReader stand-in that keeps what ``read_request`` reads: a head starts a request, a body ends it."""

    def __init__(self, reader: asyncio.StreamReader, seen: list[bytes]) -> None:
        self.reader = reader
        self.seen = seen

    async def readuntil(self, sep: bytes) -> bytes:
        data = await self.reader.readuntil(sep)
        self.seen.append(data)
        return data

    async def readexactly(self, n: int) -> bytes:
        data = await self.reader.readexactly(n)
        self.seen[-1] += data
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.reader, name)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One HTTP/1.1 request: its head and a Content-Length body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


@asynccontextmanager
async def raw_server(handler: Handler, tls: ssl.SSLContext | None = None, *, record: bool = False) -> AsyncIterator[RawServer]:
    """Serve ``handler`` on 127.0.0.1 (TLS with ``tls``); a client hanging up is not an error."""
    state = RawServer(port=0)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.accepted.append(1)
        try:
            await handler(Recorder(reader, state.seen) if record else reader, writer)  # type: ignore[arg-type]
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    state.port = srv.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        srv.close()
        await srv.wait_closed()
