"""Capacity finding on committed Locust stats history fixtures (golden inputs, see fixtures/make_fixtures.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from labkit.capacity import analysis
from labkit.capacity.analysis import Slo
from labkit.capacity.lag import LagHistograms, LagSample, LagTracker
from labkit.errors import ResultsError

FIXTURES = Path(__file__).parent / "fixtures"
SLO = Slo(p99_ms=100, max_failure_ratio=0.01)


def polling_steps(resources: str) -> pd.DataFrame:
    history = analysis.read_history(FIXTURES / "polling_stats_history.csv")
    steps = analysis.find_steps(history, settle_s=2.0)
    return analysis.step_table(history, analysis.read_resources(FIXTURES / resources), steps, SLO)


def test_steps_are_runs_at_one_user_count_and_spawning_rows_are_left_out():
    history = analysis.read_history(FIXTURES / "polling_stats_history.csv")
    steps = analysis.find_steps(history, settle_s=2.0)
    assert [s.users for s in steps] == [50, 100, 150, 200]
    assert all(s.end - s.start >= 10 for s in steps)


def test_per_step_numbers_come_from_the_steady_part():
    table = polling_steps("resources_server_bound.csv")
    assert table["users"].tolist() == [50, 100, 150, 200]
    # one poll per user per second, give or take the rows' alignment
    assert table["rps"].tolist() == pytest.approx([50, 100, 150, 200], rel=0.02)
    # the windowed p99 at each step's last row, not the leftovers of the step before
    assert table["p99_ms"].tolist() == [10, 20, 60, 250]
    assert table["failure_ratio"].iloc[3] == pytest.approx(0.005, rel=0.05)
    assert table["met_slo"].tolist() == [True, True, True, False]
    assert table["server_cpu_percent"].tolist() == [25, 50, 75, 97]


def test_server_cpu_limits_when_the_server_is_near_one_core_at_the_breach():
    cap = analysis.find_capacity(polling_steps("resources_server_bound.csv"), SLO, max_users=200)
    assert (cap.users, cap.step, cap.limited_by) == (150, 3, "server CPU")
    assert cap.rps == pytest.approx(150, rel=0.02)
    assert cap.p99_ms == 60
    assert not cap.lower_bound and not cap.load_generator_saturated
    assert "provider at 97% of one core" in cap.reason


def test_a_saturated_load_generator_is_flagged_and_makes_a_lower_bound():
    cap = analysis.find_capacity(polling_steps("resources_locust_bound.csv"), SLO, max_users=200)
    assert (cap.users, cap.limited_by) == (150, "load generator CPU")
    assert cap.lower_bound and cap.load_generator_saturated
    assert "lower bound" in cap.reason


def test_latency_limits_when_nothing_is_saturated():
    cap = analysis.find_capacity(polling_steps("resources_latency_bound.csv"), SLO, max_users=200)
    assert (cap.users, cap.limited_by, cap.lower_bound) == (150, "latency", False)


def test_no_breach_means_at_least_max_users():
    cap = analysis.find_capacity(polling_steps("resources_latency_bound.csv"), Slo(1000), max_users=200)
    assert (cap.users, cap.step, cap.limited_by, cap.lower_bound) == (200, 4, "max users", True)
    cap = analysis.find_capacity(polling_steps("resources_latency_bound.csv"), Slo(1000), max_users=500)
    assert cap.limited_by == "time limit"


def test_a_breach_at_the_first_step_is_no_capacity():
    cap = analysis.find_capacity(polling_steps("resources_latency_bound.csv"), Slo(5), max_users=200)
    assert (cap.users, cap.rps, cap.step) == (0, 0.0, None)


def test_distributed_counts_that_jump_on_worker_reports_give_the_right_rate():
    history = analysis.read_history(FIXTURES / "fanout_stats_history.csv")
    steps = analysis.find_steps(history, settle_s=2.0)
    table = analysis.step_table(
        history, analysis.read_resources(FIXTURES / "missing.csv"), steps, SLO,
        slo_metric=("LAG", "delivery"), rate_metric=("POST", "/events"),
    )  # fmt: skip
    assert table["rps"].tolist() == pytest.approx([10, 20, 30], rel=0.05)  # a slope through the jumps
    assert table["p99_ms"].tolist() == [40, 80, 400]
    cap = analysis.find_capacity(table, SLO, max_users=30)
    assert (cap.users, cap.limited_by) == (20, "latency")


def test_precise_lag_histograms_replace_locusts_rounded_p99():
    history = analysis.read_history(FIXTURES / "fanout_stats_history.csv")
    steps = analysis.find_steps(history, settle_s=2.0)
    lag = LagHistograms()
    for st in steps:  # 1000 samples a step: 1.000 .. 12.345 ms
        for i in range(1000):
            lag.record(LagSample("fanout-0", i, 1000 + i * 11.345, int((st.end - 1) * 1e9)))
    table = analysis.step_table(
        history, pd.DataFrame(columns=analysis.read_resources(FIXTURES / "missing.csv").columns), steps, SLO,
        slo_metric=("LAG", "delivery"), rate_metric=("POST", "/events"), lag=lag,
    )  # fmt: skip
    assert (table["p99_source"] == "hdrhistogram").all()
    assert table["p99_ms"].iloc[0] == pytest.approx(12.23, abs=0.02)
    assert table["p99_locust_ms"].tolist() == [40, 80, 400]
    assert table["met_slo"].all()


def test_lag_tracker_pairs_records_with_its_own_events_only():
    tracker = LagTracker(["fanout-0", "fanout-1"], timeout_s=1.0)
    tracker.published(5, 1_000)
    tracker.published(6, 2_000)
    rows = [("fanout-0", 6, 12_000), ("fanout-1", 5, 11_000), ("fanout-0", 99, 5_000), ("other", 5, 1)]
    samples = tracker.collect(rows)
    assert [(s.consumer, s.event_id, s.lag_us) for s in samples] == [("fanout-0", 6, 10.0), ("fanout-1", 5, 10.0)]
    assert tracker.collect(rows) == [], "a record counts once"
    assert tracker.oldest() == 5
    overdue = tracker.expire(now_ns=3_000_000_000)
    assert sorted((o.consumer, o.event_id) for o in overdue) == [("fanout-0", 5), ("fanout-1", 6)]
    assert len(tracker) == 0


def test_lag_histograms_survive_encoding_between_worker_and_master():
    worker, master = LagHistograms(), LagHistograms()
    for i in range(500):
        worker.record(LagSample("c", i, 100.0 + i, (10 + i % 3) * 1_000_000_000))
    master.merge_encoded(json.loads(json.dumps(worker.take_encoded())))
    assert worker.by_second == {}
    assert master.window().get_total_count() == 500
    assert sorted(master.by_second) == [10, 11, 12]
    again = LagHistograms.from_json(json.loads(json.dumps(master.to_json())))
    assert again.window(11, 11).get_total_count() == master.by_second[11].get_total_count()


def test_load_capacity_refuses_unknown_schema_and_missing_files(tmp_path):
    (tmp_path / "capacity.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(ResultsError, match="unknown schema_version"):
        analysis.load_capacity(tmp_path)
    with pytest.raises(ResultsError, match="no such"):
        analysis.load_capacity(tmp_path / "nope")
    with pytest.raises(ResultsError, match="not a Locust stats history"):
        (tmp_path / "x.csv").write_text("a,b\n1,2\n")
        analysis.read_history(tmp_path / "x.csv")
