"""A poller fleet over two processes: every event once per poller, and counters merged exactly."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from labkit.consumers import records
from labkit.consumers.processes import merge_stats, split
from labkit.servers.procs import ProcessGroup

KEY = "lab-key"
AUTH = {"authorization": f"Bearer {KEY}"}
EVENTS = 30
POLLERS = 5


def publish(url: str, count: int) -> None:
    with httpx.Client(base_url=url, headers=AUTH, timeout=10.0) as c:
        for i in range(count):
            assert c.post("/events", json={"type": "order.updated", "payload": {"i": i}}).status_code == 201


def wait_until(check: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_split_covers_every_item_once() -> None:
    assert split(5, 2) == [(0, 3), (3, 2)]
    assert split(2, 8) == [(0, 1), (1, 1)]
    assert sum(n for _, n in split(10_001, 7)) == 10_001


@pytest.mark.slow  # a provider and a two-process fleet; receiver workers stay fast
def test_two_process_fleet_records_every_event_once_and_merges_exactly(tmp_path: Path) -> None:
    db = tmp_path / "consumer.db"
    stats = tmp_path / "poller.stats.json"
    with ProcessGroup(tmp_path) as group:
        provider = group.start_server("provider", "provider", {"db_path": str(tmp_path / "p.db"), "rate_limit_per_s": 0})
        settings = {
            "base_url": provider.url,
            "pollers": POLLERS,
            "interval_s": 0.05,
            "db_path": str(db),
            "stats_path": str(stats),
            "processes": 2,
        }
        fleet = group.start_worker("poller", "poller", settings)
        wait_until(stats.exists)
        # two worker processes under one supervisor (asked again until seen: one reading of the
        # process table under load once listed none, with the fleet's stats already written)
        wait_until(lambda: len(psutil.Process(fleet.pid).children()) == 2)
        workers = [c.pid for c in psutil.Process(fleet.pid).children()]
        assert len(workers) == 2
        publish(provider.url, EVENTS)
        wait_until(lambda: sum(records.received_counts(str(db)).values()) >= EVENTS * POLLERS)
        fleet.popen.send_signal(signal.SIGTERM)
        assert fleet.popen.wait(timeout=30) == 0
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in workers)
    counts = records.received_counts(str(db))
    assert counts == {f"p{i}": EVENTS for i in range(POLLERS)}
    rows = records.load_events(str(db))
    assert len(rows) == len({(c, e) for c, e, _ in rows}) == EVENTS * POLLERS  # exactly once
    merged = json.loads(stats.read_text())
    parts = [json.loads(Path(f"{stats}.w{k}").read_text()) for k in range(2)]
    assert [p["counters"]["pollers"] for p in parts] == [3, 2]
    c = merged["counters"]
    for key in ("pollers", "polls", "requests", "pages", "events", "empty_polls", "errors"):
        assert c[key] == sum(p["counters"][key] for p in parts), key
    assert c["events"] == EVENTS * POLLERS and c["duplicate_events"] == 0 and c["pollers"] == POLLERS
    assert merged["wire"]["bytes_in"] == sum(p["wire"]["bytes_in"] for p in parts)
    # the merged histogram holds every poll of both processes, and its max is the larger max
    assert merged["histograms"]["lateness"]["count"] == c["polls"]
    assert c["rtt"]["max"] == max(p["counters"]["rtt"]["max"] for p in parts)
    assert merge_stats(parts)["counters"]["rtt"] == c["rtt"]
