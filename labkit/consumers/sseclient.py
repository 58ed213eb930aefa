"""The stream fleet's Server-Sent Events client: the HTTP core's streaming mode and the one SSE decoder.

Why not httpx: a held httpx stream costs a client, a pool, an httpcore
connection and several objects and buffers per stream, which caps how many
streams one process can hold. Here a stream is one ``HttpConnection`` of
labkit's HTTP core (``labkit.wire.httpclient``) in streaming mode: the
response (status, headers, chunked body) is parsed by ``httptools``, each
piece of a 200's body goes straight into an ``SseDecoder`` (``labkit.wire.sse``;
its ``push`` is the response's body sink, no wrapper), which calls the
caller's ``on_event(id, type, data)`` for each event it completes (the caller
reads the clock: one read per event, as a piece usually holds one). Bytes in and out and connections are counted by the core in
a ``WireCounter`` where they cross the socket; the connection's future says
how the stream ended (its status and a reason).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterable

from labkit.wire.httpclient import HttpConnection, StreamEnd, Target, connect, header_lines, render_request
from labkit.wire.metering import WireCounter
from labkit.wire.sse import OnEvent, SseDecoder

# what every stream request says after its host line, before the caller's headers
STREAM_HEADERS = (("accept", "text/event-stream"), ("cache-control", "no-cache"))


def sse_request(target: Target, path: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """The GET that opens a stream: ``path`` (with its query) under the base URL ``target``."""
    lines = header_lines((("host", target.host.decode("ascii")), *STREAM_HEADERS, *headers))
    return render_request("GET", target.prefix + path.encode("latin-1"), None, lines)


def body_reader(on_event: OnEvent, decoder: SseDecoder | None = None) -> Callable[[bytes], None]:
    """The body sink of one stream: the decoder's ``push``, its events to ``on_event(id, type, data)``."""
    if decoder is None:
        return SseDecoder(on_event=on_event).push
    decoder.on_event = on_event
    return decoder.push


async def open_sse(
    target: Target,
    request: bytes,
    counter: WireCounter,
    on_event: OnEvent,
    *,
    tls: ssl.SSLContext | None = None,
    timeout: float | None = None,
    source: str | None = None,
) -> tuple[HttpConnection, asyncio.Future[StreamEnd]]:
    """Connect within ``timeout`` (from the loopback address ``source`` when given) and send ``request``; the future says when and why the stream ended.

    Raises the core's ``ConnectError`` or ``ConnectTimeout`` when no connection is made.
    """
    deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
    conn = await connect(target.origin, counter, tls=tls, deadline=deadline, source=source)
    return conn, conn.stream(request, body_reader(on_event))
