"""The webhook dispatcher: drains the outbox into signed POSTs, with retries.

One asyncio task owns the loop. It wakes when a publish sets its event, when
an attempt finishes, or when a timer says a retry (or a batch window) is due.
Each round it writes the finished attempts in one transaction, selects due
pending rows in one indexed query, fetches their events in one more, and
starts up to ``dispatch_concurrency`` requests. Attempts run as tasks that
only do HTTP; all database work stays in the loop, one round at a time.

Retry schedule: ``retry_schedule_s[k]`` is the delay before attempt k+1, so
entry 0 is the delay before the first attempt (the spec's "immediately") and
a delivery makes at most ``len(retry_schedule_s)`` attempts before it goes
``dead``. Delays are multiplied by ``time_scale`` and jittered by
``±retry_jitter``; a ``Retry-After`` on 429/502/503/504 is a floor in real
seconds. A 410 disables the subscription and its pending deliveries.

Disable policy (Svix's): an endpoint whose attempts have all failed for
``disable_after_failing_s`` (5 days by default, multiplied by ``time_scale``
like the retry schedule) is disabled too: its status, reason and time are
recorded in the store, its pending deliveries are disabled, and no new ones
are queued. A success restarts the clock. Svix's time rule was chosen over a
failure-ratio breaker (Convoy's) because it does not depend on the traffic
rate: a quiet endpoint and a busy one get the same grace. The clock lives in
memory, so a provider restart gives a dead endpoint a fresh grace period
(later, never earlier, than the policy says).

During a secret rotation each message carries two signatures (new, old)
until the overlap ends; the signer cache is rebuilt when it does.

Shutdown cancels attempts in flight without recording them: their rows stay
``pending`` and are sent again after a restart (at-least-once; the same
``webhook-id`` lets receivers de-duplicate).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from labkit.config import ProviderSettings
from labkit.provider.delivery import DeliveryClient
from labkit.provider.store import AttemptResult, Delivery, Store, Subscription
from labkit.wire.errors import ConnectTimeout, PoolTimeout, WireError, WireTimeout
from labkit.wire.retryafter import parse_retry_after
from labkit.wire.signing import Signer

log = logging.getLogger("labkit.provider.dispatcher")

USER_AGENT = "labkit-provider/0.1"
THROTTLE_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(slots=True)
class _Endpoint:
    """A cached subscription with its signer, so rounds do not query or re-decode secrets."""

    sub: Subscription
    signer: Signer
    secrets: tuple[str, ...]


def iso_utc(ns: int) -> str:
    """Nanoseconds since the epoch as ISO 8601 UTC with microseconds, e.g. 2024-05-01T12:00:00.123456Z."""
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def event_json(row: tuple[int, str, int, bytes], with_payload: bool = True) -> bytes:
    """One event as JSON, splicing the stored payload bytes instead of re-serialising them."""
    event_id, type_, created_ns, payload = row
    head = b'{"id":%d,"type":%s,"created_ns":%d' % (event_id, orjson.dumps(type_), created_ns)
    if with_payload:
        return head + b',"payload":' + bytes(payload) + b"}"
    return head + b"}"


def webhook_body(rows: list[tuple[int, str, int, bytes]], *, batch: bool, thin: bool) -> bytes:
    """The Standard Webhooks body: ``{"type","timestamp","data"}``; a batch nests ``data.events``.

    The timestamp is the (last) event's creation time, so a retry sends the same bytes.
    """
    stamp = orjson.dumps(iso_utc(rows[-1][2]))
    if batch:
        events = b",".join(event_json(r, not thin) for r in rows)
        return b'{"type":"batch","timestamp":%s,"data":{"events":[%s]}}' % (stamp, events)
    row = rows[0]
    return b'{"type":%s,"timestamp":%s,"data":%s}' % (orjson.dumps(row[1]), stamp, event_json(row, not thin))


@dataclass(slots=True)
class _Job:
    delivery: Delivery
    url: str
    body: bytes
    headers: dict[str, str]


class Dispatcher:
    """Sends pending deliveries from the store's outbox and records every attempt."""

    def __init__(self, store: Store, settings: ProviderSettings, client: DeliveryClient) -> None:
        self.store = store
        self.settings = settings
        self.client = client
        self._rng = random.Random(settings.seed)
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._done: list[AttemptResult] = []
        self._endpoints: dict[str, _Endpoint] = {}
        self._endpoints_version = -1
        self._endpoints_expire_ns: int | None = None  # when a rotation overlap ends
        self._scale = settings.time_scale
        window = settings.disable_after_failing_s
        self._disable_after_ns = None if window is None else int(window * settings.time_scale * 1e9)
        self._failing_since: dict[str, int] = {}  # subscription id -> end of its first failure since a success
        self._disabled: set[str] = set()
        self.counters: dict[str, int] = defaultdict(int)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Run the loop as a task; it first resumes every pending row left in the db."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="labkit-dispatcher")
        return self._task

    async def stop(self) -> None:
        """Cancel the loop and attempts in flight; record what finished; leave the rest pending."""
        if self._timer is not None:
            self._timer.cancel()
        tasks = [t for t in (self._task, *self._inflight.values()) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._flush()
        self._inflight.clear()
        self._task = None

    def wake(self) -> None:
        """Called on publish, replay or subscription change: something may be due now."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    def stats(self) -> dict[str, int]:
        return {"in_flight": len(self._inflight), **self.counters}

    # -- the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            try:
                self._flush()
                due_ns = self._round()
            except Exception:  # a bug or a broken db: log, back off, keep the provider alive
                log.exception("dispatcher round failed")
                due_ns = time.time_ns() + 1_000_000_000
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if due_ns is not None:
                delay = max((due_ns - time.time_ns()) / 1e9, 0.0)
                self._timer = loop.call_later(delay, self._wake.set)
            await self._wake.wait()

    def _refresh_endpoints(self) -> None:
        expire = self._endpoints_expire_ns
        if self._endpoints_version == self.store.subscriptions_version and (expire is None or time.time_ns() < expire):
            return
        old = self._endpoints
        fresh: dict[str, _Endpoint] = {}
        now = time.time_ns()
        expire = None
        for sub in self.store.subscriptions():
            prev = old.get(sub.id)
            secrets = sub.signing_secrets(now)
            if len(secrets) > 1 and sub.previous_secret_until_ns is not None:
                expire = min(expire or sub.previous_secret_until_ns, sub.previous_secret_until_ns)
            signer = prev.signer if prev and prev.secrets == secrets else Signer(secrets)
            fresh[sub.id] = _Endpoint(sub, signer, secrets)
        self._endpoints = fresh
        self._endpoints_version = self.store.subscriptions_version
        self._endpoints_expire_ns = expire

    def _flush(self) -> None:
        if not self._done:
            return
        done, self._done = self._done, []
        try:
            self.store.record_attempts(done)
        except Exception:
            self._done = done + self._done  # keep them for the next round rather than lose them
            raise
        for r in done:
            self._inflight.pop(r.delivery_id, None)

    def _round(self) -> int | None:
        """Start what is due; return when to look again (ns), or None to wait for a wake-up."""
        self._refresh_endpoints()
        now = time.time_ns()
        free = self.settings.dispatch_concurrency - len(self._inflight)
        wake_at: int | None = None
        if free > 0:
            b = self.settings.batch_max_events
            rows = self.store.due_deliveries(now, free * b + len(self._inflight), skip=self._inflight)
            ready: list[Delivery] = []
            fresh: dict[str, list[Delivery]] = defaultdict(list)
            orphans: list[int] = []
            for row in rows:
                if row.id in self._inflight:
                    continue
                ep = self._endpoints.get(row.subscription_id)
                if ep is None or ep.sub.status != "active":
                    orphans.append(row.id)
                elif b > 1 and not row.batch:
                    fresh[row.subscription_id].append(row)
                else:
                    ready.append(row)
            if orphans:
                self.store.mark_deliveries(orphans, "disabled")
            groups, wake_at = self._group(fresh, now)
            if groups:
                formed = self.store.form_batches(groups)
                self.counters["batches"] += len(formed)
                ready.extend(formed)
            self._launch(ready[:free])
        nxt = self.store.next_due_ns(now)
        if wake_at is not None and (nxt is None or wake_at < nxt):
            return wake_at
        return nxt

    def _group(self, fresh: dict[str, list[Delivery]], now: int) -> tuple[list[tuple[str, list[Delivery]]], int | None]:
        """Chunk fresh single rows per subscription into batches of up to B events.

        A short last chunk waits until its oldest event is ``batch_window_ms`` old.
        """
        b = self.settings.batch_max_events
        window_ns = int(self.settings.batch_window_ms * 1e6)
        groups: list[tuple[str, list[Delivery]]] = []
        wake_at: int | None = None
        for sub_id, rows in fresh.items():
            rows.sort(key=lambda r: r.first_event_id)
            for i in range(0, len(rows), b):
                chunk = rows[i : i + b]
                if len(chunk) < b:
                    ripe = min(r.created_ns for r in chunk) + window_ns
                    if ripe > now:
                        wake_at = ripe if wake_at is None else min(wake_at, ripe)
                        continue
                groups.append((sub_id, chunk))
        return groups, wake_at

    def _launch(self, rows: list[Delivery]) -> None:
        if not rows:
            return
        events = self.store.events_by_id(e for r in rows for e in r.event_ids)
        thin = self.settings.thin_events
        for row in rows:
            ep = self._endpoints[row.subscription_id]
            evs = [events[e] for e in row.event_ids if e in events]
            if not evs:  # events cannot vanish; treat as a bug but do not spin on it
                log.error("delivery %s has no events", row.id)
                self.store.mark_deliveries([row.id], "dead")
                continue
            body = webhook_body(evs, batch=row.batch, thin=thin)
            headers = ep.signer.headers(row.msg_id, body)
            headers["content-type"] = "application/json"
            headers["user-agent"] = USER_AGENT
            job = _Job(row, ep.sub.url, body, headers)
            self._inflight[row.id] = asyncio.create_task(self._attempt(job))

    # -- one attempt --------------------------------------------------------------------

    async def _attempt(self, job: _Job) -> None:
        row = job.delivery
        attempt = row.attempts + 1
        started = time.time_ns()
        status: int | None = None
        error: str | None = None
        retry_after: float | None = None
        sent = received = 0
        try:
            resp = await self.client.post(
                job.url,
                content=job.body,
                headers=job.headers,
                timeout=self.settings.delivery_timeout_s,
                connection_policy=self.settings.connection_policy,
            )
            status = resp.status_code
            sent, received = resp.bytes_sent, resp.bytes_received  # exact, counted on the wire
            if status in THROTTLE_STATUSES:
                retry_after = parse_retry_after(resp.headers.get("retry-after"))
        except WireTimeout as exc:
            error = f"timeout: {exc.__class__.__name__}"
            if not isinstance(exc, (ConnectTimeout, PoolTimeout)):
                sent = len(job.body)
        except WireError as exc:
            error = f"{exc.__class__.__name__}: {exc}"[:300]
        finished = time.time_ns()
        self._done.append(self._outcome(row, attempt, started, finished, status, error, retry_after, sent, received))
        self._wake.set()

    def _outcome(
        self,
        row: Delivery,
        attempt: int,
        started: int,
        finished: int,
        status: int | None,
        error: str | None,
        retry_after: float | None,
        sent: int,
        received: int,
    ) -> AttemptResult:
        result = AttemptResult(row.id, attempt, started, finished, status, error, sent, received, "pending")
        self.counters["attempts"] += 1
        if status is not None and 200 <= status < 300:
            result.new_status = "delivered"
            self.counters["delivered"] += 1
            self._failing_since.pop(row.subscription_id, None)
            return result
        self.counters["failed_attempts"] += 1
        if status == 410:
            result.new_status = "disabled"
            result.disable_subscription = row.subscription_id
            result.disabled_reason = "endpoint answered 410 Gone"
            self.counters["disabled"] += 1
            self._count_disabled(row.subscription_id)
            return result
        reason = self._failing_too_long(row.subscription_id, finished)
        if reason is not None:
            result.new_status = "disabled"
            result.disable_subscription = row.subscription_id
            result.disabled_reason = reason
            return result
        schedule = self.settings.retry_schedule_s
        if attempt >= len(schedule):
            result.new_status = "dead"
            self.counters["dead"] += 1
            return result
        jitter = self.settings.retry_jitter
        factor = 1.0 + self._rng.uniform(-jitter, jitter) if jitter else 1.0
        delay_s = schedule[attempt] * self._scale * factor
        if retry_after is not None:
            delay_s = max(delay_s, retry_after)
        result.next_attempt_ns = finished + int(delay_s * 1e9)
        self.counters["retries_scheduled"] += 1
        return result

    def _failing_too_long(self, sub_id: str, finished_ns: int) -> str | None:
        """The disable policy: the reason to disable ``sub_id`` now, or None while it is within its grace."""
        if self._disable_after_ns is None or sub_id in self._disabled:
            return None
        since = self._failing_since.setdefault(sub_id, finished_ns)
        span_ns = finished_ns - since
        if span_ns < self._disable_after_ns:
            return None
        self._count_disabled(sub_id)
        window = self.settings.disable_after_failing_s
        return (
            f"every attempt failed for {span_ns / 1e9:.3g} s (disable policy: {window:g} s x time_scale {self._scale:g}"
            f" = {self._disable_after_ns / 1e9:.3g} s without a success)"
        )

    def _count_disabled(self, sub_id: str) -> None:
        if sub_id not in self._disabled:
            self._disabled.add(sub_id)
            self.counters["endpoints_disabled"] += 1
