"""The tables of the provider's store and the rows it hands out.

``labkit.provider.store`` owns the database; this module is its schema and the
frozen row types the dispatcher, the routes and the measurements receive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    payload BLOB NOT NULL,
    consumer TEXT
);
CREATE INDEX IF NOT EXISTS events_type_id ON events(type, id);
CREATE INDEX IF NOT EXISTS events_created ON events(created_ns);
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    event_types TEXT NOT NULL,
    secret TEXT NOT NULL,
    status TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    disabled_reason TEXT,
    previous_secret TEXT,
    previous_secret_until_ns INTEGER,
    consumer TEXT
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    first_event_id INTEGER NOT NULL,
    last_event_id INTEGER NOT NULL,
    event_ids TEXT NOT NULL,
    batch INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ns INTEGER NOT NULL,
    last_status INTEGER,
    created_ns INTEGER NOT NULL,
    delivered_ns INTEGER
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(status, next_attempt_ns);
CREATE INDEX IF NOT EXISTS deliveries_sub ON deliveries(subscription_id, status);
CREATE TABLE IF NOT EXISTS attempts (
    delivery_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    started_ns INTEGER NOT NULL,
    finished_ns INTEGER NOT NULL,
    status_code INTEGER,
    error TEXT,
    bytes_sent INTEGER NOT NULL DEFAULT 0,
    bytes_received INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (delivery_id, attempt)
);
"""

EVENT_COLS = "id, type, created_ns, payload"
Row = tuple[int, str, int, bytes]  # one event as read by EVENT_COLS: (id, type, created_ns, payload)
DELIVERY_COLS = "id, subscription_id, msg_id, first_event_id, last_event_id, event_ids, batch, attempts, created_ns"


@dataclass(frozen=True, slots=True)
class Subscription:
    """A webhook endpoint; ``secret`` leaves the provider only in the create response."""

    id: str
    url: str
    event_types: tuple[str, ...]
    secret: str
    status: str
    created_ns: int
    disabled_reason: str | None = None
    # During a rotation the old secret keeps signing (a second signature) until this time.
    previous_secret: str | None = None
    previous_secret_until_ns: int | None = None
    disabled_ns: int | None = None  # when it was disabled (410 Gone, or the dispatcher's disable policy)
    consumer: str | None = None  # only this consumer's events (an account-scoped endpoint); None: every consumer's

    def signing_secrets(self, now_ns: int) -> tuple[str, ...]:
        """The secrets to sign with at ``now_ns``: the current one, and the old one during an overlap."""
        if self.previous_secret and self.previous_secret_until_ns and now_ns < self.previous_secret_until_ns:
            return (self.secret, self.previous_secret)
        return (self.secret,)

    def public(self) -> dict[str, Any]:
        """The view every read returns: everything but the secrets."""
        out: dict[str, Any] = {
            "id": self.id,
            "url": self.url,
            "event_types": list(self.event_types),
            "status": self.status,
            "created_ns": self.created_ns,
            "disabled_reason": self.disabled_reason,
            "disabled_ns": self.disabled_ns,
        }
        if self.consumer is not None:
            out["consumer"] = self.consumer
        if self.previous_secret:
            out["previous_secret_valid_until_ns"] = self.previous_secret_until_ns
        return out


@dataclass(frozen=True, slots=True)
class Delivery:
    """A pending outbox row as the dispatcher needs it."""

    id: int
    subscription_id: str
    msg_id: str
    first_event_id: int
    last_event_id: int
    event_ids: tuple[int, ...]
    batch: bool
    attempts: int
    created_ns: int


@dataclass(slots=True)
class AttemptResult:
    """One finished attempt and what it decides for its delivery."""

    delivery_id: int
    attempt: int
    started_ns: int
    finished_ns: int
    status_code: int | None
    error: str | None
    bytes_sent: int
    bytes_received: int
    new_status: str  # 'delivered' | 'pending' | 'dead' | 'disabled'
    next_attempt_ns: int = 0
    disable_subscription: str | None = None  # subscription id, on 410 Gone or by the disable policy
    disabled_reason: str | None = None


_INSERT_EVENTS: dict[int, str] = {}


def insert_events(n: int) -> str:
    """The INSERT of ``n`` events (type, created_ns, payload, consumer) in one statement; made once per ``n``."""
    sql = _INSERT_EVENTS.get(n)
    if sql is None:
        sql = _INSERT_EVENTS[n] = "INSERT INTO events(type, created_ns, payload, consumer) VALUES " + ",".join(["(?, ?, ?, ?)"] * n)
    return sql


class SubscriptionIndex:
    """Active subscriptions by (consumer or None, type or None): an event's targets without scanning them all.

    A publish looks up at most four buckets (every consumer's and its own,
    every type and its own), so its cost follows the subscriptions it matches.
    """

    def __init__(self, rows: list[tuple[str, frozenset[str], str | None]]) -> None:
        self.buckets: dict[tuple[str | None, str | None], list[str]] = {}
        for sid, types, consumer in rows:
            for t in types or (None,):
                self.buckets.setdefault((consumer, t), []).append(sid)

    def targets(self, type_: str, consumer: str | None) -> list[str]:
        b = self.buckets
        if not b:
            return []
        out = [*b.get((None, None), ()), *b.get((None, type_), ())]
        if consumer is not None:
            out.extend(b.get((consumer, None), ()))
            out.extend(b.get((consumer, type_), ()))
        return out


def delivery_from_row(row: tuple[Any, ...]) -> Delivery:
    return Delivery(
        id=row[0],
        subscription_id=row[1],
        msg_id=row[2],
        first_event_id=row[3],
        last_event_id=row[4],
        event_ids=tuple(orjson.loads(row[5])),
        batch=bool(row[6]),
        attempts=row[7],
        created_ns=row[8],
    )


def subscription_from_row(row: tuple[Any, ...]) -> Subscription:
    return Subscription(
        id=row[0],
        url=row[1],
        event_types=tuple(orjson.loads(row[2])),
        secret=row[3],
        status=row[4],
        created_ns=row[5],
        disabled_reason=row[6],
        previous_secret=row[7],
        previous_secret_until_ns=row[8],
        disabled_ns=row[9],
        consumer=row[10] if len(row) > 10 else None,
    )
