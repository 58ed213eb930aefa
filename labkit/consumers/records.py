"""What the consumers received: one small SQLite store shared by the receiver and the poller.

Delivery is at least once (webhooks are retried, a poller may fetch a page
twice after a crash), so processing must be idempotent. Here "processing an
event" means inserting its row; the receiver inserts the message's
``webhook-id`` in the same transaction, and the poller advances its cursor in
the same transaction, so a restart at any instant neither loses an event nor
processes one twice.

The store runs in WAL mode with ``synchronous=OFF``: commits are atomic and
survive a process crash (not a power cut, which the lab does not need), and
the runner can read counts from another process while a run writes.

An event a consumer receives again (a retried webhook, a page fetched twice,
a stream resumed from an older cursor) is not recorded again; its row's
``repeats`` counts each repeat, in the same transaction as the processing, so
the runner counts duplicates consumer by consumer and event by event (against
what each consumer should have received) from the store, whatever happened to
the processes' counters. OFF
rather than NORMAL because NORMAL fsyncs at every WAL checkpoint, inside a
commit on the event loop: on a busy disk that stalled the receiver for up to
0.5 s (``labkit bench``), and the webhook latency p99 with it.

Schema::

    messages(subscriber TEXT, webhook_id TEXT, received_ns INT, PRIMARY KEY(subscriber, webhook_id))
    events(consumer TEXT, event_id INT, received_ns INT, repeats INT, PRIMARY KEY(consumer, event_id))
    cursors(consumer TEXT PRIMARY KEY, cursor TEXT, etag TEXT)
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    subscriber TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    received_ns INTEGER NOT NULL,
    PRIMARY KEY (subscriber, webhook_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    consumer TEXT NOT NULL,
    event_id INTEGER NOT NULL,
    received_ns INTEGER NOT NULL,
    repeats INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (consumer, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursors (
    consumer TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    etag TEXT
);
"""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one processing step did: events newly recorded, and events seen before."""

    recorded: int
    duplicate_events: int


class RecordStore:
    """One process's connection to the record store (one writer per process)."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path != ":memory:":
            parent = os.path.dirname(os.path.abspath(path))
            os.makedirs(parent, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT),
        # so every write below is one atomic unit and nothing commits behind our back.
        self._con = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=OFF")  # no fsync on the event loop; see above
        self._con.executescript(SCHEMA)
        if "repeats" not in {row[1] for row in self._con.execute("PRAGMA table_info(events)")}:  # a store of an older labkit
            self._con.execute("ALTER TABLE events ADD COLUMN repeats INTEGER NOT NULL DEFAULT 0")

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the receiver ---------------------------------------------------------------

    def seen_message(self, subscriber: str, webhook_id: str) -> bool:
        """True when this message was processed before (a cheap check before any fetching)."""
        row = self._con.execute("SELECT 1 FROM messages WHERE subscriber = ? AND webhook_id = ?", (subscriber, webhook_id)).fetchone()
        return row is not None

    def record_message(self, subscriber: str, webhook_id: str, event_ids: Sequence[int], received_ns: int) -> Outcome | None:
        """Process one webhook message: its id and its events in one transaction.

        Returns None when the message was processed before (a retry or a replay),
        in which case nothing is written.
        """
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            cur = con.execute(
                "INSERT OR IGNORE INTO messages(subscriber, webhook_id, received_ns) VALUES (?, ?, ?)",
                (subscriber, webhook_id, received_ns),
            )
            if cur.rowcount == 0:  # its events were processed with it: each is received once more
                self._repeated(subscriber, event_ids)
                con.execute("COMMIT")
                return None
            recorded = self._insert_events(subscriber, event_ids, received_ns)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return Outcome(recorded, len(event_ids) - recorded)

    # -- the poller -----------------------------------------------------------------

    def record_page(self, consumer: str, event_ids: Sequence[int], received_ns: int, cursor: str, etag: str | None) -> Outcome:
        """Process one page of the feed: its events and the cursor after them, in one transaction."""
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            recorded = self._insert_events(consumer, event_ids, received_ns)
            con.execute(
                "INSERT INTO cursors(consumer, cursor, etag) VALUES (?, ?, ?)"
                " ON CONFLICT(consumer) DO UPDATE SET cursor = excluded.cursor, etag = excluded.etag",
                (consumer, cursor, etag),
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return Outcome(recorded, len(event_ids) - recorded)

    def record_stream_batch(self, events: Sequence[tuple[str, int, int]], cursors: Mapping[str, str]) -> Outcome:
        """Process what a stream fleet received since its last batch: (consumer, event_id, received_ns)
        rows and each consumer's cursor after them, in one transaction (one commit for many streams)."""
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            recorded = self._insert_rows(events)
            con.executemany(
                "INSERT INTO cursors(consumer, cursor, etag) VALUES (?, ?, NULL)"
                " ON CONFLICT(consumer) DO UPDATE SET cursor = excluded.cursor",
                list(cursors.items()),
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return Outcome(recorded, len(events) - recorded)

    def newest_events(self) -> dict[str, int]:
        """Each consumer's newest recorded event id: a stream consumer's cursor (it receives events in id order)."""
        return dict(self._con.execute("SELECT consumer, max(event_id) FROM events GROUP BY consumer").fetchall())

    def cursors(self) -> dict[str, tuple[str, str | None]]:
        """Every stored cursor (consumer -> (cursor, etag)), read once when a fleet starts."""
        return {c: (cur, etag) for c, cur, etag in self._con.execute("SELECT consumer, cursor, etag FROM cursors")}

    # -- shared ---------------------------------------------------------------------

    def record_repeats(self, consumer: str, event_ids: Sequence[int]) -> None:
        """``consumer`` received these events again (a message it had processed, refused before any write)."""
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            self._repeated(consumer, event_ids)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def _repeated(self, consumer: str, event_ids: Sequence[int]) -> None:
        self._con.executemany(
            "UPDATE events SET repeats = repeats + 1 WHERE consumer = ? AND event_id = ?", [(consumer, int(e)) for e in event_ids]
        )

    def _insert_events(self, consumer: str, event_ids: Sequence[int], received_ns: int) -> int:
        if not event_ids:
            return 0
        return self._insert_rows([(consumer, int(e), received_ns) for e in event_ids])

    def _insert_rows(self, rows: Sequence[tuple[str, int, int]]) -> int:
        """Record (consumer, event_id, received_ns) rows inside the caller's transaction; how many were new.

        Nearly always every row is new: one statement for all. When some were
        not, which ones is not said by a count, so that statement is undone and
        the rows go one by one, a repeat adding to its row's ``repeats``.
        """
        con = self._con
        before = con.total_changes
        con.execute("SAVEPOINT record")
        con.executemany("INSERT OR IGNORE INTO events(consumer, event_id, received_ns) VALUES (?, ?, ?)", rows)
        recorded = con.total_changes - before
        if recorded < len(rows):
            con.execute("ROLLBACK TO record")
            recorded = 0
            for row in rows:
                if con.execute("INSERT OR IGNORE INTO events(consumer, event_id, received_ns) VALUES (?, ?, ?)", row).rowcount:
                    recorded += 1
                else:
                    con.execute("UPDATE events SET repeats = repeats + 1 WHERE consumer = ? AND event_id = ?", row[:2])
        con.execute("RELEASE record")
        return recorded

    def counts(self) -> dict[str, int]:
        """Unique events per consumer, through this connection (works for ":memory:" too)."""
        return dict(self._con.execute("SELECT consumer, count(*) FROM events GROUP BY consumer").fetchall())

    def events(self) -> list[tuple[str, int, int]]:
        return [tuple(r) for r in self._con.execute("SELECT consumer, event_id, received_ns FROM events ORDER BY consumer, event_id")]  # type: ignore[misc]

    def messages(self) -> list[tuple[str, str, int]]:
        return [tuple(r) for r in self._con.execute("SELECT subscriber, webhook_id, received_ns FROM messages")]  # type: ignore[misc]


# -- readers for the runner (another process, during or after a run) ------------------


def _query(path: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` on the store at ``path``, read-only; [] when there is no store or no tables yet.

    Read-only and never creating the file: the runner polls before the consumer
    has started, and before it has created its tables.
    """
    if not os.path.exists(path):
        return []
    try:
        con = sqlite3.connect(f"file:{os.path.abspath(path)}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error:
        return []
    try:
        return con.execute(sql).fetchall()
    except sqlite3.Error:  # the consumer has not created its tables yet (or an older store lacks a column)
        return []
    finally:
        con.close()


def received_counts(path: str) -> dict[str, int]:
    """Unique events per consumer in the store at ``path``; {} when it does not exist yet."""
    return {str(c): int(n) for c, n in _query(path, "SELECT consumer, count(*) FROM events GROUP BY consumer")}


def load_events(path: str) -> list[tuple[str, int, int]]:
    """Every recorded event as (consumer, event_id, received_ns); [] when there is no store."""
    rows = _query(path, "SELECT consumer, event_id, received_ns FROM events ORDER BY consumer, event_id")
    return [(str(c), int(e), int(r)) for c, e, r in rows]


class RecordReader:
    """Incremental read-only reads of a record store from another process, on one connection kept open.

    Every failure reads as "nothing yet": the store may not exist, or have no
    tables, when the first read comes, and the caller simply asks again.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.path.abspath(path)
        self._con: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection | None:
        if self._con is None:
            if not os.path.exists(self.path):
                return None
            try:
                self._con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=1.0, check_same_thread=False)
            except sqlite3.Error:
                return None
        return self._con

    def rows_since(self, consumers: Sequence[str], first_event_id: int) -> list[tuple[str, int, int]]:
        """``(consumer, event_id, received_ns)`` of ``consumers`` with ``event_id >= first_event_id``; [] before the store exists."""
        con = self._connect()
        if con is None or not consumers:
            return []
        marks = ",".join("?" * len(consumers))
        try:
            return con.execute(
                f"SELECT consumer, event_id, received_ns FROM events WHERE consumer IN ({marks}) AND event_id >= ?",
                (*consumers, first_event_id),
            ).fetchall()
        except sqlite3.Error:  # tables not created yet, or a checkpoint in progress: try again next time
            return []

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


def load_repeats(path: str) -> dict[tuple[str, int], int]:
    """(consumer, event_id) -> times received again after the first, for every event received more than once."""
    rows = _query(path, "SELECT consumer, event_id, repeats FROM events WHERE repeats > 0")
    return {(str(c), int(e)): int(n) for c, e, n in rows}


def latest_seen(path: str) -> dict[str, int]:
    """The newest event id each consumer has recorded; {} when there is no store yet."""
    return {str(c): int(e) for c, e in _query(path, "SELECT consumer, max(event_id) FROM events GROUP BY consumer")}
