"""The poller fleet: many consumers following the provider's cursor feed, on a fixed timetable.

Open loop, to avoid coordinated omission: poller ``i``'s ``k``-th poll is
intended at ``t0 + phase_i + k * interval`` whatever the previous poll took,
and its lateness (actual start minus intended start) goes into a histogram.
A poll that overruns the next tick skips the ticks it missed (and counts
them) instead of bunching up. With long polling (``wait > 0``) the provider
holds the request, so the next poll starts as soon as a response arrives.

Each poll asks ``GET /events?after=<cursor>&limit=<n>`` (with
``If-None-Match`` when conditional) and follows pages while ``has_more``.
A page's events and the cursor after them are recorded in one transaction
(see ``records``), so a restarted fleet resumes where it stopped, losing and
repeating nothing. A ``snapshot`` fleet polls ``GET /snapshot`` (the latest
state only) and records the event each new version stands for, which shows
the updates a snapshot poller never sees.

Scaling (5,000 pollers at 5 s in one process): one asyncio task per poller
sleeping on the loop's own timer heap (the loop's heap *is* the scheduler, and
a task costs no more than a heap entry plus a coroutine); nothing per poll but
one request, an ``orjson`` parse and two histogram records. The HTTP client is
the expensive part. By default (``http_client="raw"``) each poller owns one
keep-alive connection of ``rawhttp``, as a real consumer would, at 25-90 µs of
CPU per request. With ``http_client="httpx"`` the fleet shares
``counting_client`` pools, 0.7-1 ms per request: fine for tens of pollers, a
saturated core at 1,000 requests/s. httpcore's pool scans its connections on
every request (quadratically when many are idle), so its pool is split into
shards of at most ``POOL_SHARD`` pollers sharing one ``WireCounter``.

Past one core, ``processes = N`` (or "auto") splits the pollers over N worker
processes under one supervisor (``labkit.consumers.processes``): one stats
file, counters and histograms merged exactly.

``python -m labkit.consumers.poller SETTINGS_JSON_FILE`` runs a fleet until
SIGTERM or SIGINT, then writes its final stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import random
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from labkit.config import PollerSettings
from labkit.consumers import fleetmain, processes
from labkit.consumers.rawhttp import Connection
from labkit.consumers.records import RecordStore
from labkit.consumers.stats import Latency, StatsWriter
from labkit.errors import WireError
from labkit.servers import openfiles
from labkit.wire.metering import WireCounter, counting_client, now_ns
from labkit.wire.retryafter import parse_retry_after

# Pollers per httpx client: small enough that httpcore's per-request pool scans stay cheap.
POOL_SHARD = 32
LONG_POLL_SLACK_S = 10.0  # the request timeout exceeds the hold the provider was asked for

# What one poll found.
NEWS, EMPTY, THROTTLED, FAILED = "news", "empty", "throttled", "failed"


class Poller:
    """One consumer of the feed: its name, where it is in the feed, and its timetable."""

    __slots__ = ("_base", "_tail", "consumer", "cursor", "empty", "etag", "index", "interval_s", "path", "phase_s", "polls")

    def __init__(self, index: int, settings: PollerSettings, phase_s: float, cursor: str = "0", etag: str | None = None) -> None:
        self.index = index
        self.consumer = f"{settings.consumer_prefix}{settings.first_index + index}"
        self.polls = self.empty = 0  # this poller's own counts (reported per consumer under an audience)
        self.phase_s = phase_s
        self.interval_s = settings.interval_s
        self.etag = etag
        if settings.snapshot:
            self._base, self._tail = "/snapshot", ""
        else:
            self._base = "/events?after="
            self._tail = f"&limit={settings.page_limit}"
            if settings.long_poll_wait_s > 0:
                self._tail += f"&wait={settings.long_poll_wait_s:g}"
        self.cursor = cursor
        self.path = ""
        self.advance(cursor, etag)

    def advance(self, cursor: str, etag: str | None) -> None:
        """Move to ``cursor``; the request path is rebuilt only when the cursor changes."""
        if cursor != self.cursor or not self.path:
            self.cursor = cursor
            self.path = self._base if not self._tail else f"{self._base}{quote(cursor, safe='')}{self._tail}"
        self.etag = etag


@dataclass
class FleetResult:
    """What a fleet did, once it has stopped."""

    pollers: int
    elapsed_s: float
    counters: dict[str, Any]
    wire: dict[str, int]

    @property
    def events(self) -> int:
        return int(self.counters.get("events", 0))


class Fleet:
    """The pollers, their shared clients and store, and the counters the stats file shows."""

    def __init__(self, settings: PollerSettings) -> None:
        self.settings = settings
        self.wire = WireCounter()
        self.lateness = Latency()
        self.rtt = Latency()
        self.polls = 0
        self.empty_polls = 0
        self.not_modified = 0
        self.pages = 0
        self.requests = 0
        self.throttled = 0
        self.errors = 0
        self.skipped_ticks = 0
        self.events = 0
        self.duplicate_events = 0
        self.versions_seen = 0
        self.versions_missed = 0
        self.store: RecordStore | None = None
        self.clients: list[Any] = []  # httpx.AsyncClient shards, or one rawhttp.Connection per poller
        self.pollers: list[Poller] = []
        self.last_version: dict[int, int] = {}
        wait = settings.long_poll_wait_s
        self.timeout = max(settings.timeout_s, wait + LONG_POLL_SLACK_S) if wait > 0 else settings.timeout_s
        self.stats = StatsWriter(
            "poller",
            settings.stats_path,
            self.counters,
            self.wire.snapshot,
            histograms=lambda: {"lateness": self.lateness, "rtt": self.rtt},
        )

    def counters(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "pollers": self.settings.pollers,
            "polls": self.polls,
            "empty_polls": self.empty_polls,
            "not_modified": self.not_modified,
            "pages": self.pages,
            "requests": self.requests,
            "throttled": self.throttled,
            "errors": self.errors,
            "skipped_ticks": self.skipped_ticks,
            "events": self.events,
            "duplicate_events": self.duplicate_events,
            "lateness": self.lateness.summary_ms(),
            "rtt": self.rtt.summary_ms(),
        }
        if self.settings.api_keys:  # an audience: each poller's own feed, so its own polls and empty polls
            out["polls_by_consumer"] = {p.consumer: p.polls for p in self.pollers}
            out["empty_polls_by_consumer"] = {p.consumer: p.empty for p in self.pollers}
        if self.settings.snapshot:
            out["versions_seen"] = self.versions_seen
            out["versions_missed"] = self.versions_missed
        return out

    # -- lifecycle ------------------------------------------------------------------

    def open(self) -> None:
        s = self.settings
        self.store = RecordStore(s.db_path)
        stored = self.store.cursors()
        rng = random.Random(s.seed)
        # Timetabled pollers start at a uniform phase in [0, T), the model's assumption. Long
        # pollers keep a request outstanding, so they only spread their first connects (<= 1 s).
        spread = min(s.interval_s, 1.0) if s.long_poll_wait_s > 0 and not s.snapshot else s.interval_s
        for i in range(s.pollers):
            cursor, etag = stored.get(f"{s.consumer_prefix}{s.first_index + i}", ("0", None))
            self.pollers.append(Poller(i, s, rng.uniform(0, spread), cursor, etag))
            if s.snapshot and cursor.isdigit():
                self.last_version[i] = int(cursor)
        headers = {"authorization": f"Bearer {s.api_key}", "accept": "application/json", "user-agent": "labkit-poller"}
        # Loading the CA bundle takes ~20 ms: once for the fleet, not once per client.
        tls = httpx.create_ssl_context()
        if s.ca_file:  # a lab provider serving HTTPS with a locally made CA (labkit.servers.tls)
            tls.load_verify_locations(cafile=s.ca_file)
        if s.http_client == "raw":
            self.clients = [
                Connection(s.base_url, self.wire, headers=self.headers_of(i, headers), timeout=self.timeout, ssl_context=tls)
                for i in range(s.pollers)
            ]
            return
        shards = max(1, math.ceil(s.pollers / POOL_SHARD))
        per = math.ceil(s.pollers / shards)
        self.clients = [
            counting_client(self.wire, concurrency=per, timeout=s.timeout_s, base_url=s.base_url, headers=headers, verify=tls)
            for _ in range(shards)
        ]

    def headers_of(self, index: int, headers: dict[str, str]) -> dict[str, str]:
        """Poller ``index``'s headers: with its own API key when each poller has one (its own feed)."""
        keys = self.settings.api_keys
        if not keys:
            return headers
        return {**headers, "authorization": f"Bearer {keys[self.settings.first_index + index]}"}

    async def close(self) -> None:
        await self.stats.stop()
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.aclose()
        self.clients = []
        if self.store is not None:
            self.store.close()
            self.store = None

    # -- the timetable --------------------------------------------------------------

    async def run_poller(self, p: Poller, t0: float) -> None:
        """Poll on ``p``'s timetable until cancelled."""
        s = self.settings
        loop = asyncio.get_running_loop()
        client = self.clients[p.index % len(self.clients)]
        long_poll = s.long_poll_wait_s > 0 and not s.snapshot
        intended = t0 + p.phase_s
        while True:
            delay = intended - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            started = loop.time()
            self.lateness.record((started - intended) * 1e6)
            self.polls += 1
            p.polls += 1
            outcome, retry_after = await (self.poll_snapshot(p, client) if s.snapshot else self.poll(p, client))
            if outcome == THROTTLED and retry_after:
                await asyncio.sleep(retry_after)
            if s.adaptive:
                if outcome == NEWS:
                    p.interval_s = s.interval_s
                elif outcome == EMPTY:
                    p.interval_s = min(p.interval_s * 2, max(s.max_interval_s, s.interval_s))
            now = loop.time()
            if long_poll:
                # The provider held the request, or Retry-After was already slept: ask again at
                # once. After a failure, wait one interval rather than hammer a sick provider;
                # and a provider that answers "nothing" without holding gets no more than one
                # empty poll per min(interval, wait), not a busy loop.
                if outcome == NEWS or (outcome == THROTTLED and retry_after):
                    intended = now
                elif outcome == EMPTY:
                    intended = max(now, started + min(p.interval_s, s.long_poll_wait_s))
                else:
                    intended = now + p.interval_s
                continue
            intended += p.interval_s
            if intended < now:  # the poll overran one or more ticks: skip them, do not bunch up
                missed = int((now - intended) // p.interval_s) + 1
                intended += missed * p.interval_s
                self.skipped_ticks += missed

    async def _get(self, client: Any, p: Poller, conditional: bool) -> Any:
        """One request, timed and counted; None when it failed on the way."""
        headers = {"if-none-match": p.etag} if conditional and p.etag else None
        if self.settings.api_keys and self.settings.http_client != "raw":  # a shared client: the poller's key per request
            headers = self.headers_of(p.index, headers or {})
        self.requests += 1
        start = time.perf_counter()
        try:
            resp = await client.get(p.path, headers=headers, timeout=self.timeout)
        except (WireError, httpx.HTTPError):
            self.errors += 1
            return None
        self.rtt.record((time.perf_counter() - start) * 1e6)
        return resp

    def _refused(self, resp: Any) -> tuple[str, float | None]:
        if resp.status_code == 429:
            self.throttled += 1
            return THROTTLED, parse_retry_after(resp.headers.get("retry-after"))
        self.errors += 1
        return FAILED, None

    async def poll(self, p: Poller, client: Any) -> tuple[str, float | None]:
        """One poll of the feed: the first page and every page after it while ``has_more``."""
        got = 0
        first = True
        while True:
            resp = await self._get(client, p, self.settings.conditional and first)
            if resp is None:
                return (NEWS if got else FAILED), None
            if resp.status_code == 304:
                self.not_modified += 1
                break
            if resp.status_code != 200:
                outcome = self._refused(resp)
                return (NEWS, None) if got else outcome
            try:
                page = orjson.loads(resp.content)
                data = page["data"]
                cursor = str(page["next"])
                has_more = bool(page.get("has_more"))
                ids = [int(e["id"]) for e in data]
                young = self.too_young(data)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                self.errors += 1
                return (NEWS if got else FAILED), None
            self.pages += 1
            # Keep an ETag only from a feed's last page: a validator taken mid-way could match
            # while pages remain unread (after a crash, or a failed next page) and hide them.
            etag = None if has_more else resp.headers.get("etag")
            if young is not None:
                # a reconciler leaves the events push may still be delivering: stop before the first, read it again next poll
                ids, has_more, etag = ids[:young], False, None
                cursor = str(ids[-1]) if ids else p.cursor
            if ids or cursor != p.cursor:
                try:
                    out = self.store.record_page(p.consumer, ids, now_ns(), cursor, etag)  # type: ignore[union-attr]
                except sqlite3.Error:
                    self.errors += 1
                    return (NEWS if got else FAILED), None
                self.events += out.recorded
                self.duplicate_events += out.duplicate_events
            p.advance(cursor, etag)
            got += len(ids)
            first = False
            if not has_more or not ids:
                break
        if got:
            return NEWS, None
        self.empty_polls += 1
        p.empty += 1
        return EMPTY, None

    def too_young(self, data: list[Any]) -> int | None:
        """The index of the page's first event younger than ``min_age_s`` (None: keep the whole page).

        The feed's cursor is the id of the last event read (``labkit.provider.feed``),
        so a page cut after event ``e`` continues from ``e``'s id.
        """
        min_age = self.settings.min_age_s
        if min_age <= 0:
            return None
        newest = now_ns() - int(min_age * 1e9)
        return next((i for i, e in enumerate(data) if int(e["created_ns"]) > newest), None)

    async def poll_snapshot(self, p: Poller, client: Any) -> tuple[str, float | None]:
        """One poll of ``GET /snapshot``: a new version records the event it stands for."""
        resp = await self._get(client, p, self.settings.conditional)
        if resp is None:
            return FAILED, None
        if resp.status_code == 304:
            self.not_modified += 1
            self.empty_polls += 1
            return EMPTY, None
        if resp.status_code != 200:
            return self._refused(resp)
        try:
            snap = orjson.loads(resp.content)
            version = int(snap["version"])
            event_id = int(snap["id"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.errors += 1
            return FAILED, None
        self.pages += 1
        etag = resp.headers.get("etag")
        last = self.last_version.get(p.index)
        if last is not None and version <= last:
            p.etag = etag
            self.empty_polls += 1
            return EMPTY, None
        try:
            out = self.store.record_page(p.consumer, [event_id], now_ns(), str(version), etag)  # type: ignore[union-attr]
        except sqlite3.Error:
            self.errors += 1
            return FAILED, None
        self.versions_seen += 1
        self.versions_missed += max(version - (last or 0) - 1, 0)
        self.events += out.recorded
        self.duplicate_events += out.duplicate_events
        self.last_version[p.index] = version
        p.advance(str(version), etag)
        return NEWS, None


async def run_fleet(settings: PollerSettings, stop: asyncio.Event) -> FleetResult:
    """Run ``settings.pollers`` pollers until ``stop`` is set; in-flight polls are cancelled."""
    fleet = Fleet(settings)
    loop = asyncio.get_running_loop()
    started = loop.time()
    fleet.open()
    tasks: list[asyncio.Task[None]] = []
    freezer: asyncio.TimerHandle | None = None
    try:
        # SIGUSR1 asks for an exact snapshot (<stats>.snap): the runner brackets its publishing window with it.
        # The handler first: the first stats file tells the runner it may send SIGUSR1, whose default action kills.
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signal.SIGUSR1, fleet.stats.write_snapshot)
        fleet.stats.start()
        t0 = loop.time()
        tasks = [loop.create_task(fleet.run_poller(p, t0), name=p.consumer) for p in fleet.pollers]
        # Once every poller has polled (and connected), its objects live as long as the fleet; a
        # full collection walking them stalls the loop ~100 ms at 5,000 pollers and shows up as
        # lateness. Freezing them keeps the collector to short-lived objects.
        freezer = loop.call_later(min(settings.interval_s, 60.0) + 1.0, gc.freeze)
        stopper = loop.create_task(stop.wait())
        # A poller task only ends by raising, which is a bug: stop the fleet and let it show.
        done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        for task in done:
            if task is not stopper and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        if freezer is not None:
            freezer.cancel()
            gc.unfreeze()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await fleet.close()
    return FleetResult(settings.pollers, loop.time() - started, fleet.counters(), fleet.wire.snapshot())


def main(settings: PollerSettings) -> FleetResult:
    """Run a fleet in the foreground until SIGTERM or SIGINT, then write the final stats.

    With ``processes`` > 1 this process supervises that many fleets, each a slice of the pollers
    (``labkit.consumers.processes``), and its stats file is their exact merge.
    """
    # each poller holds a connection: more than one process may hold take more processes
    parts = max(processes.resolve(settings.processes), math.ceil(settings.pollers / openfiles.connections_per_process()))
    if parts > 1:
        workers = processes.fleet_workers(settings, "pollers", parts)
        code, merged, elapsed = processes.supervise_fleet("poller", settings, "pollers", "labkit.consumers.poller", workers)
        if code:
            raise SystemExit(code)
        return FleetResult(settings.pollers, elapsed, merged.get("counters", {}), merged.get("wire", {}))
    fleetmain.raise_fd_limit(settings.pollers)
    return fleetmain.run_until_signalled(lambda stop: run_fleet(settings, stop))


def _cli(argv: list[str]) -> int:
    return fleetmain.cli(argv, "labkit.consumers.poller", "poller", PollerSettings, main)


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))
