"""The poller's lean HTTP/1.1 client: keep-alive, reconnects, deadlines, malformed servers."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from labkit.consumers.rawhttp import Connection
from labkit.errors import WireError
from labkit.wire.metering import WireCounter

from .conftest import API_KEY, Feed, ServerThread, feed_app

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def tcp_server(handler: Handler) -> AsyncIterator[str]:
    """A raw TCP server on loopback that answers however the test needs."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


async def test_keep_alive_headers_and_byte_counts() -> None:
    feed = Feed()
    feed.publish(3)
    with ServerThread(feed_app(feed)) as server:
        counter = WireCounter()
        conn = Connection(server.url, counter, headers={"authorization": f"Bearer {API_KEY}"})
        first = await conn.get("/events?after=0&limit=2")
        assert first.status_code == 200
        assert b'"has_more":true' in first.content
        etag = first.headers["etag"]
        again = await conn.get("/events?after=3&limit=2", headers={"if-none-match": etag})
        assert again.status_code == 304 and again.content == b""
        missing = await conn.get("/events/99")
        assert missing.status_code == 404
        await conn.aclose()
        assert counter.connections == 1  # one kept-alive connection for all three requests
        assert counter.bytes_in > len(first.content) and counter.bytes_out > 0


async def test_https_with_a_lab_ca(tmp_path: Path) -> None:
    import trustme  # a runtime dependency of labkit

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    feed = Feed()
    feed.publish(1)
    with ServerThread(feed_app(feed), ssl_certfile=str(cert), ssl_keyfile=str(key)) as server:
        assert server.url.startswith("https://")
        trusted = ssl.create_default_context()
        ca.configure_trust(trusted)
        counter = WireCounter()
        conn = Connection(server.url, counter, headers={"authorization": f"Bearer {API_KEY}"}, ssl_context=trusted)
        assert (await conn.get("/events?after=0")).status_code == 200
        assert (await conn.get("/events?after=1")).status_code == 200
        await conn.aclose()
        assert counter.connections == 1
        with pytest.raises(WireError):  # an unknown CA is refused
            await Connection(server.url, WireCounter(), ssl_context=ssl.create_default_context()).get("/healthz")


async def test_chunked_body_and_a_closed_keep_alive_connection_is_replaced() -> None:
    served = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await read_request(reader)
        served += 1
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        await writer.drain()
        writer.close()  # keep-alive promised, then the server hangs up (as an idle timeout would)

    async with tcp_server(handler) as url:
        counter = WireCounter()
        conn = Connection(url, counter)
        assert (await conn.get("/a")).content == b"hello world"
        await asyncio.sleep(0.05)
        assert (await conn.get("/b")).content == b"hello world"
        await conn.aclose()
    assert served == 2 and counter.connections == 2


async def test_errors_are_wire_errors() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async with tcp_server(garbage) as url:
        with pytest.raises(WireError):
            await Connection(url, WireCounter()).get("/")
    async with tcp_server(silent) as url:
        with pytest.raises(WireError, match="no response"):
            await Connection(url, WireCounter(), timeout=0.1).get("/")
    with pytest.raises(WireError, match="cannot connect"):
        await Connection("http://127.0.0.1:9", WireCounter()).get("/")
    with pytest.raises(ValueError):
        Connection("ftp://example.org", WireCounter())


async def test_cancelling_a_request_drops_its_connection() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            await asyncio.sleep(0.3)
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()

    async with tcp_server(slow) as url:
        counter = WireCounter()
        conn = Connection(url, counter)
        task = asyncio.create_task(conn.get("/"))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # A late answer to the cancelled request must not be taken for the next one's.
        assert (await conn.get("/")).status_code == 204
        await conn.aclose()
        assert counter.connections == 2
