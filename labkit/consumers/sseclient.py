"""The stream fleet's Server-Sent Events client: the HTTP core's streaming mode and the one SSE decoder.

Why not httpx: a held httpx stream costs a client, a pool, an httpcore
connection and several objects and buffers per stream, which caps how many
streams one process can hold. Here a stream is one ``HttpConnection`` of
labkit's HTTP core (``labkit.wire.httpclient``) in streaming mode: the
response (status, headers, chunked body) is parsed by ``httptools``, each
piece of a 200's body goes to an ``SseDecoder`` (``labkit.wire.sse``), and
each event it completes to the caller's ``on_event(id, type, data,
received_ns)``. Bytes in and out and connections are counted by the core in
a ``WireCounter`` where they cross the socket; the connection's future says
how the stream ended (its status and a reason).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Iterable

from labkit.wire.httpclient import HttpConnection, StreamEnd, Target, connect, header_lines, render_request
from labkit.wire.metering import WireCounter
from labkit.wire.sse import SseDecoder

# (id, event type, data, received_ns); the id is "" when the stream has sent none
OnEvent = Callable[[str, str, str, int], None]

# what every stream request says after its host line, before the caller's headers
STREAM_HEADERS = (("accept", "text/event-stream"), ("cache-control", "no-cache"))


def sse_request(target: Target, path: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """The GET that opens a stream: ``path`` (with its query) under the base URL ``target``."""
    lines = header_lines((("host", target.host.decode("ascii")), *STREAM_HEADERS, *headers))
    return render_request("GET", target.prefix + path.encode("latin-1"), None, lines)


def body_reader(on_event: OnEvent, decoder: SseDecoder | None = None) -> Callable[[bytes], None]:
    """The body sink of one stream: pieces into the decoder, events out to ``on_event``, one clock read per piece."""
    feed = (decoder if decoder is not None else SseDecoder()).feed

    def on_body(body: bytes) -> None:
        events = feed(body)
        if events:
            received_ns = time.time_ns()  # labkit.wire.metering.now_ns's clock, without its call
            for event_id, event_type, data in events:
                on_event(event_id, event_type, data, received_ns)

    return on_body


async def open_sse(
    target: Target,
    request: bytes,
    counter: WireCounter,
    on_event: OnEvent,
    *,
    tls: ssl.SSLContext | None = None,
    timeout: float | None = None,
) -> tuple[HttpConnection, asyncio.Future[StreamEnd]]:
    """Connect within ``timeout`` and send ``request``; the future says when and why the stream ended.

    Raises the core's ``ConnectError`` or ``ConnectTimeout`` when no connection is made.
    """
    deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
    conn = await connect(target.origin, counter, tls=tls, deadline=deadline)
    return conn, conn.stream(request, body_reader(on_event))
