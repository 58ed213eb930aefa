"""The stream consumer fleet: 50 held streams receive every event exactly once across forced disconnects."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from labkit.config import EVENT_STREAM, WS
from labkit.consumers import records
from tests.helpers.streams import Lab

# Real servers started for tens of seconds in all: the full suite runs these, the fast subset does not.
pytestmark = pytest.mark.slow

N = 50


def _fleet(lab: Lab, url: str, protocol: str, name: str = "fleet") -> tuple:
    stats = lab.work / f"{name}.stats.json"
    child = lab.group.start_worker(
        name,
        "streams",
        {
            "base_url": url,
            "protocol": protocol,
            "connections": N,
            "db_path": str(lab.work / "fleet.db"),
            "stats_path": str(stats),
            "connect_spread_s": 0.5,
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.5,
        },
    )
    return child, stats


def _counters(path: Path) -> dict:
    try:
        return json.loads(path.read_text())["counters"]
    except (OSError, ValueError, KeyError):
        return {}


def _wait(predicate, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _all_have(db: Path, total: int) -> bool:
    counts = records.received_counts(str(db))
    return len(counts) == N and all(v == total for v in counts.values())


@pytest.mark.parametrize("protocol", [EVENT_STREAM, WS])
def test_every_event_exactly_once_across_disconnects(lab: Lab, protocol: str) -> None:
    p = lab.provider(heartbeat_s=0.5)
    lab.publish(p.url, 10)  # a backlog to catch up on
    fleet, stats = _fleet(lab, p.url, protocol)
    db = lab.work / "fleet.db"
    assert _wait(lambda: _counters(stats).get("connected") == N and _all_have(db, 10))
    lab.publish(p.url, 10)
    fleet.popen.send_signal(signal.SIGUSR2)  # the fleet cuts every stream at once
    lab.publish(p.url, 10)
    # every stream back before the second cut, so each one is cut twice (on a loaded machine some were still in backoff)
    assert _wait(lambda: (c := _counters(stats)).get("reconnects", 0) >= N and c.get("connected") == N), _counters(stats)
    p = lab.restart(p, "provider-2", heartbeat_s=0.5)  # SIGKILL and restart on the same port and log
    lab.publish(p.url, 10)
    assert _wait(lambda: _all_have(db, 40)), records.received_counts(str(db))
    assert fleet.alive(), fleet.log_tail()
    lab.group.stop(fleet)
    got = records.load_events(str(db))
    by_consumer: dict[str, list[int]] = {}
    for consumer, event_id, _ in got:
        by_consumer.setdefault(consumer, []).append(event_id)
    assert sorted(by_consumer) == sorted(f"c{i}" for i in range(N))
    assert all(ids == list(range(1, 41)) for ids in by_consumer.values())  # 0 lost, none twice
    c = _counters(stats)
    assert c["events"] == N * 40
    assert c["reconnects"] >= 2 * N and c["forced_disconnects"] >= N
    assert c["lag"]["p50"] is not None


def test_a_killed_fleet_resumes_from_its_recorded_cursors(lab: Lab) -> None:
    p = lab.provider()
    fleet, stats = _fleet(lab, p.url, EVENT_STREAM)
    db = lab.work / "fleet.db"
    assert _wait(lambda: _counters(stats).get("connected") == N)
    lab.publish(p.url, 10)
    assert _wait(lambda: _all_have(db, 10))
    lab.group.kill(fleet)  # SIGKILL: no shutdown code runs
    lab.publish(p.url, 10)  # published while no consumer is connected
    fleet, stats = _fleet(lab, p.url, EVENT_STREAM, name="fleet-2")
    lab.publish(p.url, 5)
    assert _wait(lambda: _all_have(db, 25)), records.received_counts(str(db))
    got: dict[str, list[int]] = {}
    for consumer, event_id, _ in records.load_events(str(db)):
        got.setdefault(consumer, []).append(event_id)
    assert all(ids == list(range(1, 26)) for ids in got.values()) and len(got) == N
    # the restarted fleet started after the recorded cursors: at most a batch's worth came twice
    assert _wait(lambda: _counters(stats).get("events") == N * 15)
