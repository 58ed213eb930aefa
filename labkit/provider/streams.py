"""The provider's stream hub: one read of each new event, fanned out to every open stream.

A stream (SSE or WebSocket) first catches up from the event log in pages,
then goes live: from then on the hub hands it each new event. On a publish
the hub reads the new rows once (one indexed query, not one per stream),
encodes each once (the SSE frame and the JSON text are shared by every
stream) and appends it to the queue of every live stream whose type filter
matches, waking the stream's writer.

A writer that sits parked may offer the hub a ``push``: a synchronous
attempt to hand events to its transport at once (the SSE writer's is
``stream_routes.send_now`` on the ASGI send). Instead of waking such a writer,
the fan-out notes the stream, and one callback right after it (the publishing
request has its answer by then) pushes each noted stream's queue as one write.
10,000 streams then cost 10,000 sends, not 10,000 task wake-ups, futures and
resumed coroutine chains as well; events published together still leave in
one write per stream. A push that would have to wait (the socket's buffers are
full) declines and the writer is woken to send the queue itself, so order,
backpressure and the cursor work as for any queued event.

Backpressure: a queue holds what a stream has been handed but not yet
written to its socket. uvicorn stops a writer while the socket's buffers are
full, so a reader that falls behind shows up as a growing queue; past
``queue_max_events`` or ``queue_max_bytes`` the hub drops the stream with a
stated reason, counts it, and frees its queue. A queue only grows while the
stream is live; a stream that catches up reads the log one bounded page at a
time (at most ``catchup_max_bytes`` of frames, at least one event) and its
writer blocks on a full socket instead. Either way a writer that waits for
its socket longer than ``stall_timeout_s`` makes no progress: the hub's
watcher drops it the same way (``Stream.since`` says since when it waits). The
consumer resumes from its cursor when it reconnects. Memory per stream is
therefore bounded by the queue limits, one catch-up write and the transport's
write buffer, for at most ``stall_timeout_s`` + ``drop_grace_s`` when the
reader stops.

Catch-up is race-free because the event loop is the only writer: the switch
to live happens in the same synchronous step as the check that the log holds
nothing newer than the stream's cursor (``Store.head`` is in memory), so no
publish can fall between the two.

Shutdown: when the server starts to stop, ``end_all`` ends every stream with
a stated reason (an SSE ``error`` event, a WebSocket close 1012), so the
server does not wait out its graceful timeout for responses that never end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import orjson
from fastapi.sse import format_sse_event

from labkit.config import EVENT_STREAM, WS, StreamLimits
from labkit.provider.protocol import MAX_CACHED_TYPES
from labkit.provider.schema import Row
from labkit.provider.store import Store

log = logging.getLogger("labkit.provider.streams")
SHUTTING_DOWN = "the provider is shutting down; resume from your cursor"


class Encoded(NamedTuple):
    """One event as every stream sends it: its id, its type, the SSE frame and the JSON text.

    A named tuple, not a frozen dataclass: one is made per event, and an event
    of one consumer pays for it alone (a frozen dataclass's ``__init__`` cost
    as much as the frame's formatting).
    """

    id: int
    type: str
    sse: bytes
    json: str

    @property
    def size(self) -> int:
        return len(self.sse)


_TYPE_JSON: dict[str, str] = {}  # an event type as JSON, made once per type
_new_encoded = tuple.__new__  # Encoded's own __new__ is a Python function: a call per event more


def encode(row: Row) -> Encoded:
    """The event's JSON (as ``GET /events`` shows it) and its SSE frame: ``event``, ``data``, ``id`` = cursor.

    The JSON is ``dispatcher.event_json``'s, built as text by one f-string
    (a third fewer instructions than formatting bytes with ``%``, counted
    with callgrind): a per-consumer event is encoded for one frame, so its
    cost counts. The payload is the UTF-8 JSON the publisher sent.
    """
    event_id, type_, created_ns, payload = row
    type_json = _TYPE_JSON.get(type_)
    if type_json is None:
        type_json = orjson.dumps(type_).decode()
        if len(_TYPE_JSON) < MAX_CACHED_TYPES:  # bounded: a publisher inventing types cannot grow it without end
            _TYPE_JSON[type_] = type_json
    text = f'{{"id":{event_id},"type":{type_json},"created_ns":{created_ns},"payload":{str(payload, "utf-8")}}}'
    if "\n" in text or "\r" in text:  # a payload sent with line breaks in its whitespace: a data line per line
        frame = format_sse_event(data_str=text, event=type_, id=str(event_id))
    else:  # the same bytes as format_sse_event's
        frame = f"event: {type_}\ndata: {text}\nid: {event_id}\n\n".encode()
    return _new_encoded(Encoded, (event_id, type_, frame, text))


class Stream:
    """One open connection: its cursor, filter, bounded queue and the waiter of its writer."""

    __slots__ = (
        "attached",
        "beat",
        "busy",
        "consumer",
        "cursor",
        "dropped",
        "kind",
        "live",
        "on_drop",
        "push",
        "pushable",
        "queue",
        "queued_bytes",
        "since",
        "types",
        "_waiter",
    )

    def __init__(self, kind: str, cursor: int, types: Sequence[str], consumer: str | None = None) -> None:
        self.kind = kind
        self.cursor = cursor  # the id of the last event handed to the transport
        self.types = tuple(types)
        self.consumer = consumer  # a scoped key's consumer: only its events (audience per-consumer)
        self.live = False
        self.queue: deque[Encoded] = deque()
        self.queued_bytes = 0
        self.dropped: str | None = None  # the reason, once the hub has dropped this stream
        self.attached = True  # counted open by the hub
        self.busy = False  # handed an event since the hub's last heartbeat tick
        self.beat = False  # the hub asks the writer for a heartbeat
        self.on_drop: Callable[[], object] | None = None  # the writer's way to be cut off while blocked
        self.push: Callable[[list[Encoded]], bool] | None = None  # hands events to the transport now; False: it would wait
        self.since = 0.0  # the loop time the writer's pending send began (0: not sending); the stall watcher reads it
        self._waiter: asyncio.Future[None] | None = None
        # Parked in ``wait`` with a push, and not woken since: the fan-out reads this flag on the stream itself
        # instead of the waiter's future (one object less to touch per event; ``offer`` still checks the future).
        self.pushable = False

    @property
    def parked(self) -> bool:
        """The writer waits in ``wait`` and nothing has woken it yet: the hub may push past it."""
        w = self._waiter
        return w is not None and not w.done()

    def offer(self) -> bool:
        """Push the queue to a parked writer's transport in one write (True), or wake the writer to send it."""
        q, w = self.queue, self._waiter
        if not q or self.push is None or w is None or w.done():
            return False  # sent already, or the writer is awake and takes the queue itself
        fresh = list(q) if q[0].id > self.cursor else [e for e in q if e.id > self.cursor]
        if fresh and not self.push(fresh):
            self.wake()
            return False
        q.clear()
        self.queued_bytes = 0
        if fresh:
            self.cursor = fresh[-1].id
        return bool(fresh)

    def wake(self) -> None:
        self.pushable = False
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def wait(self) -> bool:
        """Until the hub has something: True for events or a drop, False for a heartbeat.

        No timer per wait (``wait_for`` costs more than the write it waits for):
        the hub's one ticker asks idle streams for their heartbeats.
        """
        if not (self.queue or self.dropped or self.beat):
            self._waiter = asyncio.get_running_loop().create_future()
            self.pushable = self.push is not None
            try:
                await self._waiter
            finally:
                self._waiter = None
                self.pushable = False
        if self.beat and not self.queue and not self.dropped:
            self.beat = False
            return False
        self.beat = False
        return True

    def take(self) -> Iterator[Encoded]:
        """The queued events newer than the cursor, oldest first, moving the cursor past each."""
        q = self.queue
        while q:
            item = q.popleft()
            self.queued_bytes -= item.size
            if item.id > self.cursor:
                self.cursor = item.id
                yield item


class StreamHub:
    """Every open stream of one provider, the fan-out on publish, and the counters for ``/stats``."""

    def __init__(self, store: Store, limits: StreamLimits) -> None:
        self.store = store
        self.limits = limits
        self.seen = store.head()  # the newest event already fanned out
        self.streams: set[Stream] = set()  # every attached stream, catching up or live
        self.unfiltered: set[Stream] = set()
        self.by_type: dict[str, set[Stream]] = {}
        # A consumer's streams (audience per-consumer): an event is handed to its own consumer's streams only.
        # Tuples, replaced whole when a stream comes or goes (rare; a consumer holds a few streams): the fan-out
        # walks one as it is, with no copy per event, and a drop during the walk replaces the entry instead of
        # changing what is walked.
        self.by_consumer: dict[str | None, tuple[Stream, ...]] = {}  # never a None key: see _fan_out
        self.open_by_kind: dict[str, int] = {EVENT_STREAM: 0, WS: 0}
        self.total = 0
        self.dropped_backpressure = 0  # every drop for a slow or stalled reader
        self.dropped_stalled = 0  # those dropped by the stall deadline
        self._row_bytes = 1024  # the frame size catch-up expects, from its last page
        self.fanned_out = 0  # events handed to streams' queues
        self.pushed = 0  # writes the hub made itself, past a parked writer
        self._ticker: asyncio.Task[None] | None = None
        self._to_push: list[Stream] = []  # parked streams handed events since the last push
        self._pusher: asyncio.Handle | None = None

    # -- connections ----------------------------------------------------------------

    @property
    def open(self) -> int:
        return self.open_by_kind[EVENT_STREAM] + self.open_by_kind[WS]

    def full(self) -> bool:
        return self.open >= self.limits.max_streams

    def attach(self, kind: str, cursor: int, types: Sequence[str], consumer: str | None = None) -> Stream:
        """A new stream (of ``consumer``'s events only, when given), counted open; it receives nothing until ``catch_up`` makes it live."""
        s = Stream(kind, cursor, types, consumer)
        if self._ticker is None:
            with contextlib.suppress(RuntimeError):  # no running loop: a unit test drives tick() itself
                self._ticker = asyncio.get_running_loop().create_task(self._beat(), name="stream-heartbeats")
        self.open_by_kind[kind] += 1
        self.total += 1
        self.streams.add(s)
        return s

    def detach(self, s: Stream) -> None:
        """The connection ended (either side): forget it and free its queue. Idempotent."""
        if not s.attached:
            return
        s.attached = False
        self.streams.discard(s)
        self.open_by_kind[s.kind] -= 1
        if s.consumer is not None:
            rest = tuple(x for x in self.by_consumer.get(s.consumer, ()) if x is not s)
            if rest:
                self.by_consumer[s.consumer] = rest
            else:
                self.by_consumer.pop(s.consumer, None)
        elif s.types:
            for t in s.types:
                subs = self.by_type.get(t)
                if subs is not None:
                    subs.discard(s)
                    if not subs:
                        del self.by_type[t]
        else:
            self.unfiltered.discard(s)
        s.queue.clear()
        s.queued_bytes = 0
        s.live = False

    def catch_up(self, s: Stream) -> list[Encoded]:
        """The next page of stored events after the stream's cursor; [] once it is live.

        A page holds at most ``catchup_page`` events and ``catchup_max_bytes``
        of SSE frames (always at least one event): the rows read are sized
        from the previous page's frames, and rows past the budget are read
        again next time. Each call moves the cursor past the page it returns.
        When the log holds nothing newer, the stream goes live in the same
        step (see the module doc).
        """
        if s.live or s.dropped:
            return []
        if self.store.head(s.types, s.consumer) > s.cursor:
            budget = self.limits.catchup_max_bytes
            limit = max(1, min(self.limits.catchup_page, budget // self._row_bytes))
            page: list[Encoded] = []
            size = 0
            for row in self.store.page(s.cursor, limit, s.types, s.consumer):
                item = encode(row)
                if page and size + item.size > budget:
                    break
                page.append(item)
                size += item.size
            if page:
                self._row_bytes = max(64, size // len(page))
                s.cursor = page[-1].id
                return page
        s.live = True
        if s.consumer is not None:
            self.by_consumer[s.consumer] = (*self.by_consumer.get(s.consumer, ()), s)
        elif s.types:
            for t in s.types:
                self.by_type.setdefault(t, set()).add(s)
        else:
            self.unfiltered.add(s)
        return []

    # -- publishing -----------------------------------------------------------------

    def notify(self, published: Sequence[tuple[Row, str | None]] = ()) -> None:
        """Fan out every event committed since the last call (called once per publish).

        ``published``: the rows the publish has just written, each with its
        consumer. When they are exactly the events after the last one fanned
        out, the hub hands them on as they are instead of reading them back
        from the log: a query and its row objects fewer per publish, which for
        an event of one consumer is a large part of what its one frame costs.
        """
        if not self.unfiltered and not self.by_type and not self.by_consumer:
            self.seen = self.store.head()
            return
        if published and published[0][0][0] == self.seen + 1 and published[-1][0][0] == self.store.head():
            self.seen = published[-1][0][0]
            self._fan_out(published)
            return
        while self.store.head() > self.seen:
            rows = self.store.page_routed(self.seen, self.limits.catchup_page)
            if not rows:
                break
            self.seen = rows[-1][0][0]
            self._fan_out(rows)

    def _fan_out(self, rows: Sequence[tuple[Row, str | None]]) -> None:
        """Encode each event once and hand it to the streams it concerns, found through the indexes (never by scanning every stream).

        One loop for the whole publish, the hand-over inline: an event of one
        consumer goes to one stream, and a call or a list made per event cost
        as much as its hand-over. Parked writers' pushes are noted and made
        once after the publish, as one write per stream.
        """
        max_events, max_bytes = self.limits.queue_max_events, self.limits.queue_max_bytes
        unfiltered, by_type, by_consumer, to_push = self.unfiltered, self.by_type, self.by_consumer, self._to_push
        handed = 0
        for row, consumer in rows:
            type_ = row[1]
            mine = by_consumer.get(consumer)  # None for an event of every consumer: None is never a key
            if unfiltered or by_type:
                typed = by_type.get(type_)
                # one copy of the streams concerned (a drop below detaches a stream from the set being walked)
                if unfiltered or typed:
                    targets: Sequence[Stream] = [*unfiltered, *(typed or ()), *(mine or ())]
                elif mine:
                    targets = mine
                else:
                    continue
            elif mine:  # only consumers' streams are open (audience per-consumer): the event's own, walked as they are
                targets = mine
            else:
                continue
            item = encode(row)
            size = len(item.sse)
            for s in targets:
                if s.types and type_ not in s.types:  # a consumer's stream of other types (the others match by their index)
                    continue
                handed += 1
                q = s.queue
                if len(q) >= max_events or s.queued_bytes + size > max_bytes:
                    self.drop(s, f"backpressure: {len(q)} events ({s.queued_bytes} bytes) not yet written; resume from id {s.cursor}")
                    continue
                q.append(item)
                s.queued_bytes += size
                s.busy = True
                if not s.pushable:  # not parked: the writer takes the queue itself
                    s.wake()
                elif len(q) == 1:  # noted once, whatever else is queued before the push
                    to_push.append(s)
        self.fanned_out += handed
        if to_push and self._pusher is None:
            try:
                self._pusher = asyncio.get_running_loop().call_soon(self._push)
            except RuntimeError:  # no running loop: a unit test drives the hub itself
                self._push()

    def _push(self) -> None:
        self._pusher = None
        streams, self._to_push = self._to_push, []
        for s in streams:
            if s.offer():
                self.pushed += 1

    def drop(self, s: Stream, reason: str, *, stalled: bool = False) -> None:
        """Stop feeding ``s`` and tell its writer why; the writer closes the connection."""
        if s.dropped is not None:
            return
        s.dropped = reason
        self.dropped_backpressure += 1
        self.dropped_stalled += stalled
        self.detach(s)
        s.wake()
        if s.on_drop is not None:
            s.on_drop()
        log.info("stream dropped (%s): %s", s.kind, reason)

    def end_all(self, reason: str = SHUTTING_DOWN) -> int:
        """End every stream (the provider is stopping); how many. Each writer sends ``reason`` and closes.

        Without this, uvicorn waits for every open response to finish before it
        stops, and a stream never finishes: each stop would wait out the
        server's whole graceful timeout. Not counted as a backpressure drop.
        """
        streams = set(self.streams)  # live ones and those still catching up
        self.by_consumer.clear()  # every stream goes: no consumer's tuple rebuilt once per stream it holds
        for s in streams:
            if s.dropped is None:
                s.dropped = reason
                self.detach(s)
                s.wake()
                if s.on_drop is not None:
                    s.on_drop()
        return len(streams)

    # -- heartbeats -----------------------------------------------------------------

    def tick(self) -> None:
        """Ask every live stream that was handed nothing since the last tick for a heartbeat."""
        for subs in (self.unfiltered, *self.by_type.values(), *self.by_consumer.values()):
            for s in subs:
                if s.busy:
                    s.busy = False
                else:
                    s.beat = True
                    s.wake()

    def reap(self, now: float) -> int:
        """Drop every stream whose writer has waited on its socket for more than ``stall_timeout_s``; how many."""
        limit = self.limits.stall_timeout_s
        stalled = [s for s in self.streams if s.since and now - s.since > limit]
        for s in stalled:
            where = "live" if s.live else "catching up"
            self.drop(s, f"stalled ({where}): a write waited {limit:g} s for the socket; resume from your last id", stalled=True)
        return len(stalled)

    async def _beat(self) -> None:
        """Heartbeats every ``heartbeat_s``; the stall check four times per ``stall_timeout_s`` (or as often as heartbeats)."""
        loop = asyncio.get_running_loop()
        period = max(0.01, min(self.limits.heartbeat_s, self.limits.stall_timeout_s / 4))
        next_beat = loop.time() + self.limits.heartbeat_s
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            self.reap(now)
            if now >= next_beat:
                next_beat = now + self.limits.heartbeat_s
                self.tick()

    def close(self) -> None:
        """Stop the heartbeat ticker (the provider's shutdown)."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self._pusher is not None:
            self._pusher.cancel()
            self._pusher = None

    # -- stats ----------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        return {
            "streams_open": self.open,
            "streams_open_sse": self.open_by_kind[EVENT_STREAM],
            "streams_open_websocket": self.open_by_kind[WS],
            "streams_total": self.total,
            "streams_dropped_backpressure": self.dropped_backpressure,
            "streams_dropped_stalled": self.dropped_stalled,
            "stream_events_fanned_out": self.fanned_out,
            "stream_writes_pushed": self.pushed,
        }
