"""This machine's run overhead: fitted from runs, cached per machine, used to size a decision's publishing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit.runs import overhead
from labkit.runs.overhead import DEFAULT_FIXED_S, DEFAULT_PER_CONSUMER_S, Overhead, RunCost


def test_without_samples_the_stated_defaults_are_used_and_said_so() -> None:
    ov = Overhead()
    assert ov.cost("webhook").startup_s(100) == pytest.approx(DEFAULT_FIXED_S + 100 * DEFAULT_PER_CONSUMER_S)
    assert "not measured here yet" in ov.source("webhook")


def test_start_up_is_fitted_over_consumers() -> None:
    cost = RunCost(((1, 5.0), (1001, 15.0)))
    fixed, per = cost.fit()
    assert fixed == pytest.approx(4.99) and per == pytest.approx(0.01)
    assert cost.startup_s(2001) == pytest.approx(25.0, rel=1e-3)


def test_start_up_between_measured_counts_is_interpolated_not_fitted() -> None:
    # measured here: one consumer 12 s, 100 consumers 10 s, 250 consumers 40 s (a straight line would say 21 s at 100)
    cost = RunCost(((1, 12.0), (100, 10.0), (250, 40.0)))
    assert cost.startup_s(100) == pytest.approx(10.0)
    assert cost.startup_s(175) == pytest.approx(25.0)
    assert cost.startup_s(1) == pytest.approx(12.0)
    assert cost.startup_s(350) > 40.0


def test_a_run_adds_its_start_up_and_throughput() -> None:
    summary = {"workload": {"duration_s": 20.0}, "styles": {"webhook": {"drain_s": 5.0, "delivered": 5000}}}  # a backlog: saturated
    ov = overhead.observe(Overhead(), "webhook", 250, 40.0, summary)
    assert ov.cost("webhook").samples == ((250, 15.0),)
    assert ov.cost("webhook").throughput_per_s == pytest.approx(200.0)
    # a push the provider cannot keep up with takes longer than its publishing
    assert ov.slope("webhook", 400.0) == pytest.approx(2.0) and ov.slope("webhook", 100.0) == 1.0


def test_the_cache_is_per_machine_and_a_damaged_one_is_measured_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert overhead.load() == Overhead()
    ov = Overhead({"sse": RunCost(((10, 3.0),), 900.0)}, report_s=12.0)
    overhead.save(ov)
    assert overhead.cache_path().parent == tmp_path / "labkit"
    assert overhead.load() == ov
    overhead.cache_path().write_text("{not json")
    assert overhead.load() == Overhead()


def test_a_cache_of_an_older_version_keeps_its_report_time_and_measures_every_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # runs cached before version 2 counted the publisher falling behind as start-up (a webhook run of 714 "started" in 382 s)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    overhead.save(Overhead({"webhook": RunCost(((714, 382.0),))}, report_s=3.0))
    data = json.loads(overhead.cache_path().read_text())
    assert data["version"] == overhead.CACHE_VERSION
    del data["version"]
    overhead.cache_path().write_text(json.dumps(data))
    old = overhead.load()
    assert not old.cost("webhook").measured
    assert old.report_seconds == 3.0


def test_a_publisher_behind_its_timetable_is_publishing_not_start_up() -> None:
    # the 15:06 UTC decide's webhook run: 15 s of events, the session's window 388 s, 397 s in all
    behind = {"workload": {"duration_s": 15.0}, "styles": {"webhook": {"drain_s": 0.0, "delivered": 15030, "cpu": {"window_s": 388.3}}}}
    assert overhead.split(397.0, behind) == pytest.approx((8.7, 388.3, 0.0))
    assert overhead.observe(Overhead(), "webhook", 714, 397.0, behind).cost("webhook").samples == ((714, 8.7),)
    # on time: the window's start delay and counter reads stay in the start-up, publishing is the timetable's
    on_time = {"workload": {"duration_s": 40.0}, "styles": {"sse": {"drain_s": 0.5, "cpu": {"window_s": 40.9}}}}
    assert overhead.split(52.0, on_time) == pytest.approx((11.5, 40.0, 0.5))
    # an older summary without the window: the timetable's duration
    assert overhead.split(30.0, {"workload": {"duration_s": 15.0}, "styles": {"webhook": {"drain_s": 1.0}}}) == pytest.approx(
        (14.0, 15.0, 1.0)
    )
