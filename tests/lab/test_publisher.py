"""The session's publisher: every event published, never more than its slots in flight at once.

The publisher once handed every due event to httpx's pool at once; the pool's
per-request walk over its connections and queue put the run's own process
behind the timetable at 1,000 events/s (a decide counted that as start-up).
These tests run ``Session._publish`` against a bare loopback server that
counts the requests it holds at once.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest

from labkit.lab import session as session_mod
from labkit.wire.metering import new_histogram


class Counting:
    """A loopback HTTP/1.1 server answering every POST /events with 201 after a short wait, counting what it holds."""

    def __init__(self, status: int = 201) -> None:
        self.status = status
        self.now = 0
        self.most = 0
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
                await reader.readexactly(length)
                self.requests += 1
                self.now += 1
                self.most = max(self.most, self.now)
                await asyncio.sleep(0.01)
                self.now -= 1
                body = b"{}"
                writer.write(b"HTTP/1.1 %d X\r\ncontent-length: %d\r\n\r\n%s" % (self.status, len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


class _Workload:
    """``events`` events, all due at once."""

    def __init__(self, events: int) -> None:
        self.offsets_s = [0.0] * events
        self.payloads = [{"n": i} for i in range(events)]
        self.settings = SimpleNamespace(event_type="t")

    def __len__(self) -> int:
        return len(self.offsets_s)


def fake_session(port: int, events: int, give_up_s: float = 0.0) -> Any:
    """What ``Session._publish`` reads, for ``events`` events all due at once."""
    fake = SimpleNamespace(
        workload=_Workload(events),
        audience=SimpleNamespace(event_type=lambda i, t: t, event_consumer=lambda i: None),
        fault=SimpleNamespace(publish_give_up_s=give_up_s),
        publisher_key="k",
        verify=True,
        provider=SimpleNamespace(child=SimpleNamespace(url=f"http://127.0.0.1:{port}")),
        t0=time.monotonic(),
        lateness=new_histogram(),
        progress=lambda *a: None,
        label="test",
        published_by_publisher=0,
        publish_errors=0,
        publish_retries=0,
    )
    fake.until = lambda at: session_mod.Session.until(fake, at)
    return fake


async def _publish(server: Counting, events: int, give_up_s: float = 0.0) -> Any:
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    fake = fake_session(port, events, give_up_s)
    try:
        await session_mod.Session._publish(fake)
    finally:
        srv.close()
        await srv.wait_closed()
    return fake


def test_every_event_is_published_with_at_most_its_slots_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_mod, "PUBLISH_CONNECTIONS", 4)
    server = Counting()
    fake = asyncio.run(_publish(server, 60))
    assert fake.published_by_publisher == 60
    assert fake.publish_errors == 0
    assert server.requests == 60
    assert 1 < server.most <= 4  # concurrent, and never more than the slots
    assert fake.lateness.get_total_count() == 60  # one lateness per event, taken when its request was issued


def test_a_refused_publish_is_counted_not_retried_without_a_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_mod, "PUBLISH_CONNECTIONS", 4)
    server = Counting(status=422)
    fake = asyncio.run(_publish(server, 10))
    assert fake.published_by_publisher == 0
    assert fake.publish_errors == 10
    assert fake.publish_retries == 0
    assert server.requests == 10
