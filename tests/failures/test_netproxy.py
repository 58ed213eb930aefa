"""The user-space network proxy: bytes intact and in order, delays added, resets and refusals passed on."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from labkit.servers.netproxy import Impairment, NetProxy


async def _echo_server() -> asyncio.base_events.Server:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    return await asyncio.start_server(echo, "127.0.0.1", 0)


async def _roundtrip(port: int, chunks: list[bytes]) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for c in chunks:
        writer.write(c)
        await writer.drain()
    writer.write_eof()
    out = await asyncio.wait_for(reader.read(-1), 30)
    writer.close()
    return out


async def test_bytes_arrive_intact_and_in_order_despite_jitter_and_loss() -> None:
    server = await _echo_server()
    port = server.sockets[0].getsockname()[1]
    proxy = NetProxy("127.0.0.1", port, Impairment(delay_ms=2, jitter_ms=2, loss=1.0, rto_ms=5), seed=1)
    await proxy.start()
    chunks = [bytes([i % 256]) * (i + 1) for i in range(60)]
    try:
        assert await _roundtrip(proxy.port, chunks) == b"".join(chunks)
    finally:
        await proxy.stop()
        server.close()
    st = proxy.stats.snapshot()
    assert st["connections"] == 1 and st["bytes_up"] == st["bytes_down"] == sum(map(len, chunks))
    assert st["stalled_chunks"] > 0 and st["mean_added_delay_ms"] > 0


async def test_an_inactive_proxy_adds_nothing() -> None:
    server = await _echo_server()
    proxy = NetProxy("127.0.0.1", server.sockets[0].getsockname()[1], Impairment(delay_ms=500, loss=1.0), active=False)
    await proxy.start()
    try:
        assert await _roundtrip(proxy.port, [b"hello"]) == b"hello"
    finally:
        await proxy.stop()
        server.close()
    assert proxy.stats.snapshot()["mean_added_delay_ms"] == 0


async def test_resets_reach_the_client() -> None:
    server = await _echo_server()
    proxy = NetProxy("127.0.0.1", server.sockets[0].getsockname()[1], Impairment(reset=1.0))
    await proxy.start()
    try:
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"x")
            await writer.drain()
            data = await asyncio.wait_for(reader.read(1), 10)
            if not data:
                raise ConnectionResetError("closed")
    finally:
        await proxy.stop()
        server.close()
    assert proxy.stats.resets == 1


async def test_a_far_side_that_is_down_is_a_reset() -> None:
    server = await _echo_server()
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    proxy = NetProxy("127.0.0.1", port, Impairment())
    await proxy.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        with pytest.raises(ConnectionError):
            writer.write(b"x")
            await writer.drain()
            if not await asyncio.wait_for(reader.read(1), 10):
                raise ConnectionResetError("closed")
    finally:
        await proxy.stop()
    assert proxy.stats.upstream_refused == 1


def test_impairment_values_are_checked() -> None:
    with pytest.raises(ValueError):
        Impairment(loss=2)
    with pytest.raises(ValueError):
        Impairment(delay_ms=-1)
