"""The HTTP/1.1 client core and its pool against raw loopback servers: framing, errors, TLS, connection policy."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from labkit.errors import LabkitError, WireError
from labkit.wire.addresses import AddressPolicy
from labkit.wire.errors import AddressRefused, ConnectError, InvalidURL, PoolTimeout, ReadError, ReadTimeout, RemoteProtocolError
from labkit.wire.httpclient import Origin, connect, parse_url, render_request
from labkit.wire.metering import WireCounter
from labkit.wire.pool import HttpClient
from tests.helpers.loopback import Handler, raw_server, read_request

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
LAST = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"


@asynccontextmanager
async def server(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[tuple[int, list[int]]]:
    """A raw server on 127.0.0.1: yields (port, one entry per accepted connection)."""
    async with raw_server(handler, tls) as srv:
        yield srv.port, srv.accepted


def answering(answer: bytes = OK) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await read_request(reader)
            writer.write(answer)
            await writer.drain()
            if b"Connection: close" in request:
                return

    return handler


def test_every_failure_is_one_family() -> None:
    for kind in (InvalidURL, ConnectError, AddressRefused, PoolTimeout, ReadTimeout, RemoteProtocolError, ReadError):
        assert issubclass(kind, WireError) and issubclass(kind, LabkitError)
    assert issubclass(InvalidURL, ValueError)


def test_urls_and_requests_render_as_sent() -> None:
    t = parse_url("https://Example.org/a b?q=é")
    assert t.origin == Origin("https", "example.org", 443)
    assert t.path == b"/a%20b?q=%C3%A9" and t.host == b"Example.org"
    assert parse_url("http://[::1]:8080").origin == Origin("http", "::1", 8080) and parse_url("http://h").path == b"/"
    for bad in ("ftp://h/", "http:///x", "http://h:99999/", "not a url"):
        with pytest.raises(InvalidURL):
            parse_url(bad)
    assert render_request("GET", b"/e", b"h:1") == b"GET /e HTTP/1.1\r\nHost: h:1\r\n\r\n"
    assert render_request("POST", b"/w", b"h", [("a", "1")], b"{}") == b"POST /w HTTP/1.1\r\nHost: h\r\na: 1\r\nContent-Length: 2\r\n\r\n{}"


async def test_framings_and_counts_on_one_connection() -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop",
    ]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            await read_request(reader)
            writer.write(answer)
            await writer.drain()
        await read_request(reader)
        writer.write(LAST)  # a body delimited by closing the connection
        await writer.drain()

    counter = WireCounter()
    async with server(handler) as (port, accepted):
        conn = await connect(Origin("http", "127.0.0.1", port), counter)
        request = render_request("GET", b"/", b"h")
        got = [await conn.exchange(request) for _ in range(4)]
        assert [(r.status_code, r.content) for r in got] == [(200, b"hello"), (304, b""), (404, b"nop"), (200, b"until the end")]
        assert got[1].headers["etag"] == "x" and got[1].headers.raw == [(b"ETag", b"x")]
        assert conn.closed
        assert len(accepted) == 1 and counter.connections == 1
        assert counter.bytes_out == 4 * len(request) == sum(r.bytes_sent for r in got)
        assert counter.bytes_in == sum(r.bytes_received for r in got) == sum(map(len, answers)) + len(LAST)


async def test_malformed_closed_cut_and_silent_servers() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    async def rude(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    request = render_request("GET", b"/", b"h")
    for handler, kind in ((garbage, RemoteProtocolError), (rude, RemoteProtocolError), (cut, ReadError), (silent, ReadTimeout)):
        async with server(handler) as (port, _):
            conn = await connect(Origin("http", "127.0.0.1", port), WireCounter())
            with pytest.raises(kind):
                await conn.exchange(request, asyncio.get_running_loop().time() + 0.2)
            assert conn.closed, kind  # a failed exchange never leaves its connection for reuse


async def test_refused_and_policy_refused_connections() -> None:
    async with server(answering()) as (port, accepted):
        with pytest.raises(AddressRefused, match="SSRF guard"):
            await connect(Origin("http", "127.0.0.1", port), WireCounter(), policy=AddressPolicy())
        assert accepted == []  # refused before connecting
        conn = await connect(Origin("http", "127.0.0.1", port), WireCounter(), policy=AddressPolicy(("127.0.0.0/8",)))
        assert (await conn.exchange(render_request("GET", b"/", b"h"))).status_code == 200
        conn.close()
    with pytest.raises(ConnectError, match="cannot connect"):
        await connect(Origin("http", "127.0.0.1", port), WireCounter())


async def test_a_connection_from_a_source_address_comes_from_it() -> None:
    async with server(answering()) as (port, accepted):
        conn = await connect(Origin("http", "127.0.0.1", port), WireCounter(), source="127.0.0.9")
        assert conn.transport is not None and conn.transport.get_extra_info("sockname")[0] == "127.0.0.9"
        assert (await conn.exchange(render_request("GET", b"/", b"h"))).status_code == 200
        conn.close()
        plain = await connect(Origin("http", "127.0.0.1", port), WireCounter())  # without one, the kernel's choice
        assert plain.transport is not None and plain.transport.get_extra_info("sockname")[0] == "127.0.0.1"
        plain.close()
        assert len(accepted) == 2


@pytest.fixture(scope="module")
def lab_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    """A server context with a leaf for 127.0.0.1 and the CA file a client must trust."""
    import trustme  # a runtime dependency of labkit

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(served)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return served, ca_file


async def test_tls_with_a_ca_file_and_refused_without_it(lab_tls: tuple[ssl.SSLContext, Path]) -> None:
    served, ca_file = lab_tls
    async with server(answering(), tls=served) as (port, accepted):
        url = f"https://127.0.0.1:{port}/hook"
        async with HttpClient(WireCounter(), verify=str(ca_file)) as client:
            assert (await client.post(url, content=b"{}", headers={})).content == b"ok"
            assert (await client.post(url, content=b"{}", headers={})).content == b"ok"
        assert len(accepted) == 1
        async with HttpClient(WireCounter()) as untrusting:
            with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.post(url, content=b"{}", headers={})


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_connection_policy_new_opens_one_connection_per_request_and_reuse_one(
    scheme: str, lab_tls: tuple[ssl.SSLContext, Path]
) -> None:
    served, ca_file = lab_tls
    async with server(answering(), tls=served if scheme == "https" else None) as (port, accepted):
        url = f"{scheme}://127.0.0.1:{port}/hook"
        reuse, new = WireCounter(), WireCounter()
        async with HttpClient(reuse, verify=str(ca_file)) as client:
            for _ in range(5):
                assert (await client.post(url, content=b"{}", headers={})).status_code == 200
            assert client.open_connections == 1
        assert len(accepted) == 1 and reuse.connections == 1
        async with HttpClient(new, verify=str(ca_file), connection_policy="new") as client:
            for _ in range(5):
                assert (await client.post(url, content=b"{}", headers={})).status_code == 200
            assert client.open_connections == 0  # each one closed after its response
        assert len(accepted) == 1 + 5 and new.connections == 5
        assert reuse.bytes_out - new.bytes_out == 5 * (len("keep-alive") - len("close"))  # same requests otherwise


async def test_the_pool_waits_for_a_free_connection_until_the_deadline() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            await asyncio.sleep(0.3)
            writer.write(OK)
            await writer.drain()

    async with server(slow) as (port, accepted), HttpClient(WireCounter(), concurrency=1) as client:
        url = f"http://127.0.0.1:{port}/"
        first = asyncio.create_task(client.post(url, content=b"", headers={}))
        await asyncio.sleep(0.05)
        with pytest.raises(PoolTimeout):
            await client.post(url, content=b"", headers={}, timeout=0.1)
        assert (await first).status_code == 200
        assert len(accepted) == 1


def test_a_bad_connection_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="connection_policy"):
        HttpClient(WireCounter(), connection_policy="sometimes")  # type: ignore[arg-type]
