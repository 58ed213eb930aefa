"""The proxy in a process of its own (``labkit.lab.hop.ProxyProcess``): forwards, reports its counters, stops."""

from __future__ import annotations

import socket
import threading

import pytest

from labkit.lab.hop import ProxyProcess
from labkit.servers.netproxy import Impairment


def _echo_once(listener: socket.socket) -> None:
    """Accept one connection, read it to its end, send it all back, close."""
    conn, _ = listener.accept()
    conn.settimeout(10)
    got = b""
    while data := conn.recv(65536):
        got += data
    conn.sendall(got)
    conn.close()


def _echo_through(proxy_port: int, listener: socket.socket, payload: bytes) -> bytes:
    """Send ``payload`` through the proxy to ``listener``, which echoes it back (in a thread); what the client got."""
    server = threading.Thread(target=_echo_once, args=(listener,), daemon=True)
    server.start()
    client = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
    client.sendall(payload)
    client.shutdown(socket.SHUT_WR)  # the half-close travels through the proxy: the echo ends on it
    back = b""
    while data := client.recv(65536):
        back += data
    client.close()
    server.join(10)
    return back


@pytest.mark.parametrize("impairment", [Impairment(), Impairment(delay_ms=2, jitter_ms=1)], ids=["straight-through", "impaired"])
def test_a_proxy_process_forwards_and_reports_its_counters(impairment: Impairment) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    payload = bytes(range(256)) * 4000  # about 1 MB: many reads, both ways
    proxy = ProxyProcess("127.0.0.1", listener.getsockname()[1], impairment).start()
    try:
        assert _echo_through(proxy.port, listener, payload) == payload
        cpu = proxy.cpu_s()
        assert cpu is not None and cpu >= 0
    finally:
        stats = proxy.stop()
        listener.close()
    assert stats["connections"] == 1 and stats["bytes_up"] == stats["bytes_down"] == len(payload)
    assert (stats["mean_added_delay_ms"] > 0) == (not impairment.is_noop)
    assert proxy.cpu_s() is None  # stopped
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
