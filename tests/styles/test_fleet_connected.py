"""Waiting for a stream fleet to connect: done when every stream is up, and a provider out of files is named.

``fleet_connected`` judges a provider at its open-files limit by two sightings
``AT_LIMIT_S`` apart with streams still missing, never reset by a sighting below
the limit in between (a provider out of files swings below it while the streams
it refused let go). A fake clock and a scripted fleet make each case exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from labkit.errors import OpenFilesExhausted, ServerError
from labkit.styles import stream

N = 100
FULL = (1000, 1000)  # (open, limit): at the limit


class Clock:
    """Stands in for ``time`` in the style module: a poll's sleep moves the clock on, nothing waits."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Child:
    name = "streams"
    popen = None

    def alive(self) -> bool:
        return True

    def log_tail(self) -> str:
        return "(log)"


def _script(monkeypatch: pytest.MonkeyPatch, polls: list[tuple[int, bool]]) -> Clock:
    """One (streams connected, provider at its limit) per poll, the last repeated; a poll every 0.1 s of the fake clock."""
    clock = Clock()
    samples: Iterator[tuple[int, bool]] = iter(polls)
    now: list[tuple[int, bool]] = [polls[0]]

    def snapshot(child: Any, path: Any) -> dict[str, Any]:
        now[0] = next(samples, now[0])
        return {"counters": {"connected": now[0][0]}}

    monkeypatch.setattr(stream, "time", clock)
    monkeypatch.setattr(stream, "snapshot_stats", snapshot)
    monkeypatch.setattr(stream.openfiles, "at_limit", lambda pid: FULL if now[0][1] else None)
    return clock


def test_a_fleet_connects_although_its_provider_touched_its_limit_on_the_way(monkeypatch: pytest.MonkeyPatch) -> None:
    _script(monkeypatch, [(10, True), (40, False), (70, False), (N, False)])
    assert stream.fleet_connected(Child(), "stats", N, timeout_s=60, provider_pid=1)["connected"] == N


def test_every_stream_up_is_connected_even_with_the_provider_at_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    within = round(stream.AT_LIMIT_S / 0.1) - 5  # sightings of the limit, all under AT_LIMIT_S apart, before the last stream
    _script(monkeypatch, [(10, True)] * within + [(N, True)])
    assert stream.fleet_connected(Child(), "stats", N, timeout_s=60, provider_pid=1)["connected"] == N


def test_a_provider_at_its_limit_twice_apart_with_streams_missing_is_out_of_files(monkeypatch: pytest.MonkeyPatch) -> None:
    below = round(stream.AT_LIMIT_S / 0.1) + 5  # polls below the limit in between: its count swings
    clock = _script(monkeypatch, [(60, True)] + [(60, False)] * below + [(61, True)])
    with pytest.raises(OpenFilesExhausted) as err:
        stream.fleet_connected(Child(), "stats", N, timeout_s=600, provider_pid=1)
    assert (err.value.connected, err.value.requested, err.value.open_files, err.value.limit) == (61, N, *FULL)
    assert clock.now < 2 * stream.AT_LIMIT_S  # judged on the second sighting (the first one at 0 s counts too), not later


def test_a_fleet_short_of_streams_without_a_provider_at_its_limit_says_how_many(monkeypatch: pytest.MonkeyPatch) -> None:
    _script(monkeypatch, [(10, True), (60, False)])
    with pytest.raises(ServerError, match=f"60 of {N} streams connected within 30 s") as err:
        stream.fleet_connected(Child(), "stats", N, timeout_s=30, provider_pid=1)
    assert not isinstance(err.value, OpenFilesExhausted)
