"""The model's base comes from the machine's calibration, never from the run it judges; connections as they grow."""

from __future__ import annotations

import json
import math
import random
from types import SimpleNamespace

import pytest

from labkit.config import RunSettings, WorkloadSettings
from labkit.config.network import parse_network
from labkit.errors import ConfigError
from labkit.model import calibration as cal
from labkit.model.network import pool_connections
from labkit.styles import unit

CAL = cal.Calibration(
    "c0ffee",
    {"cpu_model": "x"},
    "0",
    "now",
    {"webhook": {"delivery_s": 0.0012, "attempt_s": 0.0008}, "polling": {"poll_s": 0.0009}},
)


def _webhook_run(events: int, attempt_s: float, latency_s: float, *, connections: int = 3) -> SimpleNamespace:
    """A finished webhook run as the pipeline hands it to the style (only what the summary reads)."""
    created = [i * 200_000_000 for i in range(events)]
    return SimpleNamespace(
        deliveries={"attempts": events, "retries": 0, "deliveries": events},
        consumer_stats={"counters": {}},
        published_ids=list(range(1, events + 1)),
        delivery_rtt_s=attempt_s,
        events=[("webhook", "s0", i + 1, c, c + int(latency_s * 1e9)) for i, c in enumerate(created)],
        provider_stats={"wire": {"connections": connections}},
        calibration=CAL,
    )


def test_the_model_input_does_not_change_when_the_runs_measured_attempts_do() -> None:
    settings = RunSettings(
        styles=("webhook",),
        network=parse_network("rtt=100ms"),
        webhook_connection="reuse",
        workload=WorkloadSettings(rate_per_s=5, duration_s=60),
    )
    style = unit("webhook")
    fast = style.summary(_webhook_run(300, 0.101, 0.052), settings, 300, 5.0)
    slow = style.summary(_webhook_run(300, 0.180, 0.095, connections=9), settings, 300, 5.0)
    assert fast["delivery_rtt_ms"] != slow["delivery_rtt_ms"]  # the measurements differ ...
    assert fast["model"] == slow["model"]  # ... and the model is the same: none of them is its input
    assert fast["model"]["base_source"] == "calibration c0ffee"
    assert fast["model"]["base"]["costs_ms"] == pytest.approx({"delivery_ms": 1.2, "attempt_ms": 0.8})
    # the connections opened, beside the model's count
    assert (fast["connections_opened"], slow["connections_opened"]) == (3, 9)
    assert 2 < fast["model"]["connections"] < 6


def test_a_broadcasts_fanout_queue_comes_from_the_calibration_not_from_the_runs_spread() -> None:
    """Two broadcasts to 50 subscribers whose deliveries were spread 0.2 ms and 5 ms apart: one model, the calibration's."""
    calibration = cal.Calibration(
        "f4n", {}, "0", "now", {"webhook": {"delivery_s": 0.0012, "attempt_s": 0.0008, "dispatch_cost_s": 0.0003}}
    )
    settings = RunSettings(styles=("webhook",), subscribers=50, workload=WorkloadSettings(rate_per_s=2, duration_s=10))

    def run(gap_ns: int) -> SimpleNamespace:
        base = _webhook_run(20, 0.001 + gap_ns / 1e9, 0.001)
        base.events = [("webhook", f"s{k}", e, e * 10**9, e * 10**9 + 10**6 + k * gap_ns) for e in range(1, 21) for k in range(50)]
        base.calibration = calibration
        return base

    tight, loose = (unit("webhook").summary(run(g), settings, 1000, 2.0)["model"] for g in (200_000, 5_000_000))
    assert tight == loose
    assert tight["fanout"]["deliveries_per_event"] == 50 and tight["parameters"]["dispatch_cost_s"]["value"] == 0.0003
    assert tight["latency_mean_ms"] == pytest.approx(1.2 + 49 / 2 * 0.3)


def test_the_polling_model_takes_the_calibrated_poll_not_the_runs() -> None:
    settings = RunSettings(styles=("polling",), poll_interval_s=0.2, network=parse_network("rtt=60ms"))
    style = unit("polling")

    def run(rtt_ms: float) -> SimpleNamespace:
        counters = {"polls": 100, "empty_polls": 10, "requests": 100, "rtt": {"mean": rtt_ms}}
        return SimpleNamespace(
            consumer_stats={"counters": counters, "wire": {"connections": 2}},
            window_counters={},
            events=[],
            calibration=CAL,
        )

    a, b = style.summary(run(61.0), settings, 100, 40.0), style.summary(run(95.0), settings, 100, 40.0)
    assert a["model"] == b["model"] and a["model"]["latency_mean_ms"] == pytest.approx(100 + 0.9 + 30)
    assert a["model"]["latency_p50_ms"] == pytest.approx(100 + 0.9 + 30)
    assert a["connections_opened"] == 2 and a["model"]["connections"] == 1


def test_a_run_without_a_calibration_says_its_base_is_none() -> None:
    assert cal.base_for(None, "webhook", ("delivery_s",)) == cal.Base("none", {})
    assert cal.base_for(CAL, "webhook", ("delivery_s", "missing_s")).source == "none"  # a cost it lacks: no half base
    assert cal.base_for(CAL, "polling", ("poll_s",)).get("poll_s") == 0.0009


def test_pool_connections_follow_littles_law() -> None:
    # nothing overlaps: one connection; every delivery its own: as many as deliveries
    assert pool_connections(0.1, 0.001, 100) == pytest.approx(1.0, abs=0.02)
    assert pool_connections(5.0, 0.1, 0) == 0.0
    # heavy overlap: about the most ever in flight (rho = 50, a few standard deviations above it), never above the deliveries
    assert 50 < pool_connections(50.0, 1.0, 5000) < 50 + 6 * math.sqrt(50)
    assert pool_connections(1e6, 1.0, 30) <= 30
    assert pool_connections(1000.0, 10.0, 500, max_connections=64) <= 64
    # more overlap (rate x attempt), or a longer run, never needs fewer connections
    grid = [pool_connections(r, 0.1, n) for r in (2, 5, 20) for n in (40, 300)]
    assert grid[0] <= grid[1] and grid[2] <= grid[3] and grid[1] <= grid[3] <= grid[5]


def test_pool_connections_agree_with_a_simulated_pool() -> None:
    """A LIFO pool fed by Poisson deliveries of a fixed attempt: its connections against the closed form."""
    rng = random.Random(7)
    for rate, attempt, n in ((5.0, 0.101, 300), (20.0, 0.102, 600)):
        opened = []
        for _ in range(300):
            t, busy_until, most = 0.0, [], 0
            for _ in range(n):
                t += rng.expovariate(rate)
                busy_until = [b for b in busy_until if b > t] + [t + attempt]
                most = max(most, len(busy_until))
            opened.append(most)
        mean = sum(opened) / len(opened)
        assert pool_connections(rate, attempt, n) == pytest.approx(mean, rel=0.15), (rate, mean)


def test_a_calibration_file_round_trips_and_the_override_wins(tmp_path, monkeypatch) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(CAL.as_dict()))
    monkeypatch.setenv(cal.ENV, str(path))
    overridden, got = cal.override()
    assert overridden and got is not None and got.costs == CAL.costs and got.source == "calibration c0ffee"
    monkeypatch.setenv(cal.ENV, "none")
    assert cal.override() == (True, None)
    monkeypatch.setenv(cal.ENV, str(tmp_path / "missing.json"))
    with pytest.raises(ConfigError, match="no such calibration file"):
        cal.override()
    path.write_text(json.dumps({**CAL.as_dict(), "schema_version": 99}))
    monkeypatch.setenv(cal.ENV, str(path))
    with pytest.raises(ConfigError, match="schema_version"):
        cal.override()


def test_the_cache_is_this_machines_and_this_versions(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cal.cache_dir() == tmp_path / "labkit" and cal.cached() is None
    mine = cal.Calibration("a1", cal.fingerprint(), cal.__version__, "now", {"webhook": {"delivery_s": 0.001}})
    path = cal.save(mine)
    assert path.parent == tmp_path / "labkit" and "results" not in path.parts
    got = cal.cached()
    assert got is not None and got.id == "a1"
    elsewhere = cal.Calibration("b2", {**cal.fingerprint(), "cpu_model": "another"}, cal.__version__, "now", {})
    cal.save(elsewhere)  # written under this machine's name, but made on another: not used
    assert cal.cached() is None
    path.write_text("{not json")
    assert cal.cached() is None  # a damaged cache is measured again, not an error
    assert not math.isnan(cal.fingerprint()["cpus_usable"])
