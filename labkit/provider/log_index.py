"""What the event log's only writer keeps of it in memory: the heads, and each consumer's event ids.

The provider's process is the log's only writer (``labkit.provider.store``),
so it can know without a query what the log holds: the newest id overall, per
type and per consumer and type (``Heads``, asked by every poll, long poll and
stream), and, for an audience per consumer, the ids of each consumer's events
in order (``Heads.ids``), which is the index of a consumer's feed.

Why that index is here and not in SQLite: an index on ``(consumer, id)`` puts
each consumer's next entry at the end of its own range, so a batch of events
for a thousand merchants touches about a thousand of the index's pages, and
every touched page is written out again at the commit (to the WAL, then to the
file at the checkpoint). In process, inserting 1,000-event batches of 1,000
consumers cost 1.8 µs per event without that index, 2.6 with it at 5,000
events in the log, 5.5 at 70,000 and 9 at 100,000, growing with the log. An
array of ids per consumer costs one append per event and 8 bytes of memory,
and a consumer's page is a binary search and a lookup by id: the same rows
in the same order as the index's range gave.

Both are rebuilt from the log when the writer opens the store (one scan of
the events that have a consumer). A store opened read-only by another process
reads them the first time it is asked (its one-off reads, such as the
outbox's count while a run drains, never are) and sees the log as it was then.
"""

from __future__ import annotations

import sqlite3
from array import array
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from labkit.provider.schema import Row

# A chunk of a consumer's ids checked for their types at once, when its feed is asked for some of its types only.
TYPED_CHUNK = 512


@dataclass(slots=True)
class Heads:
    """Newest event id overall, per type, and per consumer and type, and each consumer's event ids, in memory.

    A consumer's heads are one small dict of its types (most consumers have
    one or two), so taking an event of one consumer in updates two dicts, not
    three with a tuple key made per event; its head over every type is their
    maximum, read when a feed or stream asks. Its ids are appended in id
    order: events are only ever added, by this process, with growing ids.
    """

    head: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    by_consumer: dict[str, dict[str, int]] = field(default_factory=dict)
    ids: dict[str, array[int]] = field(default_factory=dict)

    def moved(self, event_id: int, type_: str, consumer: str | None) -> None:
        """One event newer than every event of its consumer seen so far (the log is read, and written, in id order)."""
        self.head = max(self.head, event_id)
        self.by_type[type_] = max(self.by_type.get(type_, 0), event_id)
        if consumer is not None:
            mine = self.by_consumer.setdefault(consumer, {})
            mine[type_] = max(mine.get(type_, 0), event_id)
            ids = self.ids.get(consumer)
            if ids is None:
                self.ids[consumer] = array("q", (event_id,))
            elif event_id > ids[-1]:
                ids.append(event_id)

    def appended(self, rows: list[tuple[Row, str | None]]) -> None:
        """``moved`` for rows just appended in id order: each is newer than every head, so it is the head of its keys."""
        by_type, by_consumer, all_ids = self.by_type, self.by_consumer, self.ids
        for (event_id, type_, _, _), consumer in rows:
            by_type[type_] = event_id
            if consumer is not None:
                mine = by_consumer.get(consumer)
                if mine is None:
                    by_consumer[consumer] = {type_: event_id}
                    all_ids[consumer] = array("q", (event_id,))
                else:
                    mine[type_] = event_id
                    all_ids[consumer].append(event_id)
        if rows:
            self.head = max(self.head, rows[-1][0][0])

    def of(self, consumer: str, types: Sequence[str] = ()) -> int:
        """The newest id of ``consumer``'s events (of ``types`` when given); 0 for none."""
        mine = self.by_consumer.get(consumer)
        if not mine:
            return 0
        if not types:
            return max(mine.values())
        return max((mine.get(t, 0) for t in types), default=0)

    def page_ids(
        self, consumer: str, after: int, limit: int, types: Sequence[str], typed: Callable[[list[int], list[str]], list[int]]
    ) -> list[int]:
        """The ids of ``consumer``'s first ``limit`` events after ``after`` (of ``types`` when given), oldest first.

        ``typed(ids, types)`` keeps those of ``ids`` whose type is one of
        ``types``; it is asked only when the consumer has events of other types
        as well, a chunk at a time, so the cost follows the consumer's own
        events, as the range of an index by consumer did.
        """
        ids, mine = self.ids.get(consumer), self.by_consumer.get(consumer, {})
        if not ids or limit <= 0:
            return []
        start = bisect_right(ids, after)
        if not types or mine.keys() <= set(types):  # every event of the consumer is of a type asked for
            return ids[start : start + limit].tolist()
        wanted = [t for t in types if t in mine]
        out: list[int] = []
        while wanted and start < len(ids) and len(out) < limit:
            chunk = ids[start : start + max(limit, TYPED_CHUNK)].tolist()
            start += len(chunk)
            out += typed(chunk, wanted)
        return out[:limit]


def read_heads(db: sqlite3.Connection) -> Heads:
    """The heads and each consumer's event ids, from the log (one scan of the events that have a consumer)."""
    heads = Heads()
    for type_, head in db.execute("SELECT type, max(id) FROM events GROUP BY type"):  # events_type_id
        heads.moved(head, type_, None)
    if "consumer" in {row[1] for row in db.execute("PRAGMA table_info(events)")}:  # a read-only db of an older labkit may lack it
        for event_id, type_, consumer in db.execute("SELECT id, type, consumer FROM events WHERE consumer IS NOT NULL ORDER BY id"):
            heads.moved(event_id, type_, consumer)
    return heads
