"""Issue 24, item 1: a stream that stops reading is bounded and really let go, catching up or live.

A stalled reader's catch-up used to hand the transport whole pages (500
events) and was never cut off; a dropped stream's connection stayed open for
good (a polite close waits to write into a socket nobody reads). The hub now
writes catch-up in pages of at most ``catchup_max_bytes``, drops a stream
whose write waits past ``stall_timeout_s`` (counted), and resets its
connection: the client's socket leaves ESTABLISHED.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from pathlib import Path

import httpx
import orjson
import pytest

from labkit.config import EVENT_STREAM as SSE
from labkit.config import StreamLimits
from labkit.provider.store import Store
from labkit.provider.streams import StreamHub
from labkit.servers.procs import Child
from tests.helpers.streams import AUTH, KEY, Lab

PAD = 4000
TCP_ESTABLISHED = 1
STALL = {"stall_timeout_s": 0.5, "drop_grace_s": 0.2, "catchup_max_bytes": 16 * 1024, "heartbeat_s": 60}


def _raw(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    return sock


def _stalled_sse(port: int, after: int = 0) -> socket.socket:
    sock = _raw(port)
    sock.sendall(f"GET /stream?after={after} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {KEY}\r\n\r\n".encode())
    return sock


def _stalled_ws(port: int, after: int = 0) -> socket.socket:
    """A WebSocket handshake and cursor message by hand, then nothing is read again."""
    sock = _raw(port)
    sock.sendall(
        (
            "GET /ws HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n"
            f"authorization: Bearer {KEY}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # exactly the handshake's answer, nothing more
    assert head.startswith(b"HTTP/1.1 101"), head
    payload = json.dumps({"after": after}).encode()
    mask = b"\x01\x02\x03\x04"
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    return sock


def _tcp_state(sock: socket.socket) -> int:
    return struct.unpack("B", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1))[0]


def _wait(cond, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def _backlog(lab: Lab, url: str, n: int) -> None:
    lab.publish(url, n, pad=PAD)


def _stored_backlog(lab: Lab, n: int) -> None:
    """``n`` events of 4 KB written to the provider's database before it starts (fast; no HTTP)."""
    store = Store(str(lab.work / "provider.db"))
    try:
        for i in range(n):
            store.publish("t", orjson.dumps({"i": i, "pad": "x" * PAD}))
    finally:
        store.close()


@pytest.mark.parametrize("opener", [_stalled_sse, _stalled_ws], ids=["sse", "websocket"])
def test_a_stalled_catch_up_is_dropped_counted_and_reset(lab: Lab, opener) -> None:
    _stored_backlog(lab, 2500)  # 10 MB: more than the kernel's socket buffers take (up to 4 MB each way)
    p = lab.provider(**STALL)
    socks = [opener(p.port or 0) for _ in range(3)]
    try:
        assert _wait(lambda: lab.stats(p.url)["streams_dropped_stalled"] == 3), lab.stats(p.url)
        stats = lab.stats(p.url)
        assert stats["streams_open"] == 0 and stats["streams_dropped_backpressure"] == 3
        # Reset, not left half-open: the client's socket is no longer ESTABLISHED (without reading a byte).
        assert _wait(lambda: all(_tcp_state(s) != TCP_ESTABLISHED for s in socks), 10)
    finally:
        for s in socks:
            s.close()


@pytest.mark.slow  # waits out a real stall deadline on a real socket
def test_a_dropped_live_stream_closes_its_connection(lab: Lab) -> None:
    """A live stream dropped by its queue limit (the stall deadline far away) is reset after the grace."""
    p = lab.provider(queue_max_events=5, drop_grace_s=0.2, heartbeat_s=60)  # the stall deadline (30 s) far away
    sock = _stalled_sse(p.port or 0)
    try:
        assert _wait(lambda: lab.stats(p.url)["streams_open"] == 1)
        deadline = time.monotonic() + 60
        while lab.stats(p.url)["streams_dropped_backpressure"] == 0 and time.monotonic() < deadline:
            _backlog(lab, p.url, 25)
        assert lab.stats(p.url)["streams_dropped_backpressure"] == 1
        assert _wait(lambda: _tcp_state(sock) != TCP_ESTABLISHED, 10)
    finally:
        sock.close()


def test_a_reader_that_reads_gets_the_whole_backlog_in_bounded_pages(lab: Lab) -> None:
    _stored_backlog(lab, 120)  # 480 KB, 30 pages of the 16 KB budget; written before the start (no 120 POSTs)
    p = lab.provider(**STALL)
    with httpx.Client(base_url=p.url, timeout=30.0) as c, c.stream("GET", "/stream?after=0", headers=AUTH) as r:
        ids: list[int] = []
        for line in r.iter_lines():
            if line.startswith("id:"):
                ids.append(int(line[3:]))
            if len(ids) == 120:
                break
    assert ids == list(range(1, 121))
    assert lab.stats(p.url)["streams_dropped_backpressure"] == 0


def test_catch_up_pages_stay_within_the_byte_budget(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "p.db"))
    try:
        for i in range(200):
            store.publish("t", orjson.dumps({"i": i, "pad": "x" * PAD}))
        hub = StreamHub(store, StreamLimits(catchup_max_bytes=20_000))
        s = hub.attach(SSE, 0, ())
        pages = []
        while page := hub.catch_up(s):
            pages.append(page)
        assert [e.id for p in pages for e in p] == list(range(1, 201))
        assert all(sum(e.size for e in p) <= 20_000 for p in pages)
        assert max(len(p) for p in pages) >= 4  # not one event at a time either
        # One event larger than the budget still goes, alone.
        store.publish("t", orjson.dumps({"pad": "x" * 50_000}))
        s2 = hub.attach(SSE, 200, ())
        assert [e.id for e in hub.catch_up(s2)] == [201]
    finally:
        store.close()


def test_the_watcher_drops_a_writer_waiting_past_the_deadline(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "p.db"))
    try:
        hub = StreamHub(store, StreamLimits(stall_timeout_s=5))
        waiting, fresh, idle = (hub.attach(SSE, 0, ()) for _ in range(3))
        waiting.since, fresh.since = 100.0, 104.0
        assert hub.reap(106.0) == 1
        assert waiting.dropped and "stalled" in waiting.dropped and not fresh.dropped and not idle.dropped
        assert hub.stats()["streams_dropped_stalled"] == 1 and hub.stats()["streams_open"] == 2
    finally:
        store.close()


def test_a_cursor_ahead_of_the_head_is_refused_with_the_head(lab: Lab) -> None:
    p = lab.provider()
    lab.publish(p.url, 3)
    with httpx.Client(base_url=p.url, timeout=10.0) as c:
        r = c.get("/stream?after=50", headers=AUTH)
        assert r.status_code == 409 and r.headers["x-log-head"] == "3" and "head 3" in r.json()["detail"]
        r = c.get("/stream", headers={**AUTH, "last-event-id": "4"})
        assert r.status_code == 409
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{p.port}/ws", additional_headers=AUTH, proxy=None) as ws:
        ws.send(json.dumps({"after": 9}))
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008 and "head 3" in info.value.rcvd.reason


def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and b"505" in data.split(b"\r\n", 1)[0]:
                break
        return data


def test_http_10_gets_no_event_stream_and_no_websocket(refusing: tuple[Lab, Child]) -> None:
    lab, p = refusing
    before = lab.stats(p.url)["streams_total"]
    sse = _exchange(p.port or 0, f"GET /stream HTTP/1.0\r\nauthorization: Bearer {KEY}\r\n\r\n".encode())
    assert sse.startswith(b"HTTP/1.1 505") or sse.startswith(b"HTTP/1.0 505"), sse[:200]
    assert b"transfer-encoding: chunked" not in sse.lower()
    ws = _exchange(
        p.port or 0,
        (
            "GET /ws HTTP/1.0\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            f"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\nauthorization: Bearer {KEY}\r\n\r\n"
        ).encode(),
    )
    assert ws.startswith(b"HTTP/1.1 505"), ws[:200]
    assert lab.stats(p.url)["streams_total"] == before


def test_invalid_utf8_from_a_websocket_client_is_one_log_line(refusing: tuple[Lab, Child]) -> None:
    lab, p = refusing
    sock = _raw(p.port or 0)
    try:
        sock.sendall(
            (
                "GET /ws HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
                f"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\nauthorization: Bearer {KEY}\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        payload = b"\xff\xfe{"
        mask = b"\x00\x00\x00\x00"
        sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + payload)
        sock.settimeout(10)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    finally:
        sock.close()
    assert data[:1] == b"\x88" and data[2:4] == (1007).to_bytes(2, "big")  # a close frame, 1007
    log = (lab.work / "provider.log").read_text()
    assert "UTF-8" in log and "Traceback" not in log


def _handshake_status(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            (
                "GET /ws HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
                f"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\nauthorization: Bearer {KEY}\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n" not in head and (chunk := sock.recv(1)):
            head += chunk
        return int(head.split()[1])


def test_websocket_opens_are_rate_limited_and_counted_like_sse_opens(lab: Lab) -> None:
    """Issue 24, item 3: the gate used to pass WebSocket handshakes through, unlimited and uncounted."""
    settings = {
        "db_path": str(lab.work / "provider.db"),
        "api_keys": [KEY, "reader"],
        "rate_limit_per_s": 0.01,  # a burst of 3, then a token per 100 s: no refill while the test runs
        "rate_limit_burst": 3,
        "key_rate_limits": {"reader": [0, 1]},  # reads /stats unlimited
    }
    p = lab.group.start_server("provider", "provider", settings)
    statuses = [_handshake_status(p.port or 0) for _ in range(10)]
    assert statuses == [101] * 3 + [429] * 7
    with httpx.Client(base_url=p.url, headers={"authorization": "Bearer reader"}, timeout=10) as c:
        stats = c.get("/stats").json()
    assert stats["rate_limited"] == 7
    assert stats["requests"]["WS (rate limited)"]["429"] == 7
    assert stats["requests"]["WS /ws"]["101"] == 3
