"""A stalled reader is dropped for backpressure and counted; a healthy reader keeps receiving."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.helpers.streams import AUTH, KEY, Lab, events, read_sse

PAD = 4000  # bytes of payload per event: the socket buffers fill after a few hundred
MAX_EVENTS = 3000  # the publishing loop's bound
LIMITS = {"queue_max_events": 20, "drop_grace_s": 0.2, "heartbeat_s": 0.5}


def _stalled_sse(port: int) -> socket.socket:
    """An SSE client that sends its request and then never reads (a tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /stream HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {KEY}\r\n\r\n".encode())
    return sock


def _publish_until(lab: Lab, url: str, done: Callable[[], bool]) -> int:
    """Publish padded events (bounded in count and time) until ``done()``; returns how many."""
    deadline = time.monotonic() + 120
    sent = 0
    with httpx.Client(base_url=url, headers=AUTH, timeout=10.0) as c:
        while sent < MAX_EVENTS and time.monotonic() < deadline:
            for _ in range(25):
                assert c.post("/events", json={"type": "t", "payload": {"i": sent, "pad": "x" * PAD}}).status_code == 201
                sent += 1
            if done():
                break
    return sent


def _healthy_sse(url: str, got: list[int], stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=30.0) as c, c.stream("GET", "/stream", headers=AUTH) as r:
        read_sse(r.iter_lines(), lambda fs: stop.is_set() and len(events(fs)) >= len(got) or _take(fs, got), timeout_s=150)


def _take(frames: list, got: list[int]) -> bool:
    got[:] = [int(f.id) for f in events(frames)]
    return False


@pytest.mark.slow  # waits out the stall deadline; the websocket case stays fast
def test_stalled_sse_reader_dropped_while_healthy_reader_receives_all(lab: Lab) -> None:
    p = lab.provider(**LIMITS)
    got: list[int] = []
    stop = threading.Event()
    reader = threading.Thread(target=_healthy_sse, args=(p.url, got, stop), daemon=True)
    reader.start()
    stalled = _stalled_sse(p.port or 0)
    try:
        sent = _publish_until(lab, p.url, lambda: lab.stats(p.url)["streams_dropped_backpressure"] >= 1)
        stats = lab.stats(p.url)
        assert stats["streams_dropped_backpressure"] == 1, f"no drop after {sent} events"
        deadline = time.monotonic() + 60
        while len(got) < sent and time.monotonic() < deadline:
            time.sleep(0.1)
        assert got == list(range(1, sent + 1))  # the healthy reader lost nothing, in order
        # The dropped stream ends: cut off (EOF), or, when its writer got through within the grace,
        # with the reason and the end of the chunked response.
        stalled.settimeout(30)
        tail = b""
        while not tail.endswith(b"\r\n0\r\n\r\n") and (chunk := stalled.recv(65536)):
            tail = (tail + chunk)[-4096:]
        assert stats["streams_open"] == 1 or lab.stats(p.url)["streams_open"] == 1
    finally:
        stop.set()
        stalled.close()
        reader.join(timeout=30)
    # It resumes from its cursor: a reconnect with Last-Event-ID gets the rest.
    with httpx.Client(base_url=p.url, timeout=30.0) as c:
        with c.stream("GET", "/stream", headers={**AUTH, "last-event-id": str(sent - 2)}) as r:
            rest = events(read_sse(r.iter_lines(), lambda fs: len(events(fs)) >= 2))
    assert [int(f.id) for f in rest] == [sent - 1, sent]


@pytest.mark.slow  # waits out the backpressure deadline
def test_slow_sse_reader_is_told_the_reason(lab: Lab) -> None:
    """A reader that reads, but too slowly, gets the final error event naming backpressure."""
    p = lab.provider(queue_max_events=5, drop_grace_s=5.0)
    sock = _stalled_sse(p.port or 0)
    try:
        _publish_until(lab, p.url, lambda: lab.stats(p.url)["streams_dropped_backpressure"] >= 1)
        sock.settimeout(30)
        data = b""
        # Read it all now: within the grace the writer gets through, writes the reason, ends the response.
        while not data.endswith(b"\r\n0\r\n\r\n") and (chunk := sock.recv(65536)):
            data += chunk
    finally:
        sock.close()
    assert lab.stats(p.url)["streams_dropped_backpressure"] == 1
    assert b"event: error" in data and b"backpressure" in data


@pytest.mark.slow
def test_stalled_websocket_reader_closed_1013_and_counted(lab: Lab) -> None:
    p = lab.provider(**LIMITS)
    url = f"ws://127.0.0.1:{p.port}/ws"
    healthy = connect(url, additional_headers=AUTH, compression=None, proxy=None)
    healthy.send(json.dumps({"after": 0}))
    stalled_sock = socket.socket()
    stalled_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled_sock.connect(("127.0.0.1", p.port or 0))
    stalled = connect(url, sock=stalled_sock, additional_headers=AUTH, compression=None, proxy=None, max_queue=1)
    stalled.send(json.dumps({"after": 0}))
    got: list[int] = []

    def read_healthy() -> None:
        try:
            while True:
                got.append(json.loads(healthy.recv(timeout=60))["id"])
        except (TimeoutError, ConnectionClosed):
            return

    reader = threading.Thread(target=read_healthy, daemon=True)
    reader.start()
    try:
        sent = _publish_until(lab, p.url, lambda: lab.stats(p.url)["streams_dropped_backpressure"] >= 1)
        assert lab.stats(p.url)["streams_dropped_backpressure"] == 1, f"no drop after {sent} events"
        deadline = time.monotonic() + 60
        while len(got) < sent and time.monotonic() < deadline:
            time.sleep(0.1)
        assert got == list(range(1, sent + 1))
        with pytest.raises(ConnectionClosed):  # the stalled one was closed by the provider
            while True:
                stalled.recv(timeout=30)
    finally:
        healthy.close()
        stalled.close()
        reader.join(timeout=30)
