"""Per-consumer measures of an audience run, from a run's rows (no servers)."""

from types import SimpleNamespace

import pytest

from labkit.lab.audience import audience_block
from labkit.lab.measures import by_consumer_window, lost


def fake_run(**kw):
    base = {
        "consumers": ["p0", "p1", "p2", "p3"],
        "shares": [0.6, 0.2, 0.15, 0.05],
        "events": [("x", "p0", 1, 0, 10_000_000), ("x", "p0", 2, 0, 30_000_000), ("x", "p3", 3, 0, 500_000_000)],
        "expected": {"p0": 2, "p1": 1, "p2": 0, "p3": 1},
        "window_by_consumer": {
            "polls_by_consumer": {"p0": 10, "p1": 10, "p2": 10, "p3": 10},
            "empty_polls_by_consumer": {"p0": 8, "p1": 9, "p2": 10, "p3": 9},
        },
    }
    base.update(kw)
    return SimpleNamespace(**base)


def test_deciles_spread_and_loss_per_consumer():
    block = audience_block(fake_run(), 10.0, pulled=True, interval_s=1.0, long_poll_wait_s=0.0)
    heavy, light = block["heaviest_decile"], block["lightest_decile"]
    assert heavy["consumers"] == 1 and heavy["latency_ms"]["count"] == 2 and heavy["empty_poll_ratio"] == pytest.approx(0.8)
    assert light["latency_ms"]["count"] == 1 and light["latency_ms"]["p50"] == pytest.approx(500, rel=0.01)
    assert light["empty_poll_ratio"] == pytest.approx(0.9)
    assert heavy["model_empty_poll_ratio"] < light["model_empty_poll_ratio"]
    assert block["deliveries_per_consumer"] == {"min": 0, "median": 1, "max": 2}
    assert block["polls_per_consumer"] == {"min": 10, "median": 10, "max": 10}
    assert block["empty_poll_ratio"] == pytest.approx(36 / 40)
    assert block["consumers_with_loss"] == 1 and block["most_lost_by_one_consumer"] == 1  # p1 never got its event
    assert block["model"]["kind"] == "model"


def test_push_has_no_poll_figures():
    block = audience_block(fake_run(window_by_consumer={}), 10.0, pulled=False, interval_s=1.0, long_poll_wait_s=0.0)
    assert "polls_per_consumer" not in block and "empty_poll_ratio" not in block["heaviest_decile"]
    assert block["model"]["fanout_per_event"] == pytest.approx(1.0)


def test_window_per_consumer_and_lost_against_the_audience():
    start = {"polls_by_consumer": {"p0": 2, "p1": 1}, "polls": 3}
    end = {"polls_by_consumer": {"p0": 5, "p1": 1}, "polls": 6}
    assert by_consumer_window(start, end) == {"polls_by_consumer": {"p0": 3, "p1": 0}}
    created = {1: 0, 2: 0, 3: 0}
    received = {("a", 1): 1, ("b", 2): 1}
    assert lost(created, received, ["a", "b"]) == 4  # a broadcast: each should have all three
    assert lost(created, received, ["a", "b"], {"a": {1}, "b": {2, 3}}) == 1  # b's event 3


def test_duplicates_count_per_consumer_against_its_own_events(tmp_path):
    from labkit.consumers.records import RecordStore, load_repeats
    from labkit.lab.measures import duplicates

    path = str(tmp_path / "r.db")
    with RecordStore(path) as store:
        store.record_page("a", [1, 2], 10, "2", None)
        store.record_page("a", [1, 2], 20, "2", None)  # a's page twice: its event 1, and b's event 2 (a misdelivery)
        store.record_page("b", [2], 10, "2", None)
        store.record_page("b", [99], 10, "99", None)
        store.record_page("b", [99], 20, "99", None)  # an event the provider never logged
    created = {1: 0, 2: 0}
    repeats = load_repeats(path)
    assert duplicates(repeats, created, ["a", "b"], {"a": {1}, "b": {2}}) == {"a": 1, "b": 0}
    assert duplicates(repeats, created, ["a", "b"]) == {"a": 2, "b": 0}  # a broadcast: every logged event is everyone's


def test_the_run_wide_duplicates_are_the_per_consumer_ones_not_the_counters():
    from labkit.config import RunSettings
    from labkit.lab.outcome import StyleRun
    from labkit.lab.pipeline import summarise_style

    settings = RunSettings(workload={"rate_per_s": 10.0, "duration_s": 1.0})
    run = StyleRun(
        style="polling",
        published_ids=[1, 2],
        publish_errors=0,
        publish_lateness_ms={},
        consumers=["a", "b"],
        drained=True,
        drain_s=0.1,
        provider_cpu_s=1.0,
        consumer_cpu_s=1.0,
        # the consumers saw 3 repeated events in all, 2 of them of events that were not theirs
        consumer_stats={"counters": {"requests": 4, "duplicate_events": 3}, "wire": {}},
        deliveries={},
        delivery_rtt_s=None,
        events=[("polling", "a", 1, 0, 1_000_000), ("polling", "a", 2, 0, 1_000_000), ("polling", "b", 2, 0, 1_000_000)],
        expected={"a": 1, "b": 1},
        misdelivered=1,
        duplicates_by_consumer={"a": 1, "b": 0},
        audience={"audience": "per-consumer"},
        shares=[0.5, 0.5],
    )
    out = summarise_style(run, settings)
    assert out["duplicates"] == 1 and out["lost"] == 0
    assert out["audience"]["consumers_with_duplicates"] == 1 and out["audience"]["most_duplicates_by_one_consumer"] == 1
