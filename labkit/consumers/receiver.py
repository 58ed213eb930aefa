"""The webhook receiver: verify, de-duplicate, record; and misbehave on request.

A receiver is an open door on the internet, so it trusts nothing before the
signature checks out: it reads the raw body under a size cap, verifies the
Standard Webhooks signature over exactly those bytes, and only then parses.
Delivery is at least once, so the ``webhook-id`` is the idempotency key: a
retry is acknowledged (or the sender would keep retrying) but processed once.

Faults (gone, down windows, a failure rate, added latency) are decided before
verification and recording, so a request answered with a failure leaves no
trace but its counter: exactly what a sender's retry logic must cope with.
With ``fault_trigger = "signal"`` the faults (all but down windows) act only
between a SIGUSR1 and the next SIGUSR2, so a failure run can switch them on
and off at chosen moments without restarting the process.

Routes::

    POST /webhook                 subscriber "default"
    POST /webhook/{subscriber}    one receiver process can stand in for many subscribers
    GET  /healthz
    GET  /stats                   the same JSON the stats file holds (with workers: all of them, merged)
    GET  /stats/local             this worker's own (what a sibling worker merges)

With ``processes`` > 1 the receiver runs as workers on one socket
(``labkit.consumers.receiver_workers``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import random
import re
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from labkit.config import ReceiverSettings
from labkit.consumers.processes import merge_stats
from labkit.consumers.records import RecordStore
from labkit.consumers.stats import StatsWriter
from labkit.wire.metering import SERVER_WIRE, WireCounter, counting_client, now_ns
from labkit.wire.signing import SignatureError, Verifier

DEFAULT_SUBSCRIBER = "default"
MAX_ID_CHARS = 256
MAX_EVENT_ID = 2**63 - 1  # SQLite INTEGER: a larger id must be a 400, not an OverflowError
FETCH_TIMEOUT_S = 10.0
FETCH_CONCURRENCY = 64
# Standard Webhooks header syntax, strictly: the library parses timestamps with float() (so
# "T.999", "0T", "1796_088382" pass) and signatures with a base64 decoder that skips junk.
TIMESTAMP_RE = re.compile(r"[1-9][0-9]{0,17}")
SIGNATURE_BYTES = 32  # HMAC-SHA256
MAX_SIGNATURES = 8  # a rotation sends two; more is not a sender of ours


class Rejected(Exception):
    """A request the receiver refuses: HTTP status and the reason it gives."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def parse_message(body: bytes) -> list[tuple[int, bool]]:
    """The events of a webhook body as (event_id, thin) pairs; raises ``Rejected`` (400).

    One event: ``{"type", "timestamp", "data": {"id", "type", "created_ns", "payload"}}``;
    a batch: ``{"type": "batch", ..., "data": {"events": [...]}}``. A thin event
    has no ``payload`` and is fetched from the provider before it counts.
    """
    try:
        msg = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Rejected(400, "malformed JSON") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("data"), dict):
        raise Rejected(400, "malformed message")
    data = msg["data"]
    if msg.get("type") == "batch":
        items = data.get("events")
        if not isinstance(items, list) or not items:
            raise Rejected(400, "malformed batch")
    else:
        items = [data]
    out: list[tuple[int, bool]] = []
    for item in items:
        if not isinstance(item, dict):
            raise Rejected(400, "malformed event")
        event_id = item.get("id")
        # bool is an int in Python; an event id is not.
        if type(event_id) is not int or not 0 <= event_id <= MAX_EVENT_ID:
            raise Rejected(400, "malformed event id")
        out.append((event_id, "payload" not in item))
    return out


def check_header_syntax(timestamp: str, signature: str) -> None:
    """Refuse (401) a ``webhook-timestamp`` that is not plain digits, or a ``webhook-signature`` that is
    not space-separated ``v1,<strict base64 of 32 bytes>``; empty (missing) headers are left to the verifier.
    """
    if timestamp and not TIMESTAMP_RE.fullmatch(timestamp):
        raise Rejected(401, "malformed webhook-timestamp")
    if not signature:
        return
    parts = signature.split(" ")
    if len(parts) > MAX_SIGNATURES:
        raise Rejected(401, "malformed webhook-signature")
    for part in parts:
        version, sep, sig = part.partition(",")
        if version != "v1" or not sep:
            raise Rejected(401, "malformed webhook-signature")
        try:
            raw = base64.b64decode(sig, validate=True)
        except (binascii.Error, ValueError):
            raise Rejected(401, "malformed webhook-signature") from None
        if len(raw) != SIGNATURE_BYTES:
            raise Rejected(401, "malformed webhook-signature")


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes whatever Content-Length claims."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise Rejected(413, "body too large")
        except ValueError:
            raise Rejected(400, "malformed content-length") from None
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:  # a lying or absent Content-Length (chunked upload)
                raise Rejected(413, "body too large")
            chunks.append(chunk)
    except ClientDisconnect:
        raise Rejected(400, "client disconnected") from None
    return b"".join(chunks)


class Receiver:
    """The receiver's state: settings, record store, counters and the fault dice."""

    def __init__(self, settings: ReceiverSettings) -> None:
        self.settings = settings
        self.verifier = Verifier(settings.secrets)
        self.rng = random.Random(settings.seed)
        self.store: RecordStore | None = None
        self.fetch_wire = WireCounter()
        self.client: httpx.AsyncClient | None = None
        self.started = time.monotonic()
        self.requests = 0
        self.accepted = 0
        self.duplicates = 0
        self.events_recorded = 0
        self.duplicate_events = 0
        self.fetches = 0
        self.fetch_errors = 0
        self.rejected: dict[str, int] = {}
        self.faults: dict[str, int] = {}
        self.faults_armed = settings.fault_trigger == "always"
        self.stats = StatsWriter("receiver", settings.stats_path, self.counters, self.wire)

    # -- lifecycle ------------------------------------------------------------------

    def arm_faults(self, armed: bool) -> None:
        self.faults_armed = armed

    async def open(self) -> None:
        self.started = time.monotonic()  # down windows count from here
        if self.settings.fault_trigger == "signal":
            loop = asyncio.get_running_loop()
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # not the main thread
                loop.add_signal_handler(signal.SIGUSR1, self.arm_faults, True)
                loop.add_signal_handler(signal.SIGUSR2, self.arm_faults, False)
        self._ensure_store()
        if self.settings.provider_url:
            self.client = counting_client(
                self.fetch_wire,
                concurrency=FETCH_CONCURRENCY,
                timeout=FETCH_TIMEOUT_S,
                base_url=self.settings.provider_url,
                headers={"authorization": f"Bearer {self.settings.api_key}"},
            )
        self.stats.start()

    async def close(self) -> None:
        await self.stats.stop()
        if self.client is not None:
            await self.client.aclose()
            self.client = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def _ensure_store(self) -> RecordStore:
        if self.store is None:
            self.store = RecordStore(self.settings.db_path)
        return self.store

    # -- what the stats file and GET /stats show -------------------------------------

    def counters(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "events_recorded": self.events_recorded,
            "duplicate_events": self.duplicate_events,
            "fetches": self.fetches,
            "fetch_errors": self.fetch_errors,
            "rejected": dict(self.rejected),
            "faults": dict(self.faults),
            "fetch_wire": self.fetch_wire.snapshot(),
        }

    def wire(self) -> dict[str, int]:
        """Everything this process put on or took off the wire: served webhooks plus thin fetches."""
        s, f = SERVER_WIRE.snapshot(), self.fetch_wire.snapshot()
        return {k: s[k] + f[k] for k in s}

    # -- one webhook ----------------------------------------------------------------

    async def handle(self, request: Request, subscriber: str) -> Response:
        self.requests += 1
        try:
            response = await self._handle(request, subscriber)
        except Rejected as exc:
            self.rejected[exc.reason] = self.rejected.get(exc.reason, 0) + 1
            response = JSONResponse({"detail": exc.reason}, status_code=exc.status)
        if self.settings.delay_ms > 0 and self.faults_armed:
            await asyncio.sleep(self.settings.delay_ms / 1000)
        return response

    def _fault(self) -> Response | None:
        """The injected failure for this request, if any (decided before anything is trusted)."""
        s = self.settings
        status: int | None = None
        armed = self.faults_armed
        if s.gone and armed:
            status = 410
        else:
            t = time.monotonic() - self.started
            if any(a <= t < b for a, b in s.down_windows):
                status = 503
            elif armed and s.fail_rate > 0 and self.rng.random() < s.fail_rate:
                status = s.fail_status
        if status is None:
            return None
        key = str(status)
        self.faults[key] = self.faults.get(key, 0) + 1
        headers = {}
        if s.retry_after_s is not None and status != 410:
            headers["retry-after"] = f"{s.retry_after_s:g}"
        return Response(status_code=status, headers=headers)

    async def _handle(self, request: Request, subscriber: str) -> Response:
        if len(subscriber) > MAX_ID_CHARS:
            raise Rejected(400, "subscriber name too long")
        body = await read_body(request, self.settings.max_body_bytes)
        fault = self._fault()
        if fault is not None:
            return fault
        if self.settings.verify:
            headers = request.headers
            check_header_syntax(headers.get("webhook-timestamp", ""), headers.get("webhook-signature", ""))
            try:
                self.verifier.verify(body, request.headers)
            except SignatureError as exc:
                raise Rejected(401, str(exc)) from None
        webhook_id = request.headers.get("webhook-id", "")
        if len(webhook_id) > MAX_ID_CHARS:
            raise Rejected(400, "webhook-id too long")
        events = parse_message(body)
        if not webhook_id:
            # Only reachable with verify off (a benchmark's bare POSTs): key on the events instead.
            webhook_id = f"evt_{events[0][0]}_{events[-1][0]}_{len(events)}"
        store = self._ensure_store()
        try:
            thin = [e for e, is_thin in events if is_thin]
            if thin:
                # Check first, so a retried thin message is not fetched again; otherwise the insert
                # below finds a duplicate by itself (one query fewer per webhook).
                if store.seen_message(subscriber, webhook_id):
                    store.record_repeats(subscriber, [e for e, _ in events])
                    return self._duplicate()
                await self._fetch(thin)
            outcome = store.record_message(subscriber, webhook_id, [e for e, _ in events], now_ns())
        except sqlite3.Error:
            raise Rejected(503, "record store unavailable") from None
        if outcome is None:  # a concurrent retry of the same message won the insert
            return self._duplicate()
        self.accepted += 1
        self.events_recorded += outcome.recorded
        self.duplicate_events += outcome.duplicate_events
        return Response(status_code=204)

    def _duplicate(self) -> Response:
        self.duplicates += 1
        return Response(b'{"duplicate":true}', status_code=200, media_type="application/json")

    async def _fetch(self, event_ids: list[int]) -> None:
        """Fetch thin events' bodies from the provider; the traffic is part of the cost of thin events."""
        if self.client is None:
            # No provider to ask (a stand-alone receiver): the id alone is recorded.
            return
        client = self.client

        async def one(event_id: int) -> int:
            self.fetches += 1
            try:
                resp = await client.get(f"/events/{event_id}")
                await resp.aread()
                return resp.status_code
            except httpx.HTTPError:
                return 0

        statuses = await asyncio.gather(*(one(e) for e in event_ids))
        bad = [s for s in statuses if s != 200]
        if bad:
            self.fetch_errors += len(bad)
            if 404 in bad:
                raise Rejected(400, "unknown event")
            raise Rejected(503, "could not fetch event")


async def merged_stats(own: dict[str, Any], peers: Sequence[str]) -> dict[str, Any]:
    """This worker's stats merged with every sibling's, read at the same moment (exact, not the files' last write)."""
    async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, verify=False) as client:  # loopback siblings, own certificate

        async def one(url: str) -> dict[str, Any]:
            resp = await client.get(f"{url}/stats/local")
            return dict(resp.json())

        try:
            others = await asyncio.gather(*(one(u) for u in peers))
        except (httpx.HTTPError, ValueError):
            raise Rejected(503, "a receiver worker did not answer") from None
    return merge_stats([own, *others])


def create_app(settings: ReceiverSettings) -> FastAPI:
    """The receiver as an ASGI app; the lifespan opens the record store and the stats writer."""
    receiver = Receiver(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await receiver.open()
        try:
            yield
        finally:
            await receiver.close()

    app = FastAPI(title="labkit receiver", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.receiver = receiver

    async def webhook_default(request: Request) -> Response:
        return await receiver.handle(request, DEFAULT_SUBSCRIBER)

    async def webhook(request: Request) -> Response:
        return await receiver.handle(request, request.path_params["subscriber"])

    # The hot routes are plain Starlette routes: FastAPI's per-request dependency solving cost
    # 10-20 % of the receiver's CPU per webhook (``labkit bench``, receiver ingest).
    app.router.add_route("/webhook", webhook_default, methods=["POST"])
    app.router.add_route("/webhook/{subscriber}", webhook, methods=["POST"])

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/stats")
    async def stats() -> Any:
        if not settings.peers:
            return receiver.stats.snapshot()
        try:
            return await merged_stats(receiver.stats.snapshot(), settings.peers)
        except Rejected as exc:
            return JSONResponse({"detail": exc.reason}, status_code=exc.status)

    @app.get("/stats/local")
    async def stats_local() -> dict[str, Any]:
        return receiver.stats.snapshot()

    return app
