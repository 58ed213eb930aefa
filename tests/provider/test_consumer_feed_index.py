"""A consumer's feed, indexed in memory (``labkit.provider.log_index``): the same pages an index on (consumer, id) gave."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import orjson
import pytest

from labkit.provider import log_index
from labkit.provider.store import Store

Event = tuple[str, bytes, str | None]


def expected(log: list[tuple[int, Event]], after: int, limit: int, types: tuple[str, ...], consumer: str | None) -> list[int]:
    """The ids a full scan of the log picks: the reference every page is checked against."""
    return [i for i, (t, _, c) in log if i > after and (consumer is None or c == consumer) and (not types or t in types)][:limit]


def seeded_log(store: Store, n: int, seed: int = 7) -> list[tuple[int, Event]]:
    """``n`` events of three consumers and of no consumer, of three types, published one by one and in batches."""
    rng = random.Random(seed)
    log: list[tuple[int, Event]] = []
    pending: list[Event] = []
    for k in range(n):
        e: Event = (rng.choice(["paid", "refunded", "disputed"]), orjson.dumps({"k": k}), rng.choice(["m1", "m2", "m3", None]))
        if rng.random() < 0.1:
            event_id, _ = store.publish(e[0], e[1], consumer=e[2])
            log.append((event_id, e))
        else:
            pending.append(e)
        if len(pending) >= 37 or (pending and k == n - 1):
            rows = store.publish_many(pending)
            log += [(row[0], e) for (row, _), e in zip(rows, pending, strict=True)]
            pending = []
    return sorted(log)


@pytest.mark.parametrize("types", [(), ("paid",), ("paid", "disputed"), ("paid", "refunded", "disputed"), ("other",)])
def test_a_consumers_pages_are_exactly_its_events_in_order(tmp_path: Path, types: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_index, "TYPED_CHUNK", 16)  # pages of some types cross many chunks
    store = Store(str(tmp_path / "s.db"))
    log = seeded_log(store, 1200)
    for consumer in ("m1", "m2", "m3", "nobody"):
        for after in (0, 1, 57, 600, log[-1][0]):
            for limit in (1, 5, 100, 2000):
                want = expected(log, after, limit, types, consumer)
                assert [r[0] for r in store.page(after, limit, types, consumer)] == want
                body, last = store.page_json(after, limit, types, consumer)
                assert [e["id"] for e in orjson.loads(b"[" + body + b"]")] == want
                assert last == (want[-1] if want else 0)
        assert store.head(types, consumer) == max(expected(log, 0, 10**9, types, consumer), default=0)


def test_the_index_is_rebuilt_when_the_store_opens_again(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = Store(path)
    log = seeded_log(store, 300)
    before = {c: [r[0] for r in store.page(0, 1000, (), c)] for c in ("m1", "m2", "m3")}
    store.close()
    again = Store(path)  # a restarted provider
    for consumer, ids in before.items():
        assert ids == expected(log, 0, 1000, (), consumer)
        assert [r[0] for r in again.page(0, 1000, (), consumer)] == ids
        assert again.head((), consumer) == ids[-1]
    # and it goes on from there
    event_id, _ = again.publish("paid", b"{}", consumer="m2")
    assert [r[0] for r in again.page(before["m2"][-1], 10, (), "m2")] == [event_id]
    with Store(path, readonly=True) as ro:  # another process reads the same pages
        assert [r[0] for r in ro.page(0, 1000, ("paid",), "m1")] == expected(log, 0, 1000, ("paid",), "m1")


def test_a_failed_batch_adds_nothing_to_a_consumers_feed(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    store.publish_many([("paid", b"{}", "m1")])
    store.create_subscription("http://127.0.0.1:9/", [], "whsec_x")
    store._db.execute("CREATE TRIGGER boom BEFORE INSERT ON deliveries BEGIN SELECT RAISE(ABORT, 'boom'); END")
    with pytest.raises(sqlite3.Error, match="boom"):
        store.publish_many([("paid", b"{}", "m1"), ("paid", b"{}", "m2")])
    assert [r[0] for r in store.page(0, 10, (), "m1")] == [1]
    assert store.page(0, 10, (), "m2") == [] and store.head((), "m2") == 0


def test_a_database_with_the_old_index_by_consumer_loses_it(tmp_path: Path) -> None:
    """An index on (consumer, id) costs every insert a page write; a database of an older labkit drops it on open."""
    path = str(tmp_path / "s.db")
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("CREATE INDEX events_consumer_id ON events(consumer, id)")
    db.execute("INSERT INTO events(type, created_ns, payload, consumer) VALUES ('paid', 1, x'7b7d', 'm1')")
    db.commit()
    db.close()
    store = Store(path)
    names = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "events_consumer_id" not in names
    assert [r[0] for r in store.page(0, 10, (), "m1")] == [1]
