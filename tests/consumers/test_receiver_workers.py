"""A receiver as two workers on one socket: every event recorded once, retries seen as duplicates, counters exact."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import orjson
import psutil

from labkit.consumers import records
from labkit.servers.procs import ProcessGroup
from labkit.wire.signing import Signer, new_secret

MESSAGES = 60


def message(event_id: int) -> bytes:
    data = {"id": event_id, "type": "order.updated", "created_ns": time.time_ns(), "payload": {"n": event_id}}
    return orjson.dumps({"type": "order.updated", "timestamp": "2024-05-01T12:00:00Z", "data": data})


def test_two_workers_record_every_event_once_and_merge_exactly(tmp_path: Path) -> None:
    secret = new_secret()
    signer = Signer([secret])
    db, stats = tmp_path / "consumer.db", tmp_path / "receiver.stats.json"
    settings = {"secrets": [secret], "db_path": str(db), "stats_path": str(stats), "processes": 2}
    with ProcessGroup(tmp_path) as group:
        rx = group.start_server("receiver", "receiver", settings)
        workers = psutil.Process(rx.pid).children()
        assert len(workers) == 2
        # A new connection per request, so the kernel hands them to both workers.
        with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=10.0) as client:
            for attempt in range(2):  # the second round is every message retried: a duplicate, whichever worker takes it
                for i in range(1, MESSAGES + 1):
                    body = message(i)
                    headers = signer.headers(f"msg_{i}", body) | {"content-type": "application/json"}
                    r = client.post(f"{rx.url}/webhook/s{i % 3}", content=body, headers=headers)
                    assert r.status_code == (204 if attempt == 0 else 200), r.text
        live = httpx.get(f"{rx.url}/stats", timeout=10.0).json()
        rx.popen.send_signal(signal.SIGTERM)
        assert rx.popen.wait(timeout=30) == 0
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    rows = records.load_events(str(db))
    assert len(rows) == len({(c, e) for c, e, _ in rows}) == MESSAGES
    assert records.received_counts(str(db)) == {f"s{k}": MESSAGES // 3 for k in range(3)}
    assert live["counters"]["accepted"] == MESSAGES and live["counters"]["duplicates"] == MESSAGES
    assert live["processes"] == 2
    final = json.loads(stats.read_text())
    parts = [json.loads(Path(f"{stats}.w{k}").read_text()) for k in range(2)]
    # Which worker accepts a connection is the kernel's choice (a busy worker may take none of them);
    # what must hold is that the merged counters are exactly the workers' sums.
    for key in ("requests", "accepted", "duplicates", "events_recorded", "duplicate_events"):
        assert final["counters"][key] == sum(p["counters"][key] for p in parts), key
    assert final["counters"]["requests"] == 2 * MESSAGES
    assert final["counters"]["events_recorded"] == MESSAGES
    assert final["wire"]["bytes_in"] == sum(p["wire"]["bytes_in"] for p in parts)
