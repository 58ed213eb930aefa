"""The stream fleet's SSE client without a server: the HTTP core's streaming mode feeding the one decoder."""

from __future__ import annotations

import asyncio

from labkit.consumers.sseclient import body_reader, sse_request
from labkit.wire.httpclient import HttpConnection, Origin, StreamEnd, parse_url
from labkit.wire.metering import WireCounter
from labkit.wire.sse import SseDecoder


def test_the_stream_request_is_rendered_as_before() -> None:
    target = parse_url("http://127.0.0.1:8000/base/")
    headers = [("authorization", "Bearer k"), ("user-agent", "labkit-streams"), ("last-event-id", "5")]
    assert sse_request(target, "/stream?after=5&types=a,b", headers) == (
        b"GET /base/stream?after=5&types=a,b HTTP/1.1\r\nhost: 127.0.0.1:8000\r\naccept: text/event-stream\r\n"
        b"cache-control: no-cache\r\nauthorization: Bearer k\r\nuser-agent: labkit-streams\r\nlast-event-id: 5\r\n\r\n"
    )


class _Transport(asyncio.Transport):
    """What a connection writes, without a socket."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _streaming(on_event: object, decoder: SseDecoder | None = None) -> tuple[HttpConnection, asyncio.Future, _Transport]:
    conn = HttpConnection(WireCounter(), Origin("http", "h", 80))
    transport = _Transport()
    conn.connection_made(transport)
    ended = conn.stream(b"GET /stream HTTP/1.1\r\n\r\n", body_reader(on_event, decoder))  # type: ignore[arg-type]
    return conn, ended, transport


async def test_sse_reader_parses_frames_split_anywhere() -> None:
    got: list[tuple] = []
    decoder = SseDecoder()
    conn, ended, transport = _streaming(lambda i, e, d: got.append((i, e, d)), decoder)
    body = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n" + b"".join(
        b"%x\r\n%s\r\n" % (len(c), c)
        for c in [b": hi\nretry: 1500\n\n", b'event: a\r\ndata: {"x"', b":1}\r", b"\nid: 7\r\n\r\n", b"data: 1\ndata: 2\n\n"]
    )
    for i in range(0, len(body), 7):  # feed in awkward 7-byte pieces
        conn.data_received(body[i : i + 7])
    assert decoder.retry_ms == 1500 and decoder.last_event_id == "7"
    assert got == [("7", "a", '{"x":1}'), ("7", "message", "1\n2")]
    assert conn.status == 200 and not ended.done() and transport.sent == [b"GET /stream HTTP/1.1\r\n\r\n"]
    conn.data_received(b"0\r\n\r\n")  # the server ends the response: the stream ends, its connection closes
    assert (await asyncio.wait_for(ended, 1)) == StreamEnd(200, "stream ended by the server") and transport.closed


async def test_sse_reader_reports_a_refusal() -> None:
    got: list[tuple] = []
    conn, ended, _ = _streaming(lambda *a: got.append(a))
    conn.data_received(b'HTTP/1.1 401 Unauthorized\r\ncontent-length: 14\r\n\r\n{"detail":"x"}')
    end = await asyncio.wait_for(ended, 1)
    assert end.status == 401 and end.reason == '{"detail":"x"}' and got == []


async def test_a_stream_cut_or_closed_ends_once_with_its_reason() -> None:
    conn, ended, _ = _streaming(lambda *a: None)
    conn.data_received(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    conn.close("cut by the consumer")
    conn.connection_lost(None)
    assert (await ended) == StreamEnd(200, "cut by the consumer")
    conn, ended, _ = _streaming(lambda *a: None)
    conn.data_received(b"NOT HTTP\r\n\r\n")
    assert (await ended).reason.startswith("malformed response")
