"""The record store: exactly-once processing on top of at-least-once delivery."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from labkit.consumers import records
from labkit.consumers.records import RecordStore


def test_a_message_is_processed_once(tmp_path: Path) -> None:
    with RecordStore(str(tmp_path / "r.db")) as store:
        first = store.record_message("s0", "msg_1", [1], 100)
        again = store.record_message("s0", "msg_1", [1], 200)
        assert first is not None and first.recorded == 1
        assert again is None
        assert store.seen_message("s0", "msg_1")
        assert not store.seen_message("s1", "msg_1")
        assert store.events() == [("s0", 1, 100)]


def test_a_page_and_its_cursor_commit_together(tmp_path: Path) -> None:
    path = str(tmp_path / "r.db")
    with RecordStore(path) as store:
        out = store.record_page("p0", [1, 2, 3], 10, "3", '"h3"')
        assert out.recorded == 3 and out.duplicate_events == 0
        out = store.record_page("p0", [3, 4], 20, "4", None)
        assert out.recorded == 1 and out.duplicate_events == 1
        assert store.cursors() == {"p0": ("4", None)}
    with RecordStore(path) as store:  # a restart finds the cursor where the events left it
        assert store.cursors() == {"p0": ("4", None)}


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "r.db")
    with RecordStore(path) as store:
        try:
            store.record_page("p0", [1, "not an id"], 10, "2", None)  # type: ignore[list-item]
        except (ValueError, sqlite3.Error):
            pass
        assert store.counts() == {}
        assert store.cursors() == {}


def test_readers_work_from_another_connection(tmp_path: Path) -> None:
    path = str(tmp_path / "r.db")
    assert records.received_counts(path) == {}
    assert records.load_events(path) == []
    sqlite3.connect(path).close()  # the file exists but the consumer has not made its tables yet
    assert records.received_counts(path) == {}
    assert records.load_events(path) == []
    with RecordStore(path) as store:
        store.record_message("s0", "msg_b1_2", [1, 2], 5)
        store.record_page("p1", [1], 6, "1", None)
        # While the writer is open (WAL), another connection reads committed rows.
        assert records.received_counts(path) == {"s0": 2, "p1": 1}
    assert records.load_events(path) == [("p1", 1, 6), ("s0", 1, 5), ("s0", 2, 5)]


def test_memory_store() -> None:
    with RecordStore(":memory:") as store:
        store.record_message("default", "msg_1", [1], 1)
        assert store.counts() == {"default": 1}


def test_each_repeat_is_counted_on_its_event_whatever_path_it_came_by(tmp_path: Path) -> None:
    path = str(tmp_path / "r.db")
    with RecordStore(path) as store:
        store.record_message("s0", "msg_1", [1], 100)
        assert store.record_message("s0", "msg_1", [1], 200) is None  # a retried webhook
        store.record_repeats("s0", [1])  # a thin message refused before any write
        out = store.record_message("s0", "msg_b1_2", [1, 2], 300)  # a batch overlapping what was processed
        assert out is not None and (out.recorded, out.duplicate_events) == (1, 1)
        store.record_page("p0", [5, 6], 10, "6", None)
        out = store.record_page("p0", [6, 6, 7], 20, "7", None)  # a page fetched twice, and an id twice in one page
        assert (out.recorded, out.duplicate_events) == (1, 2)
        out = store.record_stream_batch([("c0", 9, 1), ("c1", 9, 1), ("c0", 9, 2)], {"c0": "9", "c1": "9"})
        assert (out.recorded, out.duplicate_events) == (2, 1)
        # the first receipt stays the one recorded
        assert ("p0", 6, 10) in store.events() and ("c0", 9, 1) in store.events()
    assert records.load_repeats(path) == {("s0", 1): 3, ("p0", 6): 2, ("c0", 9): 1}
    assert records.load_repeats(str(tmp_path / "none.db")) == {}


def test_a_store_of_an_older_labkit_gains_the_repeats_column(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE events (consumer TEXT NOT NULL, event_id INTEGER NOT NULL, received_ns INTEGER NOT NULL, PRIMARY KEY (consumer, event_id)) WITHOUT ROWID"
    )
    con.execute("INSERT INTO events VALUES ('p0', 1, 5)")
    con.commit()
    con.close()
    assert records.load_repeats(path) == {}  # read as it is: no column, no repeats
    with RecordStore(path) as store:
        store.record_page("p0", [1], 6, "1", None)
    assert records.load_repeats(path) == {("p0", 1): 1}
