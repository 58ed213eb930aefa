"""The poller fleet against a fake provider feed served by a real uvicorn on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from labkit.config import PollerSettings
from labkit.consumers import records
from labkit.consumers.poller import FleetResult, run_fleet

from .conftest import API_KEY, Feed, ServerThread, wait_until


@pytest.fixture(params=["raw", "httpx"])
def kind(request: pytest.FixtureRequest) -> str:
    """Every feed test runs with both HTTP clients of the fleet."""
    return str(request.param)


def settings_for(server: ServerThread, tmp_path: Path, kind: str = "raw", **overrides: Any) -> PollerSettings:
    base: dict[str, Any] = {
        "http_client": kind,
        "base_url": server.url,
        "api_key": API_KEY,
        "interval_s": 0.05,
        "db_path": str(tmp_path / "poller.db"),
        "timeout_s": 10,
    }
    return PollerSettings(**(base | overrides))


async def run_until(settings: PollerSettings, done: Any, timeout: float = 15.0) -> FleetResult:
    """Run a fleet until ``done()`` holds (or a hang guard passes), then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_fleet(settings, stop))
    reached = await wait_until(lambda: done() or task.done(), timeout)
    stop.set()
    result = await asyncio.wait_for(task, 10)
    assert reached, "the fleet never reached the expected state"
    return result


def counts(settings: PollerSettings) -> dict[str, int]:
    return records.received_counts(settings.db_path)


async def test_every_event_once_across_pages(feed: tuple[Feed, ServerThread], tmp_path: Path, kind: str) -> None:
    f, server = feed
    f.publish(25)
    s = settings_for(server, tmp_path, kind, pollers=3, page_limit=10)
    result = await run_until(s, lambda: counts(s) == {"p0": 25, "p1": 25, "p2": 25})
    rows = records.load_events(s.db_path)
    assert Counter((c, e) for c, e, _ in rows).most_common(1)[0][1] == 1
    assert {e for c, e, _ in rows if c == "p1"} == set(range(1, 26))
    assert result.counters["events"] == 75
    assert result.counters["duplicate_events"] == 0
    assert result.counters["pages"] >= 9  # 3 pages of 10, 10, 5 for each poller
    assert result.counters["requests"] >= result.counters["polls"]
    assert result.wire["bytes_in"] > 0 and result.wire["bytes_out"] > 0
    assert result.counters["lateness"]["p99"] is not None
    assert result.counters["rtt"]["mean"] is not None


async def test_events_published_while_polling_arrive(feed: tuple[Feed, ServerThread], tmp_path: Path, kind: str) -> None:
    f, server = feed
    s = settings_for(server, tmp_path, kind, pollers=2, page_limit=4)
    stop = asyncio.Event()
    task = asyncio.create_task(run_fleet(s, stop))
    for _ in range(5):
        f.publish(3)
        await asyncio.sleep(0.03)
    assert await wait_until(lambda: counts(s) == {"p0": 15, "p1": 15})
    stop.set()
    result = await asyncio.wait_for(task, 10)
    assert result.counters["duplicate_events"] == 0


async def test_conditional_polls_send_if_none_match_and_count_304(feed: tuple[Feed, ServerThread], tmp_path: Path, kind: str) -> None:
    f, server = feed
    f.publish(3)
    s = settings_for(server, tmp_path, kind)
    result = await run_until(s, lambda: counts(s) == {"p0": 3} and f.not_modified >= 3)
    polls = [r for r in f.requests if "after" in r]
    assert polls[0]["if_none_match"] is None
    assert all(r["if_none_match"] == '"h3"' for r in polls[1:])
    assert 1 <= result.counters["not_modified"] <= f.not_modified
    assert result.counters["empty_polls"] >= result.counters["not_modified"]
    assert result.counters["polls"] >= result.counters["not_modified"] + 1


async def test_unconditional_polls_send_no_validator(feed: tuple[Feed, ServerThread], tmp_path: Path, kind: str) -> None:
    f, server = feed
    f.publish(2)
    s = settings_for(server, tmp_path, kind, conditional=False)
    result = await run_until(s, lambda: len(f.requests) >= 4)
    assert all(r["if_none_match"] is None for r in f.requests)
    assert result.counters["not_modified"] == 0
    assert result.counters["empty_polls"] >= 1


async def test_obeys_retry_after(feed: tuple[Feed, ServerThread], tmp_path: Path, kind: str) -> None:
    f, server = feed
    f.publish(4)
    f.throttle_next = 1
    f.retry_after = "0.4"
    s = settings_for(server, tmp_path, kind, interval_s=0.02)
    result = await run_until(s, lambda: counts(s) == {"p0": 4})
    first, second = f.requests[0], f.requests[1]
    # The poller slept at least Retry-After (8 intervals here) before asking again.
    assert second["t"] - first["t"] >= 0.4 - 0.02
    assert result.counters["throttled"] == 1
    assert result.counters["skipped_ticks"] >= 1


async def test_restart_resumes_from_the_stored_cursor(feed: tuple[Feed, ServerThread], tmp_path: Path, kind: str) -> None:
    f, server = feed
    f.publish(10)
    s = settings_for(server, tmp_path, kind, page_limit=4)
    await run_until(s, lambda: counts(s) == {"p0": 10})
    f.publish(5)
    seen = len(f.requests)
    second = await run_until(s, lambda: counts(s) == {"p0": 15})
    assert f.requests[seen]["after"] == "10"  # not "0": the cursor survived the restart
    assert second.counters["events"] == 5
    assert second.counters["duplicate_events"] == 0
    rows = records.load_events(s.db_path)
    assert sorted(e for _, e, _ in rows) == list(range(1, 16))


async def test_bad_key_counts_errors_and_records_nothing(feed: tuple[Feed, ServerThread], tmp_path: Path, kind: str) -> None:
    f, server = feed
    f.publish(2)
    s = settings_for(server, tmp_path, kind, api_key="wrong-key")
    result = await run_until(s, lambda: len(f.requests) >= 3)
    assert result.counters["errors"] >= 3 - 1
    assert counts(s) == {}


async def test_connection_errors_are_counted_not_fatal(tmp_path: Path) -> None:
    s = PollerSettings(base_url="http://127.0.0.1:9", interval_s=0.02, db_path=str(tmp_path / "p.db"), timeout_s=2)
    stop = asyncio.Event()
    task = asyncio.create_task(run_fleet(s, stop))
    # Long enough for the fleet to start and poll on a loaded machine: the assertions count
    # what happened, whatever the window.
    await asyncio.sleep(1.5)
    stop.set()
    result = await asyncio.wait_for(task, 10)
    assert result.counters["errors"] >= 1
    # Every finished request failed; the one in flight at stop was cancelled, not counted.
    assert result.counters["requests"] - 1 <= result.counters["errors"] <= result.counters["requests"]
    assert result.counters["rtt"]["mean"] is None


async def test_long_poll_asks_again_at_once_and_stops_promptly(feed: tuple[Feed, ServerThread], tmp_path: Path, kind: str) -> None:
    f, server = feed
    s = settings_for(server, tmp_path, kind, interval_s=0.2, long_poll_wait_s=20)
    stop = asyncio.Event()
    task = asyncio.create_task(run_fleet(s, stop))
    assert await wait_until(lambda: len(f.requests) == 1)  # held by the provider: nothing to say yet
    f.publish(2)
    assert await wait_until(lambda: counts(s) == {"p0": 2})
    f.publish(1)
    assert await wait_until(lambda: counts(s) == {"p0": 3})
    stop.set()  # a long poll is in flight now: it is cancelled, not waited for
    result = await asyncio.wait_for(task, 5)
    assert all(r["wait"] == 20 for r in f.requests)
    # Every request was held until news (none came back empty), so few were needed.
    assert len(f.requests) <= 5
    assert result.counters["events"] == 3
    assert result.counters["empty_polls"] == 0


@pytest.mark.slow  # waits for the back-off to grow, with both clients
async def test_adaptive_backs_off_when_empty(feed: tuple[Feed, ServerThread], tmp_path: Path, kind: str) -> None:
    f, server = feed
    f.publish(1)
    s = settings_for(server, tmp_path, kind, interval_s=0.05, adaptive=True, max_interval_s=0.4)
    await run_until(s, lambda: len(f.requests) >= 6)
    gaps = [b["t"] - a["t"] for a, b in zip(f.requests, f.requests[1:])]
    # News, then empty polls doubling the interval up to the cap: gaps 0.05, 0.1, 0.2, 0.4, 0.4.
    # (Lower bounds with slack: an open-loop poll can start a little late, never early.)
    assert gaps[2] > 0.15 and gaps[3] > 0.3 and gaps[4] > 0.3


async def test_snapshot_mode_records_versions(feed: tuple[Feed, ServerThread], tmp_path: Path, kind: str) -> None:
    f, server = feed
    f.publish(3)
    s = settings_for(server, tmp_path, kind, snapshot=True)
    stop = asyncio.Event()
    task = asyncio.create_task(run_fleet(s, stop))
    assert await wait_until(lambda: counts(s) == {"p0": 1})
    assert await wait_until(lambda: any(r["if_none_match"] == '"v3"' for r in f.requests))
    f.publish(1)
    assert await wait_until(lambda: counts(s) == {"p0": 2})
    stop.set()
    result = await asyncio.wait_for(task, 10)
    assert sorted(e for _, e, _ in records.load_events(s.db_path)) == [3, 4]
    assert result.counters["versions_seen"] == 2
    assert result.counters["versions_missed"] == 2  # versions 1 and 2 were never seen
    assert result.counters["not_modified"] >= 1


async def test_stats_file(feed: tuple[Feed, ServerThread], tmp_path: Path, kind: str) -> None:
    f, server = feed
    f.publish(2)
    stats_path = tmp_path / "poller.stats.json"
    s = settings_for(server, tmp_path, kind, stats_path=str(stats_path))
    await run_until(s, lambda: counts(s) == {"p0": 2})
    stats = json.loads(stats_path.read_text())
    assert set(stats) == {"role", "pid", "cpu_s", "wire", "counters", "histograms"}
    assert set(stats["histograms"]) == {"lateness", "rtt"}  # encoded, for an exact merge across processes
    assert stats["histograms"]["lateness"]["count"] == stats["counters"]["polls"]
    assert stats["role"] == "poller" and stats["pid"] == os.getpid()
    assert set(stats["wire"]) == {"bytes_in", "bytes_out", "connections"}
    for key in ("polls", "empty_polls", "not_modified", "pages", "requests", "throttled", "errors", "skipped_ticks"):
        assert isinstance(stats["counters"][key], int), key
    assert set(stats["counters"]["lateness"]) == {"mean", "p50", "p90", "p99", "max"}
    assert set(stats["counters"]["rtt"]) == {"mean", "p50", "p90", "p99", "max"}
    assert API_KEY not in stats_path.read_text()


@pytest.mark.parametrize("kind", ["raw", pytest.param("httpx", marks=pytest.mark.slow)])  # a process per client: one stays fast
async def test_module_entry_stops_cleanly_on_sigterm(feed: tuple[Feed, ServerThread], tmp_path: Path, kind: str) -> None:
    f, server = feed
    f.publish(3)
    s = settings_for(server, tmp_path, kind, stats_path=str(tmp_path / "stats.json"))
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(s.model_dump_json())
    proc = subprocess.Popen([sys.executable, "-m", "labkit.consumers.poller", str(settings_file)], stderr=subprocess.PIPE)  # noqa: ASYNC220
    try:
        assert await wait_until(lambda: counts(s) == {"p0": 3}, timeout=20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["role"] == "poller" and stats["pid"] == proc.pid
    assert stats["counters"]["events"] == 3


def test_module_entry_rejects_bad_settings(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"base_url": "http://127.0.0.1:1", "pollers": 0}))
    proc = subprocess.run(
        [sys.executable, "-m", "labkit.consumers.poller", str(bad)], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 2
    assert "pollers" in proc.stderr and "Traceback" not in proc.stderr
