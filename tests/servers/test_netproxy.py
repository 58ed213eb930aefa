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


async def _sender_server(size: int) -> asyncio.base_events.Server:
    """Sends ``size`` bytes to whoever connects, then closes."""

    async def send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            writer.write(b"x" * size)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(send, "127.0.0.1", 0)


async def _sink_server(size: int) -> asyncio.base_events.Server:
    """Reads ``size`` bytes, then answers ``ok``."""

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readexactly(size)
            writer.write(b"ok")
            await writer.drain()
        writer.close()

    return await asyncio.start_server(sink, "127.0.0.1", 0)


async def test_a_download_takes_at_least_its_size_over_the_rate() -> None:
    size, rate = 1024 * 1024, 8e6  # 1 MiB at 8 mbit: the model says 1.05 s
    server = await _sender_server(size)
    proxy = NetProxy("127.0.0.1", server.sockets[0].getsockname()[1], Impairment(rate_down_bps=rate))
    await proxy.start()
    loop = asyncio.get_running_loop()
    try:
        t0 = loop.time()
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        got = await asyncio.wait_for(reader.read(-1), 30)
        elapsed = loop.time() - t0
        writer.close()
    finally:
        await proxy.stop()
        server.close()
    model = size * 8 / rate
    assert len(got) == size
    print(f"download {elapsed:.3f} s, model {model:.3f} s")
    assert 0.9 * model <= elapsed <= 3 * model, (elapsed, model)


async def test_an_upload_is_limited_by_the_up_rate_only() -> None:
    size, rate = 512 * 1024, 4e6  # 0.5 MiB at 4 mbit: 1.05 s; the way back is not limited
    server = await _sink_server(size)
    proxy = NetProxy("127.0.0.1", server.sockets[0].getsockname()[1], Impairment(rate_up_bps=rate, rate_down_bps=1e3))
    await proxy.start()
    loop = asyncio.get_running_loop()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        t0 = loop.time()
        writer.write(b"y" * size)
        await writer.drain()
        answer = await asyncio.wait_for(reader.readexactly(2), 30)
        elapsed = loop.time() - t0
        writer.close()
    finally:
        await proxy.stop()
        server.close()
    model = size * 8 / rate + 2 * 8 / 1e3  # the 2-byte answer at 1 kbit down: 16 ms
    assert answer == b"ok"
    assert 0.9 * model <= elapsed <= 3 * model, (elapsed, model)
    assert proxy.stats.bytes_up == size
    print(f"upload {elapsed:.3f} s, model {model:.3f} s")


async def test_a_profile_delays_both_directions_by_half_its_rtt() -> None:
    from labkit.config.network import parse_network

    profile = parse_network("rtt=60ms")
    imp = Impairment.from_profile(profile)
    assert (imp.delay_ms, imp.rate_up_bps, imp.rate_down_bps, imp.handshake) == (30, None, None, True)
    mobile = Impairment.from_profile(parse_network("mobile"))
    assert (mobile.rate_up_bps, mobile.rate_down_bps, mobile.loss) == (5e6, 20e6, 0.005)
    server = await _echo_server()
    proxy = NetProxy("127.0.0.1", server.sockets[0].getsockname()[1], imp)
    await proxy.start()
    loop = asyncio.get_running_loop()
    rtts = []
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        for _ in range(3):
            t0 = loop.time()
            writer.write(b"ping")
            await writer.drain()
            assert await asyncio.wait_for(reader.readexactly(4), 10) == b"ping"
            rtts.append(loop.time() - t0)
        writer.close()
    finally:
        await proxy.stop()
        server.close()
    assert min(rtts) >= profile.rtt_ms / 1000, rtts
    assert rtts[0] >= 2 * profile.rtt_ms / 1000, rtts  # the first chunk also pays TCP's handshake
    assert proxy.stats.chunks == 6  # three pings up, three echoes down: each delayed
    # the delay applied, per direction: at least the profile's one way; the first chunk up also had the handshake
    added = proxy.stats.snapshot()["added_delay_ms"]
    assert added["up"]["chunks"] == added["down"]["chunks"] == 3
    assert added["down"]["p50"] >= 30 and added["up"]["p50"] >= 30 and added["up"]["max"] >= 90
    assert added["up"]["mean"] > added["down"]["mean"]


def test_the_applied_delays_of_several_hops_merge_exactly() -> None:
    from labkit.servers.netproxy import ProxyStats, applied_delays_ms

    a, b = ProxyStats(), ProxyStats()
    for _ in range(99):
        a.applied(True, 0.010)
    b.applied(True, 0.500)
    b.applied(False, 0.020)
    merged = applied_delays_ms([a.snapshot(histograms=True), b.snapshot(histograms=True)])
    assert merged["up"]["chunks"] == 100 and merged["down"]["chunks"] == 1
    assert merged["up"]["p50"] == pytest.approx(10, rel=0.01) and merged["up"]["max"] == pytest.approx(500, rel=0.01)
    assert merged["up"]["mean"] == pytest.approx((99 * 10 + 500) / 100, rel=0.01)
    assert merged["down"]["p99"] == pytest.approx(20, rel=0.01)
    assert "added_delay_hdr" not in a.snapshot()  # only the hops' own reports carry the histograms


def test_a_proxy_thread_serves_sync_callers_and_stops() -> None:
    import socket

    from labkit.servers.netproxy import ProxyThread

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    with ProxyThread("127.0.0.1", port, Impairment(delay_ms=5)) as proxy:
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        conn, _ = listener.accept()
        client.sendall(b"abc")
        conn.settimeout(10)
        assert conn.recv(3) == b"abc"
        client.close()
        conn.close()
    listener.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
    assert proxy.proxy.stats.connections == 1


async def test_rate_and_delay_add_up_and_an_inactive_proxy_does_not_limit() -> None:
    size, rate = 256 * 1024, 4e6  # 0.52 s on the link, plus 100 ms one way
    server = await _sender_server(size)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    imp = Impairment(delay_ms=100, rate_down_bps=rate)
    timings = {}
    for active in (True, False):
        proxy = NetProxy("127.0.0.1", port, imp, active=active)
        await proxy.start()
        try:
            t0 = loop.time()
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            got = await asyncio.wait_for(reader.read(-1), 30)
            timings[active] = loop.time() - t0
            writer.close()
        finally:
            await proxy.stop()
        assert len(got) == size
    server.close()
    model = size * 8 / rate + 0.1
    assert 0.9 * model <= timings[True] <= 3 * model, timings
    assert timings[False] < timings[True] / 2, timings  # switched off: neither the delay nor the rate


def test_only_an_impairment_that_does_nothing_is_a_no_op() -> None:
    assert Impairment().is_noop
    for imp in (
        Impairment(delay_ms=1),
        Impairment(jitter_ms=1),
        Impairment(loss=0.1),
        Impairment(reset=0.1),
        Impairment(rate_up_bps=1e6),
        Impairment(rate_down_bps=1e6),
        Impairment(handshake=True),
    ):
        assert not imp.is_noop, imp


async def test_a_straight_through_proxy_carries_both_directions_and_half_closes() -> None:
    server = await _echo_server()
    proxy = NetProxy("127.0.0.1", server.sockets[0].getsockname()[1], Impairment())
    await proxy.start()
    chunks = [bytes([i % 256]) * (97 * i + 1) for i in range(200)]  # about 1.9 MB, more than the transports buffer
    try:
        # the client half-closes after writing; the echo still comes back in full, then the far side's FIN
        results = await asyncio.gather(_roundtrip(proxy.port, chunks), _roundtrip(proxy.port, chunks[:5]))
    finally:
        await proxy.stop()
        server.close()
    assert results == [b"".join(chunks), b"".join(chunks[:5])]
    st = proxy.stats.snapshot()
    total = sum(map(len, chunks)) + sum(map(len, chunks[:5]))
    assert st["connections"] == 2 and st["bytes_up"] == st["bytes_down"] == total
    assert st["chunks"] >= 2 * 2 and st["mean_added_delay_ms"] == 0 and st["stalled_chunks"] == 0


async def test_a_straight_through_proxy_passes_a_reset_on() -> None:
    async def reset_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        _abort_writer(writer)

    server = await asyncio.start_server(reset_at_once, "127.0.0.1", 0)
    proxy = NetProxy("127.0.0.1", server.sockets[0].getsockname()[1], Impairment())
    await proxy.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"x")
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(1), 10)
        writer.close()
    finally:
        await proxy.stop()
        server.close()
    assert proxy.stats.bytes_up == 1


async def test_stopping_a_straight_through_proxy_cuts_its_open_connections() -> None:
    server = await _echo_server()
    proxy = NetProxy("127.0.0.1", server.sockets[0].getsockname()[1], Impairment())
    await proxy.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 10) == b"ping"
    finally:
        await proxy.stop()
        server.close()
    with pytest.raises(ConnectionError):
        if not await asyncio.wait_for(reader.read(1), 10):
            raise ConnectionResetError("closed")
    writer.close()


def _abort_writer(writer: asyncio.StreamWriter) -> None:
    import socket
    import struct

    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
