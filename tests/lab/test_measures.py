"""The failure measures on small hand-made tables."""

from __future__ import annotations

import pytest

from labkit.lab import measures

S = 1_000_000_000  # ns per second


def test_catch_up_counts_from_the_fault_end_to_the_last_backlog_arrival() -> None:
    created = {1: 1 * S, 2: 2 * S, 3: 5 * S}
    received = {("c", 1): 1 * S + 10, ("c", 2): 4 * S, ("c", 3): 5 * S + 10}
    assert measures.catch_up_s(created, received, ["c"], 3 * S) == pytest.approx(1.0)  # event 2 arrived 1 s after
    assert measures.catch_up_s(created, received, ["c"], 6 * S) == 0.0  # nothing outstanding then
    assert measures.catch_up_s(created, {("c", 1): S}, ["c"], 3 * S) is None  # event 2 never came
    assert measures.catch_up_s(created, received, ["c", "d"], 3 * S) is None  # consumer d has nothing


def test_lost_counts_per_consumer() -> None:
    created = {1: 0, 2: 0}
    assert measures.lost(created, {("a", 1): 5, ("a", 2): 5, ("b", 1): 5}, ["a", "b"]) == 1
    assert measures.lost(created, {}, []) == 0


def test_retry_effect_splits_first_try_from_retried() -> None:
    created = {1: 0, 2: 0, 3: 0}
    received = {("c", 1): 1_000_000, ("c", 2): 3_000_000, ("c", 3): 101_000_000}
    out = measures.retry_effect(created, received, {("c", 3): 4, ("c", 1): 1})
    assert out["retried_events"] == 1
    assert out["latency_first_try_ms"]["count"] == 2 and out["latency_retried_ms"]["count"] == 1
    assert out["retry_delay_added_ms"] == pytest.approx(101 - 2, rel=0.01)
    assert measures.retry_effect(created, received, {})["retry_delay_added_ms"] is None


def test_split_latency_by_fault_window() -> None:
    created = {1: 1 * S, 2: 3 * S}
    received = {("c", 1): 1 * S + 2_000_000, ("c", 2): 3 * S + 500_000_000}
    during, outside = measures.split_latency(created, received, [(2 * S, 4 * S)])
    assert during["count"] == 1 and during["max"] == pytest.approx(500, rel=0.01)
    assert outside["count"] == 1 and outside["max"] == pytest.approx(2, rel=0.01)


def test_first_received_keeps_the_earliest() -> None:
    assert measures.first_received([("c", 1, 9), ("c", 1, 5), ("d", 1, 7)]) == {("c", 1): 5, ("d", 1): 7}


def test_merge_counters_adds_numbers_and_keeps_the_last_latency() -> None:
    merged = measures.merge_counters(
        [
            {"requests": 3, "rejected": {"x": 1}, "rtt": {"mean": 1.0, "p50": 1.0, "p90": 1, "p99": 1, "max": 1}, "flag": True},
            {"requests": 2, "rejected": {"x": 2, "y": 1}, "rtt": {"mean": None, "p50": None, "p90": None, "p99": None, "max": None}},
            {"requests": 1, "rtt": {"mean": 3.0, "p50": 3.0, "p90": 3, "p99": 3, "max": 3}},
        ]
    )
    assert merged["requests"] == 6 and merged["rejected"] == {"x": 3, "y": 1}
    assert merged["rtt"]["mean"] == 3.0 and merged["flag"] is True
    assert measures.merge_counters([]) == {}
