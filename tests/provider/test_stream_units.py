"""The hub without a server: catch-up, fan-out, bounds, heartbeats and pushes (the SSE client: tests/consumers/test_sseclient.py)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import orjson
import pytest
from starlette.types import Message

from labkit.config import EVENT_STREAM as SSE
from labkit.config import WS, StreamLimits
from labkit.consumers.stats import Latency
from labkit.consumers.streams import LagTally
from labkit.provider.dispatcher import event_json
from labkit.provider.store import Store
from labkit.provider.stream_routes import send_now
from labkit.provider.streams import Encoded, StreamHub
from labkit.wire.metering import HIST_MAX_US


@pytest.fixture
def store(tmp_path: Path):
    s = Store(str(tmp_path / "p.db"))
    yield s
    s.close()


def _publish(store: Store, hub: StreamHub, n: int, type_: str = "t") -> None:
    for i in range(n):
        store.publish(type_, orjson.dumps({"i": i}))
        hub.notify()


def test_catch_up_then_live_without_gap_or_repeat(store: Store) -> None:
    hub = StreamHub(store, StreamLimits(catchup_page=3))
    _publish(store, hub, 7)
    s = hub.attach(SSE, 2, ())
    pages = []
    while page := hub.catch_up(s):
        pages.append([e.id for e in page])
        if len(pages) <= 2:
            _publish(store, hub, 1)  # published while the stream catches up: read from the log, not queued
    assert s.live
    _publish(store, hub, 2)
    live = [e.id for e in s.take()]
    seen = [i for p in pages for i in p] + live
    assert seen == list(range(3, store.head() + 1))


def test_filter_and_frame_encoding(store: Store) -> None:
    hub = StreamHub(store, StreamLimits())
    s = hub.attach(WS, 0, ("b",))
    assert hub.catch_up(s) == []
    _publish(store, hub, 1, "a")
    _publish(store, hub, 1, "b")
    (item,) = list(s.take())
    assert item.id == 2 and item.type == "b"
    assert item.sse.startswith(b"event: b\ndata: {") and item.sse.endswith(b"\nid: 2\n\n")
    assert orjson.loads(item.json)["id"] == 2


def test_overflow_drops_counts_and_frees(store: Store) -> None:
    hub = StreamHub(store, StreamLimits(queue_max_events=3))
    slow, fast = hub.attach(SSE, 0, ()), hub.attach(SSE, 0, ())
    hub.catch_up(slow), hub.catch_up(fast)
    cut = []
    slow.on_drop = lambda: cut.append(1)
    for _ in range(5):
        _publish(store, hub, 1)
        list(fast.take())  # the fast one keeps up
    assert slow.dropped and slow.dropped.startswith("backpressure") and cut == [1]
    assert not slow.queue and slow.queued_bytes == 0
    assert hub.stats()["streams_dropped_backpressure"] == 1
    assert hub.stats()["streams_open"] == 1 and fast.cursor == 5
    hub.detach(slow), hub.detach(fast), hub.detach(fast)  # idempotent
    assert hub.stats()["streams_open"] == 0 and hub.stats()["streams_total"] == 2


def test_byte_bound_drops_too(store: Store) -> None:
    hub = StreamHub(store, StreamLimits(queue_max_bytes=1024))
    s = hub.attach(SSE, 0, ())
    hub.catch_up(s)
    store.publish("t", orjson.dumps({"pad": "x" * 2000}))
    hub.notify()
    assert s.dropped is not None and hub.dropped_backpressure == 1


def test_a_consumers_stream_dropped_during_the_fan_out_leaves_its_other_streams_fed(store: Store) -> None:
    hub = StreamHub(store, StreamLimits(queue_max_events=2))
    slow, fast, other = hub.attach(SSE, 0, (), "c1"), hub.attach(SSE, 0, (), "c1"), hub.attach(SSE, 0, (), "c2")
    for s in (slow, fast, other):
        hub.catch_up(s)
    for i in range(4):
        store.publish_many([("t", orjson.dumps({"i": i}), "c1")])
        hub.notify(store.page_routed(hub.seen, 10))
        list(fast.take())  # the fast one keeps up; the slow one is dropped at its third event, mid-walk
    assert slow.dropped and slow.dropped.startswith("backpressure")
    assert fast.cursor == 4 and not other.queue  # c2's stream is handed none of c1's events
    assert hub.by_consumer["c1"] == (fast,)
    hub.detach(fast)
    assert "c1" not in hub.by_consumer and hub.by_consumer["c2"] == (other,)


def test_end_all_empties_the_consumer_index_once_however_many_streams_a_consumer_holds(store: Store) -> None:
    hub = StreamHub(store, StreamLimits(max_streams=5000))
    streams = [hub.attach(SSE, 0, (), "c1") for _ in range(3000)]
    for s in streams:
        hub.catch_up(s)
    assert len(hub.by_consumer["c1"]) == 3000
    assert hub.end_all() == 3000
    assert not hub.by_consumer and hub.open == 0 and all(s.dropped for s in streams)


def test_a_consumers_head_is_the_newest_of_its_types_also_after_a_restart(store: Store, tmp_path: Path) -> None:
    store.publish_many([("a", b"{}", "c1"), ("b", b"{}", "c1"), ("a", b"{}", "c2"), ("a", b"{}", None)])
    store.publish("b", b"{}", consumer="c2")
    assert store.head(consumer="c1") == 2 and store.head(("a",), "c1") == 1 and store.head(("b",), "c1") == 2
    assert store.head(consumer="c2") == 5 and store.head(("a",), "c2") == 3 and store.head(("x",), "c2") == 0
    assert store.head(consumer="nobody") == 0 and store.head() == 5 and store.head(("a",)) == 4
    again = Store(str(tmp_path / "p.db"))  # the heads read back from the log at start
    assert again.head(consumer="c1") == 2 and again.head(("a",), "c2") == 3 and again.head(consumer="c2") == 5
    again.close()


async def test_heartbeat_only_for_streams_handed_nothing_since_the_last_tick(store: Store) -> None:
    hub = StreamHub(store, StreamLimits(heartbeat_s=3600))
    idle, busy = hub.attach(SSE, 0, ()), hub.attach(SSE, 0, ())
    hub.catch_up(idle), hub.catch_up(busy)
    _publish(store, hub, 1)
    list(idle.take())
    hub.tick()  # both were handed the event: no heartbeat yet
    assert not idle.beat and not busy.beat
    hub.tick()
    assert await idle.wait() is False  # a heartbeat, not an event
    hub.close()


def test_fleet_backoff_grows_with_jitter_and_is_capped() -> None:
    from labkit.config import StreamConsumerSettings
    from labkit.consumers.streams import Consumer, StreamFleet

    fleet = StreamFleet(StreamConsumerSettings(base_url="http://127.0.0.1:1", backoff_initial_s=0.1, backoff_max_s=2.0))
    c = Consumer(0, 0)
    seen = []
    for attempt in range(8):
        c.attempt = attempt
        delays = [fleet.backoff_s(c) for _ in range(50)]
        ceiling = min(2.0, 0.1 * 2**attempt)
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered: reconnecting consumers do not arrive together
        seen.append(max(delays))
    assert seen[-1] <= 2.0 and seen[3] > seen[0]


async def test_a_parked_stream_is_pushed_to_once_per_callback_and_a_declined_push_wakes_its_writer(store: Store) -> None:
    hub = StreamHub(store, StreamLimits(heartbeat_s=3600))
    s = hub.attach(SSE, 0, ())
    hub.catch_up(s)
    pushes: list[list[int]] = []
    accept = [True]

    def push(events: list[Encoded]) -> bool:
        if accept[0]:
            pushes.append([e.id for e in events])
        return accept[0]

    s.push = push
    _publish(store, hub, 1)  # the writer is not parked: the event is queued for it, not pushed
    await asyncio.sleep(0)
    assert pushes == [] and [e.id for e in s.take()] == [1]
    waiter = asyncio.ensure_future(s.wait())
    await asyncio.sleep(0)  # the writer parks
    _publish(store, hub, 2)  # published together: one push after the fan-out, with both
    assert pushes == [] and len(s.queue) == 2
    await asyncio.sleep(0)
    assert pushes == [[2, 3]] and not s.queue and s.queued_bytes == 0 and s.cursor == 3 and not waiter.done()
    accept[0] = False  # the socket is full: the push declines and the writer is woken with the queue intact
    _publish(store, hub, 2)
    await asyncio.sleep(0)
    assert pushes == [[2, 3]] and [e.id for e in s.queue] == [4, 5] and s.cursor == 3
    assert await waiter is True and [e.id for e in s.take()] == [4, 5]
    assert hub.fanned_out == 5
    hub.close()


async def test_send_now_sends_at_once_or_declines_unsent() -> None:
    sent: list[Message] = []
    writable = asyncio.Event()

    async def send(message: Message) -> None:  # waits, like uvicorn's send, before it writes anything
        if not writable.is_set():
            await writable.wait()
        sent.append(message)

    assert send_now(send, {"n": 1}) is False and sent == []
    writable.set()
    assert send_now(send, {"n": 2}) is True and sent == [{"n": 2}]
    await asyncio.sleep(0)
    assert sent == [{"n": 2}]  # the declined send never completes later


def test_lag_tally_gives_the_histogram_exactly_what_recording_each_lag_gives() -> None:
    rng = random.Random(3)
    lags_ns = [rng.choice([-5_000, 0, 999, 1_000]) for _ in range(50)]
    lags_ns += [int(rng.lognormvariate(18, 2)) for _ in range(20_000)] + [HIST_MAX_US * 1000 + 7, 2_047_999, 2_048_000, 4_095_999]
    one_by_one, tallied, tally = Latency(), Latency(), LagTally()
    for ns in lags_ns:
        one_by_one.record(ns / 1000)
        tally.add(ns)
    tally.into(tallied)
    assert list(tallied.hist.counts) == list(one_by_one.hist.counts)
    assert tallied.count == one_by_one.count == len(lags_ns)
    assert tallied.summary_ms() == pytest.approx(one_by_one.summary_ms())
    assert tally.counts == {} and tally.sum_us == 0.0


def test_the_fleet_times_the_event_by_its_own_created_ns_not_one_in_its_payload(monkeypatch: pytest.MonkeyPatch) -> None:
    from labkit.config import StreamConsumerSettings
    from labkit.consumers.streams import Consumer, StreamFleet

    fleet = StreamFleet(StreamConsumerSettings(base_url="http://127.0.0.1:1", record=False))
    c = Consumer(0, 0)
    monkeypatch.setattr("labkit.consumers.streams.time_ns", lambda: 1_250_000_000)  # the clock read at dispatch
    on_event = fleet.on_sse(c)
    data = event_json((7, "t", 1_000_000_000, b'{"created_ns":5,"x":{"created_ns":6}}')).decode()
    on_event("7", "t", data)
    on_event(None, "t", data)  # no id: not an event the fleet can resume after
    on_event("8", "t", '"created_ns":1')  # not an event object
    on_event("9", "error", '{"reason":"backpressure: 1001 events"}')
    counters = fleet.counters()
    assert counters["frames"] == 1 and counters["bad_frames"] == 2 and counters["backpressure_drops_seen"] == 1
    assert c.cursor == 7 and counters["lag"]["p50"] == pytest.approx(250, rel=1e-3)
