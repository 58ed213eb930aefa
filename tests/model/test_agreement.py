"""Agreement sizing: standard errors, bounds, and the events a point needs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from labkit.lab.workload import build_workload
from labkit.model.agreement import (
    latency_agreement,
    latency_bound_ms,
    mean_se,
    polling_point_size,
    proportion_se,
    ratio_agreement,
    sample_sd,
    samples_needed,
    trials_needed,
    uniform_sd,
    width_in_se,
)
from labkit.runs.experiments import load_experiment

ROOT = Path(__file__).resolve().parents[2]


def test_the_bound_is_ten_percent_or_two_ms_below_twenty() -> None:
    assert latency_bound_ms(51.0) == pytest.approx(5.1)
    assert latency_bound_ms(19.9) == 2.0
    assert latency_bound_ms(20.0) == pytest.approx(2.0)
    assert latency_bound_ms(3.0) == 2.0
    with pytest.raises(ValueError):
        latency_bound_ms(-1)


def test_standard_errors() -> None:
    assert uniform_sd(0.1) == pytest.approx(0.028868, abs=1e-6)
    assert mean_se(28.8675, 150) == pytest.approx(2.357, abs=1e-3)
    assert mean_se(1.0, 0) == math.inf
    assert proportion_se(math.exp(-1), 500) == pytest.approx(0.021566, abs=1e-6)
    assert proportion_se(0.5, 100) == pytest.approx(0.05)
    assert sample_sd([1.0, 2.0, 3.0]) == pytest.approx(1.0) and sample_sd([1.0]) == 0
    assert width_in_se(1.0, 0.0) == math.inf
    with pytest.raises(ValueError):
        proportion_se(1.5, 10)


def test_the_issue_s_point_is_only_two_standard_errors_wide() -> None:
    # wasted-polls at lambda T = 0.1 before: 150 events, model 51 ms
    a = latency_agreement(51.0, uniform_sd(0.1) * 1000, 150, measured_ms=56.8)
    assert a.se / 51.0 == pytest.approx(0.046, abs=0.001)
    assert a.width_se == pytest.approx(2.16, abs=0.01)
    assert not a.sized and not a.agrees  # 56.8 is 5.8 ms off, the bound 5.1 ms
    assert latency_agreement(51.0, uniform_sd(0.1) * 1000, 600, measured_ms=52.0).as_dict()["agrees"] is True


def test_events_and_polls_needed() -> None:
    # (4 x 28.87 / 5.0)^2 = 533.3 -> 534, for any T (sd and bound scale alike)
    assert samples_needed(uniform_sd(0.1) * 1000, 5.0) == 534
    assert samples_needed(uniform_sd(1.0) * 1000, 50.0) == 534
    assert samples_needed(1.0, 2.0) == 4
    assert trials_needed(math.exp(-1), 0.05) == 1489  # 16 x 0.2325 / 0.0025
    assert trials_needed(0.0, 0.05) == 1
    with pytest.raises(ValueError):
        samples_needed(1.0, 0)


def test_a_polling_point_is_sized_for_both_checks() -> None:
    low = polling_point_size(1.0, 0.1)
    assert (low["events_needed"], low["polls_needed"], low["duration_s"]) == (534, 552, 534.0)
    mid = polling_point_size(10.0, 0.1)
    assert mid["duration_s"] == pytest.approx(148.9)  # the empty-ratio check decides here
    assert polling_point_size(100.0, 0.1)["duration_s"] == pytest.approx(5.34)
    with pytest.raises(ValueError):
        polling_point_size(0, 0.1)


def test_every_shipped_wasted_polls_point_is_at_least_four_standard_errors_wide() -> None:
    exp = load_experiment(ROOT / "scenarios" / "experiments" / "wasted-polls.toml")
    assert len(exp.points) == 3
    for point in exp.points:
        s = point.settings
        T = s.poll_interval_s
        events = len(build_workload(s.workload))
        polls = int(s.workload.duration_s / T)
        latency = latency_agreement(T * 500, uniform_sd(T) * 1000, events)
        ratio = ratio_agreement(math.exp(-s.workload.rate_per_s * T), polls)
        assert latency.sized, (point.params, events, latency.width_se)
        assert ratio.sized, (point.params, polls, ratio.width_se)
