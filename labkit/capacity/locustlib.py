"""What the locustfiles in ``scenarios/`` share: options, one request each, and the lag metric.

The locustfiles hold only User classes; each task calls one function here.
Importing this module imports Locust (and gevent's monkey-patching), so only
locustfiles import it; nothing here touches the network at import.

Options are Locust custom arguments, shown in the web UI too, each with an
environment variable as its default (``LABKIT_SECRET`` and friends), so a
secret never has to appear on a command line.

Delivery lag (publish -> receiver record) is fired into Locust's stats as
request type ``LAG``, name ``delivery``, so it shows in the web UI, the CSV
files and the HTML report. Locust rounds its percentiles; ``DeliveryLag``
keeps HdrHistograms beside them (merged from workers on the master through
``report_to_master``/``worker_report``) and writes them next to the CSV files
as ``<csv prefix>_lag_hdr.json``.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import orjson
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from labkit.capacity.fanout import ensure_subscriptions, subscriber_names
from labkit.capacity.lag import LagHistograms, LagTracker, ReceiverRecords, summary_ms
from labkit.config import DEFAULT_API_KEY
from labkit.wire.retryafter import parse_retry_after
from labkit.wire.signing import Signer, consumer_key

log = logging.getLogger("labkit.capacity")

LAG_TYPE = "LAG"
LAG_NAME = "delivery"
LAG_READ_EVERY_S = 0.2
MAX_PAGES_PER_POLL = 100
DEFAULT_BACKOFF_S = 1.0  # after a 429/503 without a readable Retry-After


# -- options -----------------------------------------------------------------------------


def option(environment: Environment, name: str, default: Any = None) -> Any:
    """A custom argument's value; its default when Locust parsed no options (run_single_user)."""
    value = getattr(environment.parsed_options, name, None) if environment.parsed_options is not None else None
    return default if value is None else value


def _add(parser: Any, flag: str, env: str | None, **kwargs: Any) -> None:
    if env is not None:
        kwargs["env_var"] = env  # configargparse: the variable, when set, is the default
        kwargs["help"] = f"{kwargs.get('help', '')} [env {env}]"
    parser.add_argument(flag, **kwargs)


def add_polling_arguments(parser: Any) -> None:
    _add(parser, "--api-key", "LABKIT_API_KEY", default=DEFAULT_API_KEY, is_secret=True, help="provider API key")
    _add(parser, "--poll-interval", "LABKIT_POLL_INTERVAL", type=float, default=1.0, help="seconds between one poller's polls")
    _add(
        parser,
        "--long-poll-wait",
        "LABKIT_LONG_POLL_WAIT",
        type=float,
        default=0.0,
        help="long polling: seconds the provider may hold a poll (0: off)",
    )
    _add(parser, "--page-limit", None, type=int, default=100, help="events per page")
    _add(
        parser,
        "--audience",
        "LABKIT_AUDIENCE",
        default="broadcast",
        choices=["broadcast", "per-consumer"],
        help="per-consumer: each user polls its own consumer's feed with its own key (c<i>, made from --consumer-key-secret)",
    )
    _add(
        parser, "--consumer-key-secret", "LABKIT_CONSUMER_KEY_SECRET", default="", is_secret=True, help="the provider's consumer-key secret"
    )
    _add(
        parser, "--consumers", "LABKIT_CONSUMERS", type=int, default=0, help="per-consumer: the consumers c0.. events go to (0: unbounded)"
    )
    _add(parser, "--worker-count", "LABKIT_WORKERS", type=int, default=1, help="per-consumer: Locust workers sharing the consumers")
    _add(parser, "--start-cursor", "LABKIT_START_CURSOR", default="0", help="cursor a new poller starts after")


def add_ingest_arguments(parser: Any) -> None:
    _add(parser, "--webhook-secret", "LABKIT_SECRET", default="", is_secret=True, help="the receiver's whsec_ secret")
    _add(parser, "--send-interval", "LABKIT_SEND_INTERVAL", type=float, default=1.0, help="seconds between one sender's webhooks")
    _add(parser, "--resend-ratio", None, type=float, default=0.1, help="share of sends that repeat the previous webhook-id")
    _add(parser, "--payload-bytes", None, type=int, default=256, help="bytes of payload per event")
    _add(parser, "--subscriber", None, default="ingest", help="path segment: POST /webhook/<subscriber>")


def add_fanout_arguments(parser: Any) -> None:
    _add(parser, "--api-key", "LABKIT_API_KEY", default=DEFAULT_API_KEY, is_secret=True, help="provider API key")
    _add(parser, "--webhook-secret", "LABKIT_SECRET", default="", is_secret=True, help="the receiver's whsec_ secret")
    _add(parser, "--send-interval", "LABKIT_SEND_INTERVAL", type=float, default=1.0, help="seconds between one publisher's events")
    _add(parser, "--payload-bytes", None, type=int, default=256, help="bytes of payload per event")
    _add(parser, "--receiver-url", "LABKIT_RECEIVER_URL", default="http://127.0.0.1:8001", help="receiver the subscriptions call")
    _add(
        parser,
        "--receiver-db",
        "LABKIT_RECEIVER_DB",
        default="",
        help="the receiver's SQLite file (labkit serve receiver --db): where lag is read",
    )
    _add(parser, "--subscriptions", "LABKIT_SUBSCRIPTIONS", type=int, default=1, help="subscriptions each event fans out to")
    parser.add_argument("--keep-subscriptions", action="store_true", default=False, help="use the fanout-<i> subscriptions as they are")
    _add(parser, "--lag-timeout", None, type=float, default=30.0, help="seconds after which an undelivered event counts as failed")
    _add(parser, "--lag-out", "LABKIT_LAG_OUT", default="", help="precise lag histograms (default: <csv prefix>_lag_hdr.json)")


class Timetable:
    """A User's wait_time for one task every ``period`` seconds, on a fixed timetable.

    Like Locust's ``constant_pacing``, with two differences that matter when
    counting throughput per step: ``constant_pacing`` returns 0 on its first
    call, so every new user runs its task twice back to back; and users that
    Locust spawns in one batch would all fire in the same instant, every
    period, a thundering herd real consumers do not form. ``start()`` (from
    ``on_start``) waits a random part of one period, so the users' phases
    spread evenly. A task that overruns its slot starts at once; missed slots
    are skipped, not made up in a burst. Both are coordinated omission, so
    ``on_late(dropped)`` hears of each late start and the slots skipped before
    it (``RequestLatency.late`` counts them per second).
    """

    def __init__(self, period_s: float, rng: random.Random | None = None, on_late: Callable[[int], None] | None = None) -> None:
        if not period_s > 0:
            raise ValueError("a timetable needs a period > 0")
        self.period = period_s
        self.offset = (rng or random).uniform(0, period_s)
        self.due = time.monotonic()
        self.on_late = on_late

    def start(self) -> None:
        """Wait for this user's phase; the first task runs when this returns."""
        gevent.sleep(self.offset)
        self.due = time.monotonic()

    def wait(self) -> float:
        now = time.monotonic()
        self.due += self.period
        behind = now - self.due
        if behind > self.period:
            self.due = now
        if behind > 0 and self.on_late is not None:
            self.on_late(int(behind // self.period))
        return max(0.0, self.due - now)


_users_started = itertools.count()


def next_consumer(environment: Environment) -> str:
    """The consumer a new user follows: c<i>, the process's users interleaved with the other workers', wrapping at ``--consumers``."""
    runner = environment.runner
    worker = int(getattr(runner, "worker_index", 0) or 0) if isinstance(runner, WorkerRunner) else 0
    workers = max(1, int(option(environment, "worker_count", 1)))
    index = next(_users_started) * workers + worker % workers
    limit = int(option(environment, "consumers", 0))
    return f"c{index % limit if limit > 0 else index}"


def auth_headers(environment: Environment) -> dict[str, str]:
    return {"authorization": f"Bearer {option(environment, 'api_key', DEFAULT_API_KEY)}"}


def _retry_after(headers: Any) -> float:
    """The server's Retry-After (labkit's one parser and cap), or 1 s when it gives none."""
    seconds = parse_retry_after(headers.get("retry-after"))
    return DEFAULT_BACKOFF_S if seconds is None else seconds


_logged: set[str] = set()


def _log_once(message: str) -> None:
    if message not in _logged:
        _logged.add(message)
        log.error(message)


def _payload(nbytes: int) -> dict[str, str]:
    return {"pad": "x" * max(0, nbytes - 10)}


# -- polling ------------------------------------------------------------------------------


@dataclass
class Feed:
    """One poller's place in the provider's change feed."""

    headers: dict[str, str]
    after: str = "0"
    etag: str | None = None
    page_limit: int = 100
    wait_s: float = 0.0

    @classmethod
    def from_environment(cls, environment: Environment) -> Feed:
        headers = auth_headers(environment)
        if option(environment, "audience", "broadcast") == "per-consumer":
            # the user's own consumer and key: its feed holds that consumer's events only (an account-scoped API)
            secret = str(option(environment, "consumer_key_secret", ""))
            headers = {"authorization": f"Bearer {consumer_key(secret, next_consumer(environment))}"}
        return cls(
            headers=headers,
            after=str(option(environment, "start_cursor", "0")),
            page_limit=int(option(environment, "page_limit", 100)),
            wait_s=float(option(environment, "long_poll_wait", 0.0)),
        )

    def url(self) -> str:
        wait = f"&wait={self.wait_s:g}" if self.wait_s > 0 else ""
        return f"/events?after={self.after}&limit={self.page_limit}{wait}"


def poll_feed(client: Any, feed: Feed) -> int:
    """One poll: ask with If-None-Match, follow pages until caught up; returns events seen."""
    seen = 0
    for page in range(MAX_PAGES_PER_POLL):
        headers = dict(feed.headers)
        if feed.etag:
            headers["if-none-match"] = feed.etag
        name = "/events (next page)" if page else ("/events?wait" if feed.wait_s > 0 else "/events")
        backoff = 0.0
        has_more = False
        with client.get(feed.url(), headers=headers, name=name, catch_response=True) as resp:
            status = resp.status_code
            if status == 304:
                resp.success()
            elif status == 429:
                backoff = _retry_after(resp.headers)
                resp.failure("429 rate limited")
            elif status != 200:
                resp.failure(f"HTTP {status}")
            else:
                try:
                    body = orjson.loads(resp.content)
                    feed.after = str(body["next"])
                    has_more = bool(body.get("has_more"))
                    seen += len(body.get("data") or ())
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    resp.failure("malformed feed page")
                else:
                    feed.etag = resp.headers.get("etag")
                    resp.success()
        if backoff:
            gevent.sleep(backoff)  # obey Retry-After; the pacing absorbs the pause
        if not has_more:
            break
    return seen


# -- webhook ingest -----------------------------------------------------------------------


@dataclass
class WebhookSource:
    """Signed Standard Webhooks, a share of them retries carrying the same webhook-id."""

    signer: Signer
    path: str
    resend_ratio: float = 0.1
    payload_bytes: int = 256
    rng: random.Random = field(default_factory=random.Random)
    last: tuple[str, bytes] | None = None

    @classmethod
    def from_environment(cls, environment: Environment) -> WebhookSource:
        secret = str(option(environment, "webhook_secret", "") or os.environ.get("LABKIT_SECRET", ""))
        if not secret:
            _log_once("webhook_ingest needs the receiver's secret: set LABKIT_SECRET or --webhook-secret")
            raise StopUser()
        return cls(
            signer=Signer([secret]),
            path=f"/webhook/{option(environment, 'subscriber', 'ingest')}",
            resend_ratio=float(option(environment, "resend_ratio", 0.1)),
            payload_bytes=int(option(environment, "payload_bytes", 256)),
        )

    def next(self) -> tuple[str, bytes, bool]:
        """``(webhook_id, body, is_resend)``."""
        if self.last is not None and self.rng.random() < self.resend_ratio:
            return (*self.last, True)
        event_id = self.rng.getrandbits(62) + 1
        now = time.time_ns()
        body = orjson.dumps(
            {
                "type": "capacity.ingest",
                "timestamp": now // 1_000_000_000,
                "data": {"id": event_id, "type": "capacity.ingest", "created_ns": now, "payload": _payload(self.payload_bytes)},
            }
        )
        self.last = (f"msg_{uuid.uuid4().hex}", body)
        return (*self.last, False)


def send_webhook(client: Any, source: WebhookSource) -> None:
    """POST one signed webhook; a resend must be acknowledged too (200 duplicate, or 204 if the first was lost)."""
    msg_id, body, resend = source.next()
    headers = {"content-type": "application/json", **source.signer.headers(msg_id, body)}
    name = f"{source.path} (resend)" if resend else source.path
    with client.post(source.path, data=body, headers=headers, name=name, catch_response=True) as resp:
        if resp.status_code in (200, 204):
            resp.success()
        else:
            resp.failure(f"HTTP {resp.status_code}")


# -- publish and fan-out ------------------------------------------------------------------


@dataclass
class Publisher:
    headers: dict[str, str]
    body: bytes

    @classmethod
    def from_environment(cls, environment: Environment) -> Publisher:
        body = orjson.dumps({"type": "capacity.fanout", "payload": _payload(int(option(environment, "payload_bytes", 256)))})
        return cls(headers={**auth_headers(environment), "content-type": "application/json"}, body=body)


def publish_event(client: Any, publisher: Publisher, lag: DeliveryLag) -> None:
    """POST one event; its id and ``created_ns`` start the clock of its delivery lag."""
    backoff = 0.0
    with client.post("/events", data=publisher.body, headers=publisher.headers, name="/events", catch_response=True) as resp:
        if resp.status_code == 201:
            try:
                created = orjson.loads(resp.content)
                lag.published(int(created["id"]), int(created["created_ns"]))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                resp.failure("malformed publish response")
            else:
                resp.success()
        elif resp.status_code == 429:
            backoff = _retry_after(resp.headers)
            resp.failure("429 rate limited")
        else:
            resp.failure(f"HTTP {resp.status_code}")
    if backoff:
        gevent.sleep(backoff)


class DeliveryLagError(Exception):
    """An event a subscriber did not record within the lag timeout."""


class DeliveryLag:
    """Publish -> receiver-record lag as Locust request type LAG, with precise histograms beside it.

    ``attach(events)`` wires it into a Locust run: subscriptions on test start
    (master or local), a reader greenlet on every node that runs users, worker
    histograms merged on the master, and the file written when Locust quits.
    """

    def __init__(self) -> None:
        self.tracker: LagTracker | None = None
        self.histograms = LagHistograms()
        self._reader: ReceiverRecords | None = None
        self._greenlet: Any = None
        self._environment: Environment | None = None

    def attach(self, events: Any) -> None:
        events.init.add_listener(self._on_init)
        events.test_start.add_listener(self._on_test_start)
        events.test_stop.add_listener(self._on_test_stop)
        events.report_to_master.add_listener(self._on_report_to_master)
        events.worker_report.add_listener(self._on_worker_report)
        events.quitting.add_listener(self._on_quitting)

    # called by the User
    def published(self, event_id: int, created_ns: int) -> None:
        if self.tracker is not None:
            self.tracker.published(event_id, created_ns)

    def summary(self) -> dict[str, Any]:
        return summary_ms(self.histograms.window())

    # -- listeners ------------------------------------------------------------------------

    def _on_init(self, environment: Environment, **_: Any) -> None:
        self._environment = environment
        web_ui = getattr(environment, "web_ui", None)
        if web_ui is not None and not isinstance(environment.runner, WorkerRunner):

            @web_ui.app.route("/labkit/lag")
            def _lag() -> Any:  # precise percentiles beside Locust's rounded ones
                return {"delivery_lag_ms": self.summary(), "source": "HdrHistogram, 3 significant digits"}

    def _on_test_start(self, environment: Environment, **_: Any) -> None:
        self._environment = environment
        count = int(option(environment, "subscriptions", 1))
        names = subscriber_names(count)
        runner = environment.runner
        if not isinstance(runner, WorkerRunner) and not option(environment, "keep_subscriptions", False):
            secret = str(option(environment, "webhook_secret", "") or os.environ.get("LABKIT_SECRET", ""))
            if not secret:
                raise ValueError("publish_fanout needs the receiver's secret: set LABKIT_SECRET or --webhook-secret")
            ensure_subscriptions(
                environment.host or "http://127.0.0.1:8000",
                str(option(environment, "receiver_url", "http://127.0.0.1:8001")),
                secret,
                count,
                api_key=str(option(environment, "api_key", DEFAULT_API_KEY)),
            )
            log.info("fan-out: %d subscription(s) %s", count, ", ".join(names))
        if isinstance(runner, MasterRunner):
            return
        self.tracker = LagTracker(names, float(option(environment, "lag_timeout", 30.0)))
        db = str(option(environment, "receiver_db", "") or "")
        if not db:
            log.error("delivery lag not measured: give the receiver's SQLite file (LABKIT_RECEIVER_DB or --receiver-db)")
            return
        self._reader = ReceiverRecords(db)
        self._greenlet = gevent.spawn(self._read_loop, environment)

    def _read_loop(self, environment: Environment) -> None:
        while True:
            self._collect(environment)
            gevent.sleep(LAG_READ_EVERY_S)

    def _collect(self, environment: Environment) -> None:
        tracker, reader = self.tracker, self._reader
        if tracker is None or reader is None:
            return
        oldest = tracker.oldest()
        if oldest is not None:
            fire = environment.events.request.fire
            for s in tracker.collect(reader.rows_since(tracker.consumers, oldest)):
                self.histograms.record(s)
                fire(request_type=LAG_TYPE, name=LAG_NAME, response_time=s.lag_us / 1000, response_length=0, exception=None, context={})
            for o in tracker.expire(time.time_ns()):
                err = DeliveryLagError(f"not recorded by {o.consumer} within {tracker.timeout_ns / 1e9:g} s")
                fire(request_type=LAG_TYPE, name=LAG_NAME, response_time=o.waited_us / 1000, response_length=0, exception=err, context={})

    def _on_test_stop(self, environment: Environment, **_: Any) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
            self._greenlet = None
            self._collect(environment)
            if self.tracker is not None and len(self.tracker):
                log.info("delivery lag: %d event(s) still in flight at stop, not counted", len(self.tracker))
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _on_report_to_master(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        data["labkit_lag"] = self.histograms.take_encoded()

    def _on_worker_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        self.histograms.merge_encoded(data.get("labkit_lag") or {})

    def _on_quitting(self, environment: Environment, **_: Any) -> None:
        if isinstance(environment.runner, WorkerRunner):
            return
        path = str(option(environment, "lag_out", "") or "")
        prefix = option(environment, "csv_prefix", None)
        if not path and prefix:
            path = f"{prefix}_lag_hdr.json"
        s = self.summary()
        if s["count"]:
            log.info(
                "delivery lag (HdrHistogram, precise): n=%d p50=%.3f p90=%.3f p99=%.3f max=%.3f ms",
                s["count"],
                s["p50"],
                s["p90"],
                s["p99"],
                s["max"],
            )
        if path:
            self.histograms.write(path)
