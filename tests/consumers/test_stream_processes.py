"""A stream consumer fleet over two processes: every event once per consumer, counters merged exactly."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import pytest

from labkit.consumers import records
from labkit.servers.procs import ProcessGroup

AUTH = {"authorization": "Bearer lab-key"}
EVENTS, CONNECTIONS = 10, 4


def wait_until(check: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow  # a provider and a two-process fleet; receiver workers stay fast
def test_two_process_stream_fleet(tmp_path: Path) -> None:
    db, stats = tmp_path / "consumer.db", tmp_path / "streams.stats.json"
    with ProcessGroup(tmp_path) as group:
        provider = group.start_server("provider", "provider", {"db_path": str(tmp_path / "p.db"), "rate_limit_per_s": 0})
        settings = {
            "base_url": provider.url,
            "connections": CONNECTIONS,
            "db_path": str(db),
            "stats_path": str(stats),
            "connect_spread_s": 0.1,
            "processes": 2,
        }
        fleet = group.start_worker("streams", "streams", settings)
        wait_until(lambda: stats.exists() and json.loads(stats.read_text())["counters"].get("connected") == CONNECTIONS)
        with httpx.Client(base_url=provider.url, headers=AUTH, timeout=10.0) as c:
            for i in range(EVENTS):
                assert c.post("/events", json={"type": "order.updated", "payload": {"i": i}}).status_code == 201
        wait_until(lambda: sum(records.received_counts(str(db)).values()) >= EVENTS * CONNECTIONS)
        fleet.popen.send_signal(signal.SIGTERM)
        assert fleet.popen.wait(timeout=30) == 0
    assert records.received_counts(str(db)) == {f"c{i}": EVENTS for i in range(CONNECTIONS)}
    merged = json.loads(stats.read_text())
    parts = [json.loads(Path(f"{stats}.w{k}").read_text()) for k in range(2)]
    for key in ("connections", "events", "frames", "connects", "duplicate_events"):
        assert merged["counters"][key] == sum(p["counters"][key] for p in parts), key
    assert merged["counters"]["events"] == EVENTS * CONNECTIONS and merged["counters"]["duplicate_events"] == 0
    assert merged["counters"]["last_received_ns"] == max(p["counters"]["last_received_ns"] for p in parts)  # a moment, not a count
    assert merged["histograms"]["lag"]["count"] == sum(p["histograms"]["lag"]["count"] for p in parts) > 0
