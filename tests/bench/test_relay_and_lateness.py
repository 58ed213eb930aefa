"""The bench's floor relays carry bytes both ways; the fleet's lateness after the warm-up is that of the later ticks only."""

from __future__ import annotations

import socket
import threading

import pytest

from labkit.bench.consumer_cases import lateness_between
from labkit.bench.relay import BareRelay, SocatRelay
from labkit.consumers.stats import Latency


def _echo_server() -> tuple[socket.socket, threading.Thread]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def serve() -> None:  # every connection (socat's start-up probe opens one too)
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv, t


@pytest.mark.parametrize("kind", [BareRelay, SocatRelay])
def test_a_relay_carries_bytes_both_ways_and_stops(kind: type) -> None:
    if kind is SocatRelay and not SocatRelay.installed():
        pytest.skip("socat is not installed")
    srv, t = _echo_server()
    relay = kind(srv.getsockname()[1]).start()
    try:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as c:
            for size in (1, 1200, 70_000):
                payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
                c.sendall(payload)
                got = b""
                while len(got) < size:
                    got += c.recv(65536)
                assert got == payload
        assert (relay.cpu_s() or 0.0) >= 0.0
    finally:
        relay.stop()
        srv.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", relay.port), timeout=1).close()


def _stats(lat: Latency) -> dict:
    return {"histograms": {"lateness": lat.export()}, "counters": {"lateness": lat.summary_ms()}}


def test_lateness_after_the_warmup_leaves_the_warmup_out() -> None:
    lat = Latency()
    for _ in range(50):
        lat.record(300_000)  # a slow start: 300 ms late
    warm = _stats(lat)
    for _ in range(1000):
        lat.record(2_000)  # then 2 ms
    end = _stats(lat)
    after = lateness_between(warm, end)
    assert after["polls"] == 1000
    assert after["p99"] == pytest.approx(2.0, rel=0.01) and after["max"] == pytest.approx(2.0, rel=0.01)
    assert after["mean"] == pytest.approx(2.0)
    assert warm["counters"]["lateness"]["p99"] == pytest.approx(300, rel=0.01)  # what the key held before
    assert lateness_between({}, end)["polls"] == 1050
    assert lateness_between({}, {})["polls"] == 0
