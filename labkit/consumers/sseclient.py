"""A lean Server-Sent Events reader: one connection, HTTP parsed by httptools, events by the SSE rules.

Why not httpx: a held httpx stream costs a client, a pool, an httpcore
connection and several objects and buffers per stream, which caps how many
streams one process can hold. This reader is one ``asyncio.Protocol`` per
connection: the response (status, headers, chunked body) is parsed by
``httptools``, the parser uvicorn uses, and the body by a small SSE parser
(fields ``id``, ``event``, ``data``, ``retry``; comments; ``\\n``, ``\\r\\n``
or ``\\r`` line ends). Bytes in and out and connections are counted in a
``WireCounter`` where they cross the socket.

The caller gets each complete event through ``on_event(id, type, data,
received_ns)`` and learns how the stream ended from ``done`` (a future set
when the connection is gone, with the status and any reason).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

from labkit.wire.metering import WireCounter, now_ns

# (id or None, event type, data, received_ns)
OnEvent = Callable[[str | None, str, str, int], None]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where the streams go: host, port, TLS, and the path prefix of the base URL."""

    host: str
    port: int
    tls: ssl.SSLContext | None
    prefix: str
    netloc: str

    @classmethod
    def parse(cls, base_url: str, ssl_context: ssl.SSLContext | None = None) -> Origin:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) base URL: {base_url!r}")
        tls = (ssl_context or ssl.create_default_context()) if url.scheme == "https" else None
        port = url.port or (443 if url.scheme == "https" else 80)
        return cls(url.hostname, port, tls, url.path.rstrip("/"), url.netloc.rsplit("@", 1)[-1])


@dataclass(slots=True)
class Ended:
    """How one connection ended: the HTTP status (0 before any), and a reason."""

    status: int
    reason: str
    got_bytes: bool


class SseProtocol(asyncio.Protocol):
    """One SSE connection: writes the request, parses the response, hands out events."""

    __slots__ = (
        "_buf",
        "_data",
        "_event",
        "_id",
        "counter",
        "done",
        "last_byte",
        "on_event",
        "on_retry",
        "parser",
        "request",
        "status",
        "transport",
    )

    def __init__(self, request: bytes, counter: WireCounter, on_event: OnEvent, on_retry: Callable[[int], None] | None = None) -> None:
        self.request = request
        self.counter = counter
        self.on_event = on_event
        self.on_retry = on_retry
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[Ended] = asyncio.get_running_loop().create_future()
        self.status = 0
        self.last_byte = 0.0  # loop time of the last byte, for the idle check
        self._buf = b""
        self._id: str | None = None
        self._event = ""
        self._data: list[str] = []

    # -- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.counter.connections += 1
        self.counter.bytes_out += len(self.request)
        self.last_byte = asyncio.get_running_loop().time()
        self.transport.write(self.request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        self.counter.bytes_in += len(data)
        self.last_byte = asyncio.get_running_loop().time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.close(f"malformed response: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(f"connection lost: {exc}" if exc else "closed by the server")

    # -- httptools callbacks --------------------------------------------------------

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if self.status != 200:
            self._buf += body[:1024]  # the error's reason, bounded
            return
        self._feed(body)

    def on_message_complete(self) -> None:
        reason = "stream ended by the server" if self.status == 200 else self._buf.decode("utf-8", "replace")[:200]
        self.close(reason)

    # -- SSE ------------------------------------------------------------------------

    def _feed(self, body: bytes) -> None:
        buf = self._buf + body if self._buf else body
        if b"\r" in buf:
            if buf.endswith(b"\r"):  # a \r\n may be split across chunks: wait for the next byte
                self._buf = buf
                return
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = buf.rfind(b"\n")
        if end < 0:
            self._buf = buf
            return
        self._buf = buf[end + 1 :]
        self._lines(buf[:end].decode("utf-8", "replace").split("\n"), now_ns())

    def _lines(self, lines: list[str], received_ns: int) -> None:
        """The SSE field rules over complete lines, in one loop (thousands of streams parse here)."""
        data, event_id, event, on_event = self._data, self._id, self._event, self.on_event
        for line in lines:
            if not line:  # a blank line ends an event
                if data:
                    on_event(event_id, event or "message", "\n".join(data), received_ns)
                    data = []
                event = ""
                continue
            if line[0] == ":":  # a comment (the heartbeat)
                continue
            name, _, value = line.partition(":")
            if value[:1] == " ":
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "id":
                if "\0" not in value:
                    event_id = value
            elif name == "event":
                event = value
            elif name == "retry" and value.isdigit() and self.on_retry is not None:
                self.on_retry(int(value))
        self._data, self._id, self._event = data, event_id, event

    # -- ending ---------------------------------------------------------------------

    def close(self, reason: str) -> None:
        self._end(reason)
        if self.transport is not None:
            self.transport.close()

    def _end(self, reason: str) -> None:
        if not self.done.done():
            self.done.set_result(Ended(self.status, reason, self.last_byte > 0 and self.status != 0))


def sse_request(origin: Origin, path: str, headers: dict[str, str]) -> bytes:
    """The GET that opens a stream (``path`` includes the query)."""
    lines = {"host": origin.netloc, "accept": "text/event-stream", "cache-control": "no-cache", **headers}
    head = "".join(f"{k}: {v}\r\n" for k, v in lines.items())
    return f"GET {origin.prefix}{path} HTTP/1.1\r\n{head}\r\n".encode("latin-1")


async def open_sse(
    origin: Origin, request: bytes, counter: WireCounter, on_event: OnEvent, on_retry: Callable[[int], None] | None = None
) -> SseProtocol:
    """Connect and send ``request``; the returned protocol's ``done`` says when and why it ended."""
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(
        lambda: SseProtocol(request, counter, on_event, on_retry),
        origin.host,
        origin.port,
        ssl=origin.tls,
        server_hostname=origin.host if origin.tls else None,
    )
    return proto
