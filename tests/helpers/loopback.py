"""Servers on 127.0.0.1 for tests: any ASGI app under a real uvicorn in a thread, or a raw asyncio server.

``ServerThread`` is the one way a test serves an app (a fake feed, a webhook
receiver, the provider, a bench target) in its own process. ``raw_server`` is
for client tests that write the bytes they answer: it counts accepted
connections and, when asked, keeps the raw bytes of every request it read.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Self

import uvicorn

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


def bound_socket(host: str = "127.0.0.1") -> socket.socket:
    """A socket bound to a free port on ``host`` but not listening yet: connections are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


class ServerThread:
    """An ASGI app served by uvicorn on a loopback socket, in a daemon thread.

    The socket is bound when the object is made, so ``url`` is known (and
    refuses connections) before ``start``. Extra keyword arguments go to
    ``uvicorn.Config`` (``ssl_certfile``/``ssl_keyfile`` make the URL https).
    Use it as a context manager, or ``start``/``stop``.
    """

    def __init__(self, app: Any, *, sock: socket.socket | None = None, lifespan: str = "on", **config: Any) -> None:
        self.sock = sock or bound_socket()
        self.scheme = "https" if config.get("ssl_certfile") else "http"
        options: dict[str, Any] = {"log_level": "warning", "access_log": False, "timeout_graceful_shutdown": 1, **config}
        self.server = uvicorn.Server(uvicorn.Config(app, lifespan=lifespan, **options))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Start serving; raise if uvicorn has not started within START_TIMEOUT_S (a guard against hangs)."""
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit, wait for the thread, release the socket."""
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(STOP_TIMEOUT_S)
        self.sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
