"""The dispatcher's HTTP client (labkit.provider.delivery) against raw loopback servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from labkit.provider.delivery import DeliveryClient
from labkit.wire import errors
from labkit.wire.metering import WireCounter
from tests.helpers.loopback import Handler, raw_server, read_request
from tests.helpers.provider import provider_settings, running, until

LOOPBACK = ("127.0.0.1",)
OK = b"HTTP/1.1 204 No Content\r\nServer: t\r\n\r\n"


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[tuple[str, list[bytes], list[int]]]:
    """A raw HTTP/1.1 server: yields (base URL, requests seen, connections accepted)."""
    async with raw_server(handler, record=True) as srv:
        yield srv.url, srv.seen, srv.accepted


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answer: bytes = OK) -> None:
    while True:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()


async def test_posts_httpx_s_headers_and_reuses_one_connection() -> None:
    counter = WireCounter()
    async with server(keep_answering) as (url, seen, conns), DeliveryClient(counter, allowed_hosts=LOOPBACK) as client:
        sizes = []
        for i in range(3):
            r = await client.post(
                f"{url}/hook/a?x=1", content=b'{"n":%d}' % i, headers={"webhook-id": f"msg_{i}", "content-type": "application/json"}
            )
            assert r.status_code == 204 and r.content == b""
            assert r.headers["server"] == "t" and r.headers.raw == [(b"Server", b"t")]
            sizes.append(r.bytes_sent)
            assert r.bytes_received == len(OK)
    assert len(conns) == 1 and counter.connections == 1
    first = seen[0].split(b"\r\n")
    assert first[0] == b"POST /hook/a?x=1 HTTP/1.1"
    assert [h.split(b":")[0] for h in first[1:8]] == [
        b"Host",
        b"Accept",
        b"Accept-Encoding",
        b"Connection",
        b"webhook-id",
        b"content-type",
        b"Content-Length",
    ]
    assert seen[0].endswith(b'\r\n\r\n{"n":0}')
    assert sizes == [len(s) for s in seen]
    assert counter.bytes_out == sum(sizes) and counter.bytes_in == 3 * len(OK)


async def test_no_answer_is_a_read_timeout_and_the_connection_is_dropped() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async with server(silent) as (url, _, conns), DeliveryClient(WireCounter(), allowed_hosts=LOOPBACK, timeout=0.2) as client:
        with pytest.raises(errors.ReadTimeout):
            await client.post(url + "/", content=b"{}", headers={})
        with pytest.raises(errors.ReadTimeout):
            await client.post(url + "/", content=b"{}", headers={}, timeout=0.1)
        assert len(conns) == 2  # a timed-out connection is never reused
        assert client.open_connections == 0


async def test_refused_and_ssrf_refused_connections_are_connect_errors() -> None:
    async with server(keep_answering) as (url, _, conns):
        port = url.rsplit(":", 1)[1]
    async with DeliveryClient(WireCounter(), allowed_hosts=LOOPBACK) as client:
        with pytest.raises(errors.ConnectError):
            await client.post(f"http://127.0.0.1:{port}/", content=b"", headers={})
    async with server(keep_answering) as (url, _, conns), DeliveryClient(WireCounter()) as strict:
        with pytest.raises(errors.ConnectError, match="SSRF guard"):
            await strict.post(url + "/", content=b"", headers={})
        assert conns == []  # refused before connecting


async def test_a_server_that_closes_without_answering_is_a_protocol_error() -> None:
    async def rude(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with server(rude) as (url, _, _), DeliveryClient(WireCounter(), allowed_hosts=LOOPBACK) as client:
        with pytest.raises(errors.RemoteProtocolError):
            await client.post(url + "/", content=b"{}", headers={})


async def test_a_large_body_is_read_to_the_end_but_capped() -> None:
    big = b"x" * 100_000
    answer = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big)

    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await keep_answering(reader, writer, answer)

    async with server(chatty) as (url, _, conns), DeliveryClient(WireCounter(), allowed_hosts=LOOPBACK, max_response_bytes=1000) as client:
        for _ in range(2):
            r = await client.post(url + "/", content=b"{}", headers={})
            assert r.status_code == 429 and r.headers.get("retry-after") == "7"
            assert r.content == big[:1000] and r.bytes_received == len(answer)
        assert len(conns) == 1  # still kept alive


async def test_connections_are_capped_at_the_concurrency() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            await asyncio.sleep(0.05)
            writer.write(OK)
            await writer.drain()

    async with server(slow) as (url, _, conns), DeliveryClient(WireCounter(), allowed_hosts=LOOPBACK, concurrency=2) as client:
        results = await asyncio.gather(*(client.post(url + "/", content=b"{}", headers={}) for _ in range(6)))
        assert [r.status_code for r in results] == [204] * 6
        assert len(conns) == 2


async def test_bad_urls_are_invalid_url_errors() -> None:
    async with DeliveryClient(WireCounter()) as client:
        with pytest.raises(errors.InvalidURL):
            await client.post("ftp://127.0.0.1/", content=b"", headers={})
        with pytest.raises(errors.InvalidURL):
            await client.post("http://127.0.0.1:99999/", content=b"", headers={})


@pytest.mark.parametrize(("policy", "connections"), [("reuse", 1), ("new", 3)])
async def test_the_dispatcher_honours_the_connection_policy(tmp_path: Path, policy: str, connections: int) -> None:
    """Three deliveries, one after the other: one kept-alive connection, or one connection each."""
    settings = provider_settings(tmp_path, connection_policy=policy)
    async with server(keep_answering) as (url, seen, conns), running(settings) as (app, client):
        r = await client.post("/subscriptions", json={"url": f"{url}/hook"})
        assert r.status_code == 201, r.text
        for n in (1, 2, 3):
            assert (await client.post("/events", json={"type": "t", "payload": {"n": n}})).status_code == 201
            await until(lambda n=n: len(seen) == n, what=f"delivery {n}")  # type: ignore[misc]
        await until(lambda: app.state.store.delivery_summary()["delivered"] == 3, what="3 delivered")
        assert len(conns) == connections
        assert app.state.wire.connections == connections
        header = b"Connection: close" if policy == "new" else b"Connection: keep-alive"
        assert all(header in request for request in seen)
