"""The stream consumer fleet: N held streams (SSE or WebSocket) in one process.

Each consumer ``c<i>`` holds one connection to the provider's ``GET /stream``
(SSE, through ``sseclient``: the HTTP core's streaming mode and the one SSE
decoder) or ``WS /ws`` (the ``websockets`` client). Events are recorded
through ``records``, keyed by consumer and event id, so duplicates (a resume
that overlaps, a restart of this process) are recognised and counted, never
recorded twice; a stream
delivers in id order, so a consumer's cursor is its newest recorded event
(read back when the process starts) and needs no write of its own. Writes
are batched: every ``FLUSH_EVERY_S`` one transaction takes what every
connection received, which keeps 10,000 streams at 1 event/s to a hundred
commits a second instead of ten thousand. Per frame the fleet does only
what it must: the event's id comes from the SSE ``id`` field, its
``created_ns`` is found in the data without building the payload, and the
lag goes into a ``LagTally`` that reaches the histogram once per batch.

A connection that ends (the provider dropped it for backpressure, restarted,
or the network failed) reconnects after an exponential backoff with jitter
and resumes after its last id (``Last-Event-ID`` for SSE, the first message
for WebSocket). One sweeper checks every connection for idleness once a
second (no byte, not even a heartbeat, for ``idle_timeout_s``) instead of a
timer per connection.

Counters (the stats file, as the poller's): events, duplicates, delivery
lag (received minus the event's ``created_ns``), connects, reconnects,
backpressure drops seen, errors, and bytes on the wire. SIGUSR1 writes an
exact snapshot (``<stats>.snap``); SIGUSR2 cuts every connection at once
(the failure experiments' "stream dropped mid-flight"), which then resume.

``processes = N`` (or "auto") splits the connections over N worker processes
under one supervisor (``labkit.consumers.processes``), merged exactly. A
process holds one socket per stream, so a fleet of more streams than one
process may open files (``labkit.servers.openfiles``) takes as many more
processes as it needs; and past the ports one source address has, each
process binds its connections to a loopback source address of its own
(127.0.0.2, 127.0.0.3, ...).

``python -m labkit.consumers.streams SETTINGS_JSON_FILE`` runs a fleet until
SIGTERM or SIGINT, then writes its final stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import random
import re
import signal
import sqlite3
import ssl
import sys
from dataclasses import dataclass
from time import time_ns
from typing import Any
from urllib.parse import quote

import orjson

from labkit.config import EVENT_STREAM, StreamConsumerSettings
from labkit.consumers import fleetmain, processes
from labkit.consumers.records import RecordStore
from labkit.consumers.sseclient import open_sse, sse_request
from labkit.consumers.stats import Latency, StatsWriter
from labkit.consumers.wsclient import counting_connection, open_ws
from labkit.servers import openfiles
from labkit.wire.errors import WireError
from labkit.wire.httpclient import HttpConnection, parse_url
from labkit.wire.metering import HIST_MAX_US, HIST_MIN_US, WireCounter

FLUSH_EVERY_S = 0.05
SWEEP_EVERY_S = 1.0
BACKPRESSURE = "backpressure"
# The most processes a fleet spreads its streams over (each up to its open-files limit of them): the fleet's capacity.
MAX_FLEET_PROCESSES = 4


def client_tls(settings: StreamConsumerSettings) -> ssl.SSLContext | None:
    """The TLS context for an https provider: the system's trust, plus the lab's CA when one is given."""
    if not settings.base_url.startswith("https:"):
        return None
    return ssl.create_default_context(cafile=settings.ca_file) if settings.ca_file else ssl.create_default_context()


# The provider writes each event as {"id":..,"type":..,"created_ns":N,"payload":..} (provider.dispatcher.event_json):
# the first "created_ns" key is the event's own, never one inside the payload, which comes after it.
CREATED_NS = re.compile(r'"created_ns":(\d+)')
# HdrHistogram with 3 significant digits keeps 2**11 sub-buckets: a value of more than 11 bits shares its
# counter with every value that has the same 11 leading bits (labkit.wire.metering.new_histogram).
HDR_SUB_BUCKET_BITS = 11


class LagTally:
    """Delivery lags tallied per histogram counter between two batches, then added to the histogram at once.

    Recording each of 10,000 lags an event into the pure-Python HdrHistogram
    cost more than parsing the frame; a tally keyed by the counter's lowest
    value gives the histogram exactly the same counts (and the mean comes
    from the exact sum) with one dictionary update per frame.
    """

    __slots__ = ("counts", "sum_us")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.sum_us = 0.0

    def add(self, lag_ns: int) -> None:
        us = lag_ns // 1000
        if us < HIST_MIN_US:
            us = HIST_MIN_US
        elif us > HIST_MAX_US:
            us = HIST_MAX_US
        shift = us.bit_length() - HDR_SUB_BUCKET_BITS
        if shift > 0:
            us = us >> shift << shift
        self.counts[us] = self.counts.get(us, 0) + 1
        if lag_ns > 0:
            self.sum_us += lag_ns / 1000

    def into(self, lat: Latency) -> None:
        """Move the tally into ``lat`` and start again."""
        if self.counts:
            lat.record_counts(self.counts, self.sum_us)
            self.counts, self.sum_us = {}, 0.0


class Consumer:
    """One held stream: its name, its cursor and its reconnect state."""

    __slots__ = ("attempt", "conn", "connected", "cursor", "index", "name", "ws")

    def __init__(self, index: int, cursor: int) -> None:
        self.index = index
        self.name = f"c{index}"
        self.cursor = cursor  # the id of the last event received
        self.attempt = 0  # failed connects in a row, for the backoff
        self.connected = False
        self.conn: HttpConnection | None = None  # an SSE stream's connection
        self.ws: Any = None


@dataclass
class StreamFleetResult:
    """What a fleet did, once it has stopped."""

    connections: int
    elapsed_s: float
    counters: dict[str, Any]
    wire: dict[str, int]


class StreamFleet:
    """The consumers, the record store, the batch of unrecorded events and the counters."""

    def __init__(self, settings: StreamConsumerSettings) -> None:
        self.settings = settings
        self.wire = WireCounter()
        self.lag = Latency()
        self.lags = LagTally()  # what has arrived since the last batch, not yet in ``lag``
        self.rng = random.Random(settings.seed)
        self.target = parse_url(settings.base_url)
        self.tls = client_tls(settings)
        self.ws_class = counting_connection(self.wire)
        self.source = settings.source_address  # None: the kernel picks the source address
        self.store: RecordStore | None = None
        self.consumers: list[Consumer] = []
        self.pending: list[tuple[str, int, int]] = []  # (consumer, event id, received_ns) not yet recorded
        self.n = {
            "frames": 0,
            "events": 0,
            "duplicate_events": 0,
            "connects": 0,
            "reconnects": 0,
            "connect_errors": 0,
            "http_errors": 0,
            "backpressure_drops_seen": 0,
            "server_closes": 0,
            "idle_timeouts": 0,
            "forced_disconnects": 0,
            "bad_frames": 0,
            "record_errors": 0,
        }
        self.last_received_ns = 0
        self.stats = StatsWriter("streams", settings.stats_path, self.counters, self.wire.snapshot, histograms=self.histograms)

    def histograms(self) -> dict[str, Latency]:
        self.lags.into(self.lag)
        return {"lag": self.lag}

    def counters(self) -> dict[str, Any]:
        self.lags.into(self.lag)
        return {
            "protocol": self.settings.protocol,
            "connections": self.settings.connections,
            # established: the handshake is done (WebSocket) or the 200 has arrived (SSE)
            "connected": sum(1 for c in self.consumers if c.connected and (c.conn is None or c.conn.status == 200)),
            **self.n,
            "last_received_ns": self.last_received_ns,
            "lag": self.lag.summary_ms(),
        }

    def open(self) -> None:
        s = self.settings
        cursors: dict[str, int] = {}
        if s.record:
            self.store = RecordStore(s.db_path)
            cursors = self.store.newest_events()
        for i in range(s.connections):
            n = s.first_index + i  # c<n>: this process may hold one slice of a fleet of several
            self.consumers.append(Consumer(n, cursors.get(f"c{n}", 0)))

    def close(self) -> None:
        self.flush()
        if self.store is not None:
            self.store.close()
            self.store = None

    # -- receiving ------------------------------------------------------------------

    def received(self, c: Consumer, event_id: int, created_ns: int, received_ns: int) -> None:
        """One event arrived on ``c``: count it, measure its lag, queue it for recording."""
        self.n["frames"] += 1
        self.last_received_ns = received_ns
        if created_ns:
            self.lags.add(received_ns - created_ns)
        if event_id > c.cursor:
            c.cursor = event_id
        if self.store is None:
            self.n["events"] += 1
            return
        self.pending.append((c.name, event_id, received_ns))

    def on_sse(self, c: Consumer) -> Any:
        def on_event(event_id: str, event: str, data: str) -> None:
            received_ns = time_ns()  # labkit.wire.metering.now_ns's clock, read as the decoder dispatches
            if event == "error":
                if BACKPRESSURE in data:
                    self.n["backpressure_drops_seen"] += 1
                return
            found = CREATED_NS.search(data)  # the event's time, without building the payload's objects
            if found is None or not data.startswith("{") or not (event_id and event_id.isdigit()):
                self.n["bad_frames"] += 1
                return
            self.received(c, int(event_id), int(found[1]), received_ns)

        return on_event

    def on_ws(self, c: Consumer) -> Any:
        def on_message(text: str | bytes, received_ns: int) -> None:
            try:
                event = orjson.loads(text)
                eid, created = int(event["id"]), int(event["created_ns"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                self.n["bad_frames"] += 1
                return
            self.received(c, eid, created, received_ns)

        return on_message

    def flush(self) -> None:
        """Record the pending events and cursors in one transaction."""
        self.lags.into(self.lag)
        if self.store is None or not self.pending:
            return
        batch = self.pending
        self.pending = []
        try:
            out = self.store.record_stream_batch(batch, {})  # the cursor is the newest recorded event
        except sqlite3.Error:
            self.n["record_errors"] += 1
            self.pending = batch + self.pending
            return
        self.n["events"] += out.recorded
        self.n["duplicate_events"] += out.duplicate_events

    # -- connections ----------------------------------------------------------------

    def backoff_s(self, c: Consumer) -> float:
        """Exponential backoff with jitter: half to all of ``initial * 2**attempt``, capped."""
        s = self.settings
        ceiling = min(s.backoff_max_s, s.backoff_initial_s * 2 ** min(c.attempt, 30))
        return ceiling * self.rng.uniform(0.5, 1.0)

    async def hold(self, c: Consumer, first_delay_s: float) -> None:
        """Keep ``c`` connected until cancelled, reconnecting after each end."""
        await asyncio.sleep(first_delay_s)
        while True:
            ended_ok = await (self.hold_sse(c) if self.settings.protocol == EVENT_STREAM else self.hold_ws(c))
            c.connected = False
            c.conn = c.ws = None
            c.attempt = 0 if ended_ok else c.attempt + 1
            self.n["reconnects"] += 1
            await asyncio.sleep(self.backoff_s(c))

    def key_of(self, c: Consumer) -> str:
        """The API key consumer ``c`` connects with: its own when each has one (its own events only)."""
        keys = self.settings.api_keys
        return keys[c.index] if keys else self.settings.api_key

    def _path(self, c: Consumer) -> str:
        query = f"/stream?after={c.cursor}"
        if self.settings.types:
            query += "&types=" + quote(",".join(self.settings.types), safe=",")
        return query

    async def hold_sse(self, c: Consumer) -> bool:
        """One SSE connection from connect to end; True when it was established (a 200 with data)."""
        s = self.settings
        headers = [("authorization", f"Bearer {self.key_of(c)}"), ("user-agent", "labkit-streams")]
        if c.cursor:
            headers.append(("last-event-id", str(c.cursor)))
        request = sse_request(self.target, self._path(c), headers)
        try:
            conn, done = await open_sse(
                self.target, request, self.wire, self.on_sse(c), tls=self.tls, timeout=s.connect_timeout_s, source=self.source
            )
        except (WireError, OSError):
            self.n["connect_errors"] += 1
            return False
        c.conn = conn
        c.connected = True
        self.n["connects"] += 1
        try:
            ended = await done
        finally:
            conn.close("stopped")
        if ended.status not in (0, 200):
            self.n["http_errors"] += 1
            return False
        self.n["server_closes"] += 1
        return ended.status == 200

    async def hold_ws(self, c: Consumer) -> bool:
        """One WebSocket connection from connect to end; True when it was established."""
        s = self.settings
        url = self.origin_ws_url()
        first = {"after": c.cursor, "types": list(s.types)}
        try:
            ws = await open_ws(url, self.key_of(c), first, self.ws_class, s.connect_timeout_s, self.tls, self.source)
        except (OSError, TimeoutError) as exc:
            status = getattr(getattr(exc.__cause__, "response", None), "status_code", 0)
            self.n["http_errors" if status else "connect_errors"] += 1
            return False
        c.ws = ws
        c.connected = True
        self.n["connects"] += 1
        code = await ws.run(self.on_ws(c))
        if code == 1013:
            self.n["backpressure_drops_seen"] += 1
        elif code == 1008:
            self.n["http_errors"] += 1
            return False
        self.n["server_closes"] += 1
        return True

    def origin_ws_url(self) -> str:
        t = self.target
        return f"{'wss' if t.origin.scheme == 'https' else 'ws'}://{t.host.decode('ascii')}{t.prefix.decode('ascii')}/ws"

    def cut_all(self) -> None:
        """Close every connection now (SIGUSR2); each reconnects and resumes."""
        for c in self.consumers:
            if c.conn is not None:
                c.conn.close("cut by the consumer")
                self.n["forced_disconnects"] += 1
            elif c.ws is not None:
                c.ws.abort()
                self.n["forced_disconnects"] += 1

    def sweep(self, now: float) -> None:
        """Reconnect SSE connections that went quiet for longer than ``idle_timeout_s``."""
        limit = self.settings.idle_timeout_s
        for c in self.consumers:
            p = c.conn
            if p is not None and now - p.last_byte > limit:
                self.n["idle_timeouts"] += 1
                p.close("idle")


async def _every(seconds: float, fn: Any) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(seconds)
        fn(loop.time())


async def run_fleet(settings: StreamConsumerSettings, stop: asyncio.Event) -> StreamFleetResult:
    """Hold ``settings.connections`` streams until ``stop`` is set."""
    fleet = StreamFleet(settings)
    loop = asyncio.get_running_loop()
    started = loop.time()
    fleet.open()
    tasks: list[asyncio.Task[None]] = []
    try:
        # The handlers first: the first stats file tells the runner it may send SIGUSR1, whose default action kills.
        for sig, handler in ((signal.SIGUSR1, fleet.stats.write_snapshot), (signal.SIGUSR2, fleet.cut_all)):
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.add_signal_handler(sig, handler)
        fleet.stats.start()
        spread = settings.connect_spread_s
        tasks = [loop.create_task(fleet.hold(c, fleet.rng.uniform(0, spread)), name=c.name) for c in fleet.consumers]
        tasks.append(loop.create_task(_every(FLUSH_EVERY_S, lambda _now: fleet.flush())))
        tasks.append(loop.create_task(_every(SWEEP_EVERY_S, fleet.sweep)))
        freezer = loop.call_later(spread + 2.0, gc.freeze)  # long-lived connection objects: keep gc pauses short
        stopper = loop.create_task(stop.wait())
        done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        freezer.cancel()
        for task in done:
            if task is not stopper and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        fleet.cut_all()
        gc.unfreeze()
        fleet.close()
        await fleet.stats.stop()
    return StreamFleetResult(settings.connections, loop.time() - started, fleet.counters(), fleet.wire.snapshot())


def fleet_capacity(per_process: int | None = None, per_address: int | None = None) -> int:
    """The most streams one fleet holds here: ``MAX_FLEET_PROCESSES`` processes, each its share of streams."""
    per_process = per_process or openfiles.connections_per_process()
    per_address = per_address or openfiles.connections_per_address()
    return MAX_FLEET_PROCESSES * min(per_process, per_address)


def worker_settings(
    settings: StreamConsumerSettings, per_process: int | None = None, per_address: int | None = None
) -> list[dict[str, Any]]:
    """The fleet's processes, each a slice of the streams: as many as ``processes`` asks, or more when a slice would not fit.

    A process holds at most ``per_process`` streams (its open-files limit, less a reserve)
    and a source address at most ``per_address`` (its ephemeral ports); past that many
    streams in all, each process connects from a loopback address of its own.
    """
    per_process = per_process or openfiles.connections_per_process()
    per_address = per_address or openfiles.connections_per_address()
    share = min(per_process, per_address)
    parts = max(processes.resolve(settings.processes), math.ceil(settings.connections / share))
    workers = processes.fleet_workers(settings, "connections", parts)
    if settings.connections > per_address and settings.source_address is None:
        workers = [{**w, "source_address": openfiles.loopback_source(k)} for k, w in enumerate(workers)]
    return workers


def main(settings: StreamConsumerSettings) -> StreamFleetResult:
    """Run a fleet in the foreground until SIGTERM or SIGINT, then write the final stats.

    With more than one process (``processes`` > 1, or more streams than one process may
    hold) this process supervises that many fleets, each a slice of the connections
    (``labkit.consumers.processes``), and its stats file is their exact merge.
    """
    workers = worker_settings(settings)
    if len(workers) > 1:
        code, merged, elapsed = processes.supervise_fleet("streams", settings, "connections", "labkit.consumers.streams", workers)
        if code:
            raise SystemExit(code)
        return StreamFleetResult(settings.connections, elapsed, merged.get("counters", {}), merged.get("wire", {}))
    fleetmain.raise_fd_limit(settings.connections)
    return fleetmain.run_until_signalled(lambda stop: run_fleet(settings, stop))


def _cli(argv: list[str]) -> int:
    return fleetmain.cli(argv, "labkit.consumers.streams", "streams", StreamConsumerSettings, main)


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))
