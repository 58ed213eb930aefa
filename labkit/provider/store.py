"""The provider's SQLite event log and webhook outbox.

Publishing writes the event and one pending delivery per matching active
subscription in one transaction (the outbox pattern), so a crash or restart
never loses a webhook that was promised: the dispatcher resumes every
``pending`` row it finds. One connection is used from the event-loop thread;
its calls are short and synchronous, which is cheaper than a thread hop. To
keep them short, ``synchronous=OFF``: a commit survives a provider crash or
kill (what the lab needs), not a power cut, and no fsync at a WAL checkpoint
stalls the event loop (up to hundreds of ms on a busy disk).

A delivery row is one webhook message (one ``webhook-id``): a single event, or
a batch of events formed by the dispatcher from single rows. Its ``msg_id``
never changes across retries, so receivers can de-duplicate on it.
"""

from __future__ import annotations

import secrets as _secrets
import sqlite3
import time
from collections.abc import Container, Iterable, Sequence
from typing import Any

import orjson

from labkit.errors import ResultsError
from labkit.provider.log_index import Heads, read_heads
from labkit.provider.schema import (
    DELIVERY_COLS,
    EVENT_COLS,
    SCHEMA,
    AttemptResult,
    Delivery,
    Row,
    Subscription,
    SubscriptionIndex,
    delivery_from_row,
    insert_events,
    subscription_from_row,
)


class Store:
    """The event log, subscriptions and the outbox in one SQLite file (WAL)."""

    def __init__(self, path: str, *, readonly: bool = False) -> None:
        # isolation_level=None: autocommit, with explicit BEGIN for multi-statement writes.
        if readonly:
            try:
                self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
                self._db.execute("SELECT 1 FROM events LIMIT 1")
            except sqlite3.Error as exc:
                raise ResultsError(f"provider database {path} cannot be read: {exc}") from None
        else:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=OFF")  # see the module docstring
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(SCHEMA)
            self._migrate()
        self.readonly = readonly
        # The heads and each consumer's ids, read from the log now by the writer (it appends to them), and by a
        # read-only store only when asked: its one-off reads (the outbox's count, say) never need them.
        self._loaded: Heads | None = None if readonly else read_heads(self._db)
        # Bumped on every subscription change so caches (here and in the dispatcher) refresh.
        self.subscriptions_version = 0
        self._active = SubscriptionIndex([])
        if not readonly:
            self._load_active()

    @property
    def _heads(self) -> Heads:
        if self._loaded is None:
            self._loaded = read_heads(self._db)
        return self._loaded

    def _migrate(self) -> None:
        """Add the columns a database made by an older labkit lacks (secret rotation, the disable time)."""
        cols = {row[1] for row in self._db.execute("PRAGMA table_info(subscriptions)")}
        for name, kind in (
            ("previous_secret", "TEXT"),
            ("previous_secret_until_ns", "INTEGER"),
            ("disabled_ns", "INTEGER"),
            ("consumer", "TEXT"),
        ):
            if name not in cols:
                self._db.execute(f"ALTER TABLE subscriptions ADD COLUMN {name} {kind}")
        if "consumer" not in {row[1] for row in self._db.execute("PRAGMA table_info(events)")}:
            self._db.execute("ALTER TABLE events ADD COLUMN consumer TEXT")
        # A consumer's feed is indexed in memory (labkit.provider.log_index says why): an index on (consumer, id),
        # which a database made by an older labkit has, would cost every insert again.
        self._db.execute("DROP INDEX IF EXISTS events_consumer_id")

    def close(self) -> None:
        self._db.close()

    # -- events -------------------------------------------------------------------------

    def publish(self, type_: str, payload: bytes, first_delay_ns: int = 0, consumer: str | None = None) -> tuple[int, int]:
        """Append an event (of one consumer, when given) and its deliveries in one transaction; return (id, created_ns)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            created = time.time_ns()
            cur = db.execute(
                "INSERT INTO events(type, created_ns, payload, consumer) VALUES (?, ?, ?, ?)", (type_, created, payload, consumer)
            )
            event_id = int(cur.lastrowid or 0)
            subs = self._active.targets(type_, consumer)
            if subs:
                msg_id = f"msg_{event_id}"
                ids = f"[{event_id}]"
                due = created + first_delay_ns
                db.executemany(
                    "INSERT INTO deliveries(subscription_id, msg_id, first_event_id, last_event_id, event_ids,"
                    " status, next_attempt_ns, created_ns) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                    [(sid, msg_id, event_id, event_id, ids, due, created) for sid in subs],
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._heads.moved(event_id, type_, consumer)
        return event_id, created

    def publish_many(self, events: Sequence[tuple[str, bytes, str | None]], first_delay_ns: int = 0) -> list[tuple[Row, str | None]]:
        """Append (type, payload, consumer) events and their deliveries in ONE transaction: each row as stored, with its consumer.

        The ids are consecutive: this connection is the log's only writer and holds the write lock.
        """
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            created = time.time_ns()
            # many rows per INSERT: one statement run per 1,000 rows, not one per row (1.2 us less per row, measured)
            step, last = max(1, min(1000, db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 4)), None
            for i in range(0, len(events), step):
                values: list[Any] = []
                for t, p, c in events[i : i + step]:
                    values.extend((t, created, p, c))
                last = db.execute(insert_events(len(values) // 4), values).lastrowid
            first = int(last or 0) - len(events) + 1
            out = [((first + i, t, created, p), c) for i, (t, p, c) in enumerate(events)]
            if self._active.buckets:
                due, targets = created + first_delay_ns, self._active.targets
                db.executemany(
                    "INSERT INTO deliveries(subscription_id, msg_id, first_event_id, last_event_id, event_ids,"
                    " status, next_attempt_ns, created_ns) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                    [(sid, f"msg_{row[0]}", row[0], row[0], f"[{row[0]}]", due, created) for row, c in out for sid in targets(row[1], c)],
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._heads.appended(out)
        return out

    def head(self, types: Sequence[str] = (), consumer: str | None = None) -> int:
        """The newest event id (among ``types`` and of ``consumer`` when given); 0 for an empty feed. No query."""
        h = self._heads
        if consumer is not None:
            return h.of(consumer, types)
        if not types:
            return h.head
        return max((h.by_type.get(t, 0) for t in types), default=0)

    def _where(self, after: int, limit: int, types: Sequence[str], consumer: str | None) -> tuple[str, list[Any]]:
        """The feed's filter: after the cursor, of these types, of this consumer (each when given).

        A consumer's feed is the ids of its next page, from memory: one lookup by id each.
        """
        if consumer is not None:
            ids = self._heads.page_ids(consumer, after, limit, types, self._of_types)
            return "id IN (SELECT value FROM json_each(?))", [orjson.dumps(ids).decode()]
        where, args = "id > ?", list[Any]([after])
        if types:
            where += f" AND type IN ({','.join('?' * len(types))})"
            args.extend(types)
        return where, args

    def _of_types(self, ids: list[int], types: list[str]) -> list[int]:
        """Those of ``ids`` whose type is one of ``types``, in id order."""
        marks = ",".join("?" * len(types))
        sql = f"SELECT id FROM events WHERE id IN (SELECT value FROM json_each(?)) AND type IN ({marks}) ORDER BY id"
        return [r[0] for r in self._db.execute(sql, (orjson.dumps(ids).decode(), *types))]

    def page(self, after: int, limit: int, types: Sequence[str] = (), consumer: str | None = None) -> list[tuple[int, str, int, bytes]]:
        """Up to ``limit`` events with id > after, oldest first: (id, type, created_ns, payload json)."""
        if not types and consumer is None:
            return self._db.execute(f"SELECT {EVENT_COLS} FROM events WHERE id > ? ORDER BY id LIMIT ?", (after, limit)).fetchall()
        where, args = self._where(after, limit, types, consumer)
        return self._db.execute(f"SELECT {EVENT_COLS} FROM events WHERE {where} ORDER BY id LIMIT ?", (*args, limit)).fetchall()

    def page_routed(self, after: int, limit: int) -> list[tuple[tuple[int, str, int, bytes], str | None]]:
        """``page`` of every event after ``after``, each with its consumer (the stream hub routes by it)."""
        rows = self._db.execute(f"SELECT {EVENT_COLS}, consumer FROM events WHERE id > ? ORDER BY id LIMIT ?", (after, limit))
        return [((r[0], r[1], r[2], r[3]), r[4]) for r in rows]

    def event(self, event_id: int) -> tuple[int, str, int, bytes] | None:
        return self._db.execute(f"SELECT {EVENT_COLS} FROM events WHERE id = ?", (event_id,)).fetchone()

    def event_routing(self, event_id: int) -> tuple[str, str | None] | None:
        """(type, consumer) of one event: whom it is for."""
        row = self._db.execute("SELECT type, consumer FROM events WHERE id = ?", (event_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def events_by_id(self, ids: Iterable[int]) -> dict[int, tuple[int, str, int, bytes]]:
        """Several events at once (the dispatcher builds all bodies of a round from one query)."""
        wanted = sorted(set(ids))
        out: dict[int, tuple[int, str, int, bytes]] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._db.execute(f"SELECT {EVENT_COLS} FROM events WHERE id IN ({marks})", chunk):
                out[row[0]] = row
        return out

    # -- subscriptions ------------------------------------------------------------------

    def _load_active(self) -> None:
        self._active = SubscriptionIndex(
            [
                (sid, frozenset(orjson.loads(types)), consumer)
                for sid, types, consumer in self._db.execute("SELECT id, event_types, consumer FROM subscriptions WHERE status = 'active'")
            ]
        )

    def _changed(self) -> None:
        self.subscriptions_version += 1
        self._load_active()

    def create_subscription(self, url: str, event_types: Sequence[str], secret: str, consumer: str | None = None) -> Subscription:
        sub = Subscription(
            id="sub_" + _secrets.token_hex(8),
            url=url,
            event_types=tuple(event_types),
            secret=secret,
            status="active",
            created_ns=time.time_ns(),
            consumer=consumer,
        )
        self._db.execute(
            "INSERT INTO subscriptions(id, url, event_types, secret, status, created_ns, consumer) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (sub.id, sub.url, orjson.dumps(list(sub.event_types)).decode(), sub.secret, sub.status, sub.created_ns, sub.consumer),
        )
        self._changed()
        return sub

    def subscription(self, sub_id: str) -> Subscription | None:
        row = self._db.execute(
            "SELECT id, url, event_types, secret, status, created_ns, disabled_reason, previous_secret,"
            " previous_secret_until_ns, disabled_ns, consumer FROM subscriptions WHERE id = ?",
            (sub_id,),
        ).fetchone()
        return subscription_from_row(row) if row else None

    def subscriptions(self) -> list[Subscription]:
        rows = self._db.execute(
            "SELECT id, url, event_types, secret, status, created_ns, disabled_reason, previous_secret,"
            " previous_secret_until_ns, disabled_ns, consumer FROM subscriptions"
            " ORDER BY created_ns, id"
        ).fetchall()
        return [subscription_from_row(r) for r in rows]

    def rotate_secret(self, sub_id: str, secret: str, overlap_ns: int) -> Subscription | None:
        """Make ``secret`` current; the old one keeps signing for ``overlap_ns`` (0 ends it now)."""
        now = time.time_ns()
        cur = self._db.execute(
            "UPDATE subscriptions SET previous_secret = secret, previous_secret_until_ns = ?, secret = ? WHERE id = ?",
            (now + overlap_ns, secret, sub_id),
        )
        if cur.rowcount == 0:
            return None
        self._changed()
        return self.subscription(sub_id)

    def delete_subscription(self, sub_id: str) -> bool:
        """Remove the endpoint and its secret; its pending deliveries become 'disabled'."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            gone = db.execute("DELETE FROM subscriptions WHERE id = ?", (sub_id,)).rowcount
            db.execute("UPDATE deliveries SET status = 'disabled' WHERE subscription_id = ? AND status = 'pending'", (sub_id,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._changed()
        return gone > 0

    def replay(self, sub: Subscription, *, since_ns: int | None = None, after: int | None = None) -> int:
        """Queue fresh deliveries of past events, reusing ``msg_<event_id>`` so receivers de-duplicate."""
        args: list[int | str]
        where, args = ("e.created_ns >= ?", [since_ns]) if since_ns is not None else ("e.id > ?", [after or 0])
        if sub.event_types:
            where += f" AND e.type IN ({','.join('?' * len(sub.event_types))})"
            args.extend(sub.event_types)
        if sub.consumer is not None:
            where += " AND e.consumer = ?"
            args.append(sub.consumer)
        now = time.time_ns()
        cur = self._db.execute(
            "INSERT INTO deliveries(subscription_id, msg_id, first_event_id, last_event_id, event_ids,"
            " status, next_attempt_ns, created_ns)"
            " SELECT ?, 'msg_' || e.id, e.id, e.id, '[' || e.id || ']', 'pending', ?, ?"
            f" FROM events e WHERE {where} ORDER BY e.id",
            (sub.id, now, now, *args),
        )
        return cur.rowcount

    # -- outbox -------------------------------------------------------------------------

    def due_deliveries(self, now_ns: int, limit: int, skip: Container[int] = ()) -> list[Delivery]:
        """Pending rows whose time has come, oldest due first (one indexed range scan).

        Rows whose id is in ``skip`` (attempts in flight) are left out before they are decoded.
        """
        rows = self._db.execute(
            f"SELECT {DELIVERY_COLS} FROM deliveries WHERE status = 'pending' AND next_attempt_ns <= ?"
            " ORDER BY next_attempt_ns, id LIMIT ?",
            (now_ns, limit),
        ).fetchall()
        return [delivery_from_row(r) for r in rows if r[0] not in skip]

    def next_due_ns(self, after_ns: int) -> int | None:
        """When the next pending row that is not yet due becomes due."""
        row = self._db.execute(
            "SELECT min(next_attempt_ns) FROM deliveries WHERE status = 'pending' AND next_attempt_ns > ?",
            (after_ns,),
        ).fetchone()
        return row[0] if row else None

    def form_batches(self, groups: Sequence[tuple[str, Sequence[Delivery]]]) -> list[Delivery]:
        """Merge fresh single-event rows into one batch row each, in one transaction.

        A batch row is one message ``msg_b<first>_<last>`` that keeps its id on
        every retry; the single rows it replaces are removed.
        """
        if not groups:
            return []
        db = self._db
        out: list[Delivery] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for sub_id, rows in groups:
                ids = tuple(e for r in rows for e in r.event_ids)
                first, last = min(ids), max(ids)
                created = min(r.created_ns for r in rows)
                msg_id = f"msg_b{first}_{last}"
                cur = db.execute(
                    "INSERT INTO deliveries(subscription_id, msg_id, first_event_id, last_event_id, event_ids, batch,"
                    " status, next_attempt_ns, created_ns) VALUES (?, ?, ?, ?, ?, 1, 'pending', ?, ?)",
                    (sub_id, msg_id, first, last, orjson.dumps(ids).decode(), time.time_ns(), created),
                )
                db.executemany("DELETE FROM deliveries WHERE id = ?", [(r.id,) for r in rows])
                out.append(Delivery(int(cur.lastrowid or 0), sub_id, msg_id, first, last, ids, True, 0, created))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return out

    def mark_deliveries(self, ids: Sequence[int], status: str) -> None:
        self._db.executemany("UPDATE deliveries SET status = ? WHERE id = ?", [(status, i) for i in ids])

    def record_attempts(self, results: Sequence[AttemptResult]) -> None:
        """Write a round of finished attempts and their outcomes in one transaction."""
        if not results:
            return
        db = self._db
        disabled = False
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO attempts(delivery_id, attempt, started_ns, finished_ns, status_code, error,"
                " bytes_sent, bytes_received) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (r.delivery_id, r.attempt, r.started_ns, r.finished_ns, r.status_code, r.error, r.bytes_sent, r.bytes_received)
                    for r in results
                ],
            )
            # Delivered is a fact even if the row was disabled while in flight: set unconditionally,
            # so writing these first (in one statement) cannot change what the loop below decides.
            db.executemany(
                "UPDATE deliveries SET status = 'delivered', attempts = ?, last_status = ?, delivered_ns = ? WHERE id = ?",
                [(r.attempt, r.status_code, r.finished_ns, r.delivery_id) for r in results if r.new_status == "delivered"],
            )
            for r in results:
                if r.new_status == "delivered":
                    continue
                db.execute(
                    "UPDATE deliveries SET attempts = ?, last_status = ?,"
                    " status = CASE WHEN status = 'pending' THEN ? ELSE status END, next_attempt_ns = ?"
                    " WHERE id = ?",
                    (r.attempt, r.status_code, r.new_status, r.next_attempt_ns, r.delivery_id),
                )
                if r.disable_subscription:
                    disabled = True
                    # The first reason and time stick: attempts in flight may report the same endpoint again.
                    db.execute(
                        "UPDATE subscriptions SET status = 'disabled', disabled_reason = ?, disabled_ns = ? WHERE id = ? AND status = 'active'",
                        (r.disabled_reason, r.finished_ns, r.disable_subscription),
                    )
                    db.execute(
                        "UPDATE deliveries SET status = 'disabled' WHERE subscription_id = ? AND status = 'pending'",
                        (r.disable_subscription,),
                    )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if disabled:
            self._changed()

    # -- read helpers for the runner (safe from another process on the same file) --------

    @classmethod
    def events_created_at(cls, path: str) -> dict[int, int]:
        """``events_created()`` of the database at ``path``, opened read-only."""
        store = cls(path, readonly=True)
        try:
            return store.events_created()
        finally:
            store.close()

    @classmethod
    def delivery_summary_at(cls, path: str) -> dict[str, Any]:
        """``delivery_summary()`` of the database at ``path``, opened read-only."""
        store = cls(path, readonly=True)
        try:
            return store.delivery_summary()
        finally:
            store.close()

    def events_created(self) -> dict[int, int]:
        """Event id -> created_ns, for latency measured against the publish time."""
        return dict(self._db.execute("SELECT id, created_ns FROM events ORDER BY id"))

    def delivery_summary(self) -> dict[str, Any]:
        """Counts of deliveries by status, attempts, retries and attempt outcomes."""
        db = self._db
        by_status = dict(db.execute("SELECT status, count(*) FROM deliveries GROUP BY status"))
        n_attempts, n_tried = db.execute("SELECT coalesce(sum(attempts), 0), coalesce(sum(attempts > 0), 0) FROM deliveries").fetchone()
        recorded = db.execute("SELECT count(*) FROM attempts").fetchone()[0]
        counts: dict[str, int] = {}
        for code, error, n in db.execute(
            "SELECT status_code, CASE WHEN status_code IS NULL THEN"
            " CASE WHEN error LIKE 'timeout%' THEN 'timeout' ELSE 'error' END END, count(*)"
            " FROM attempts GROUP BY 1, 2"
        ):
            key = str(code) if code is not None else str(error)
            counts[key] = counts.get(key, 0) + n
        events_delivered = db.execute(
            "SELECT coalesce(sum(json_array_length(event_ids)), 0) FROM deliveries WHERE status = 'delivered'"
        ).fetchone()[0]
        bytes_sent, bytes_received = db.execute(
            "SELECT coalesce(sum(bytes_sent), 0), coalesce(sum(bytes_received), 0) FROM attempts"
        ).fetchone()
        return {
            "deliveries": sum(by_status.values()),
            "delivered": by_status.get("delivered", 0),
            "pending": by_status.get("pending", 0),
            "dead": by_status.get("dead", 0),
            "disabled": by_status.get("disabled", 0),
            "attempts": recorded,
            "retries": max(int(n_attempts) - int(n_tried), 0),
            "attempt_status_counts": counts,
            "events_delivered": events_delivered,
            "bytes_sent": bytes_sent,
            "bytes_received": bytes_received,
        }

    # -- disabled endpoints (410 Gone or the disable policy), for the runner and reports ---

    def disabled_subscriptions(self) -> list[dict[str, Any]]:
        """Every disabled subscription as {id, url, reason, disabled_ns}, oldest disable first (no secrets)."""
        cols = {row[1] for row in self._db.execute("PRAGMA table_info(subscriptions)")}
        when = "disabled_ns" if "disabled_ns" in cols else "NULL"  # a read-only db of an older labkit
        rows = self._db.execute(
            f"SELECT id, url, disabled_reason, {when} FROM subscriptions WHERE status = 'disabled' ORDER BY {when}, id"
        ).fetchall()
        return [{"id": r[0], "url": r[1], "reason": r[2], "disabled_ns": r[3]} for r in rows]

    @classmethod
    def disabled_subscriptions_at(cls, path: str) -> list[dict[str, Any]]:
        """``disabled_subscriptions()`` of the database at ``path``, opened read-only."""
        store = cls(path, readonly=True)
        try:
            return store.disabled_subscriptions()
        finally:
            store.close()

    # -- reads for the benchmarks (read-only from another process: Store(path, readonly=True)) --

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def last_delivery_id(self) -> int:
        """The newest outbox row id, 0 when there is none: rows after it belong to what happens next."""
        return int(self._db.execute("SELECT coalesce(max(id), 0) FROM deliveries").fetchone()[0])

    def attempt_outcomes(self, after_delivery_id: int) -> list[tuple[int, int, int | None]]:
        """``(started_ns, finished_ns, status_code)`` of every attempt of the deliveries after ``after_delivery_id``."""
        return self._db.execute(
            "SELECT started_ns, finished_ns, status_code FROM attempts WHERE delivery_id > ?", (after_delivery_id,)
        ).fetchall()

    def event_attempts(self, first_event_id: int) -> list[tuple[int, int, int]]:
        """``(event_id, started_ns, finished_ns)`` of every attempt of the deliveries from ``first_event_id`` on.

        The event id is the delivery's first event (its only one unless batched).
        """
        return self._db.execute(
            "SELECT d.first_event_id, a.started_ns, a.finished_ns FROM attempts a JOIN deliveries d ON d.id = a.delivery_id"
            " WHERE d.first_event_id >= ?",
            (first_event_id,),
        ).fetchall()

    # -- the feed page, built by SQLite ------------------------------------------------------

    def page_json(self, after: int, limit: int, types: Sequence[str] = (), consumer: str | None = None) -> tuple[bytes, int]:
        """Up to ``limit`` events after ``after`` as their comma-joined JSON objects, and the last id (0: none).

        The same bytes as ``b",".join(event_json(row) for row in page(...))``
        (see dispatcher.event_json), but SQLite concatenates them: per page
        one row crosses into Python instead of four objects per event, which
        halves the cost of a 200 page. The payload is spliced as stored.
        """
        where, args = self._where(after, limit, types, consumer)
        row = self._db.execute(
            "SELECT CAST(group_concat(j, ',') AS BLOB), max(id) FROM (SELECT id, '{\"id\":' || id || ',\"type\":' || json_quote(type)"
            " || ',\"created_ns\":' || created_ns || ',\"payload\":' || CAST(payload AS TEXT) || '}' AS j"
            f" FROM events WHERE {where} ORDER BY id LIMIT ?)",
            (*args, limit),
        ).fetchone()
        return (row[0] or b"", row[1] or 0)

    # -- reads the lab pipeline needs while a run is in progress (read-only, another process) ------

    @classmethod
    def pending_deliveries_at(cls, path: str) -> int:
        """Outbox rows still to be sent (an in-flight row stays pending until its attempt is recorded); -1 if unreadable."""
        try:
            store = cls(path, readonly=True)
        except sqlite3.Error:
            return -1
        try:
            return int(store._db.execute("SELECT count(*) FROM deliveries WHERE status = 'pending'").fetchone()[0])
        except sqlite3.Error:
            return -1
        finally:
            store.close()

    @classmethod
    def delivery_attempts_at(cls, path: str) -> list[tuple[str, list[int], int]]:
        """Every delivery as (subscription id, the event ids it carried, attempts it took)."""
        store = cls(path, readonly=True)
        try:
            rows = store._db.execute("SELECT subscription_id, event_ids, attempts FROM deliveries").fetchall()
        finally:
            store.close()
        return [(str(sub), [int(e) for e in orjson.loads(ids)], int(n)) for sub, ids, n in rows]

    @classmethod
    def mean_delivery_rtt_s_at(cls, path: str) -> float | None:
        """Mean duration of successful delivery attempts (2xx), from the attempt log; None without any."""
        try:
            store = cls(path, readonly=True)
        except sqlite3.Error:
            return None
        try:
            row = store._db.execute("SELECT avg(finished_ns - started_ns) FROM attempts WHERE status_code BETWEEN 200 AND 299").fetchone()
        except sqlite3.Error:
            return None
        finally:
            store.close()
        return row[0] / 1e9 if row and row[0] is not None else None

    @classmethod
    def events_routing_at(cls, path: str) -> dict[int, tuple[str, str | None]]:
        """Event id -> (type, consumer) of the database at ``path``: whom each event was for (the audience)."""
        store = cls(path, readonly=True)
        try:
            return {int(i): (str(t), c) for i, t, c in store._db.execute("SELECT id, type, consumer FROM events ORDER BY id")}
        finally:
            store.close()
