"""GET /stream: Server-Sent Events from the event log, on a real provider process."""

from __future__ import annotations

import httpx
import pytest

from labkit.servers.procs import Child
from tests.helpers.streams import AUTH, Lab, events, read_sse


def _stream(url: str, n: int, headers: dict[str, str] | None = None, **params: str) -> tuple[httpx.Response, list]:
    with httpx.Client(base_url=url, timeout=10.0) as c:
        with c.stream("GET", "/stream", headers={**AUTH, **(headers or {})}, params=params) as r:
            if r.status_code != 200:
                r.read()
                return r, []
            return r, read_sse(r.iter_lines(), lambda fs: len(events(fs)) >= n)


def test_every_event_in_order_with_its_cursor_as_id(lab: Lab) -> None:
    p = lab.provider()
    ids = lab.publish(p.url, 25)
    r, frames = _stream(p.url, 25)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-accel-buffering"] == "no"
    assert frames[0].retry == 1000 and not frames[0].data  # the retry field opens the stream
    got = events(frames)
    assert [int(f.id) for f in got] == ids
    assert all(f.event == "order.updated" for f in got)
    body = [f.json() for f in got]
    assert [b["id"] for b in body] == ids
    assert [b["payload"]["i"] for b in body] == list(range(25))
    assert all(isinstance(b["created_ns"], int) for b in body)


@pytest.mark.slow  # a live publish after the backlog; ordering is covered fast
def test_live_events_follow_the_backlog(lab: Lab) -> None:
    p = lab.provider(heartbeat_s=0.2)
    lab.publish(p.url, 3)
    with httpx.Client(base_url=p.url, timeout=10.0) as c, c.stream("GET", "/stream", headers=AUTH) as r:
        lines = r.iter_lines()
        first = read_sse(lines, lambda fs: len(events(fs)) >= 3)
        lab.publish(p.url, 4)
        more = read_sse(lines, lambda fs: len(events(fs)) >= 4)
    assert [int(f.id) for f in events(first) + events(more)] == list(range(1, 8))


def test_live_events_are_written_by_the_hub_past_the_parked_writer(lab: Lab) -> None:
    p = lab.provider(heartbeat_s=60)
    with httpx.Client(base_url=p.url, timeout=10.0) as c, c.stream("GET", "/stream", headers=AUTH) as r:
        lines = r.iter_lines()
        read_sse(lines, lambda fs: bool(fs))  # the opening retry frame: the writer is live and parked
        got = []
        for _ in range(5):  # one at a time, each read before the next is published
            lab.publish(p.url, 1)
            got += events(read_sse(lines, lambda fs: len(events(fs)) >= 1))
    assert [int(f.id) for f in got] == [1, 2, 3, 4, 5]
    stats = lab.stats(p.url)
    assert stats["stream_events_fanned_out"] == 5
    assert stats["stream_writes_pushed"] == 5  # uvicorn's send ran to its end in the hub's pass every time


@pytest.mark.slow  # waits for heartbeats
def test_idle_stream_gets_heartbeat_comments(lab: Lab) -> None:
    p = lab.provider(heartbeat_s=0.2)
    with httpx.Client(base_url=p.url, timeout=10.0) as c, c.stream("GET", "/stream", headers=AUTH) as r:
        frames = read_sse(r.iter_lines(), lambda fs: sum(f.comment == "heartbeat" for f in fs) >= 2, timeout_s=5)
    assert sum(f.comment == "heartbeat" for f in frames) >= 2


@pytest.mark.slow  # two more streams; cursors are covered fast
def test_resume_from_last_event_id_or_after(lab: Lab) -> None:
    p = lab.provider()
    lab.publish(p.url, 10)
    _, by_header = _stream(p.url, 4, {"last-event-id": "6"})
    _, by_query = _stream(p.url, 3, after="7")
    _, header_wins = _stream(p.url, 2, {"last-event-id": "8"}, after="2")
    assert [int(f.id) for f in events(by_header)] == [7, 8, 9, 10]
    assert [int(f.id) for f in events(by_query)] == [8, 9, 10]
    assert [int(f.id) for f in events(header_wins)] == [9, 10]


@pytest.mark.slow  # one more stream per filter
def test_types_filter_as_on_the_feed(lab: Lab) -> None:
    p = lab.provider()
    lab.publish(p.url, 3, "a.one")
    lab.publish(p.url, 3, "b.two")
    lab.publish(p.url, 2, "c.three")
    _, frames = _stream(p.url, 5, types="a.one,c.three")
    assert [(int(f.id), f.event) for f in events(frames)] == [(1, "a.one"), (2, "a.one"), (3, "a.one"), (7, "c.three"), (8, "c.three")]


def test_without_a_key_401(refusing: tuple[Lab, Child]) -> None:
    _, p = refusing
    with httpx.Client(base_url=p.url, timeout=10.0) as c:
        assert c.get("/stream").status_code == 401
        assert c.get("/stream", headers={"authorization": "Bearer wrong-key"}).status_code == 401


def test_hostile_cursor_and_filter_400_with_reason(refusing: tuple[Lab, Child]) -> None:
    lab, p = refusing
    cases = [
        ({"last-event-id": "abc"}, {}, "Last-Event-ID"),
        ({"last-event-id": "-1"}, {}, "Last-Event-ID"),
        ({"last-event-id": "9" * 30}, {}, "Last-Event-ID"),
        ({}, {"after": "1e3"}, "after"),
        ({}, {"types": ",".join(f"t{i}" for i in range(60))}, "types"),
    ]
    for headers, params, field in cases:
        r, _ = _stream(p.url, 0, headers, **params)
        assert r.status_code == 400, (headers, params)
        assert r.json()["detail"].startswith(f"{field}:")
    assert lab.stats(p.url)["streams_open"] == 0


@pytest.mark.slow
def test_beyond_max_streams_503_with_reason(lab: Lab) -> None:
    p = lab.provider(max_streams=1)
    with httpx.Client(base_url=p.url, timeout=10.0) as c, c.stream("GET", "/stream", headers=AUTH) as held:
        lines = held.iter_lines()  # kept referenced: a collected iterator would close the stream
        read_sse(lines, lambda fs: bool(fs))  # the first stream is open
        r = httpx.get(p.url + "/stream", headers=AUTH, timeout=10.0)
        assert r.status_code == 503 and "max_streams=1" in r.json()["detail"]
