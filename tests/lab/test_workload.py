import json

import pytest

from labkit.config import WorkloadSettings
from labkit.errors import ConfigError
from labkit.lab.workload import build_workload


def test_same_seed_same_stream_other_seed_other_stream():
    a = build_workload(WorkloadSettings(rate_per_s=40, duration_s=5, seed=7))
    b = build_workload(WorkloadSettings(rate_per_s=40, duration_s=5, seed=7))
    c = build_workload(WorkloadSettings(rate_per_s=40, duration_s=5, seed=8))
    assert a.offsets_s == b.offsets_s and a.payloads == b.payloads
    assert a.offsets_s != c.offsets_s


def test_constant_arrivals_are_evenly_spaced():
    w = build_workload(WorkloadSettings(arrival="constant", rate_per_s=10, duration_s=2))
    assert len(w) == 20
    assert w.offsets_s[1] - w.offsets_s[0] == pytest.approx(0.1)


def test_poisson_count_is_near_rate_times_duration():
    w = build_workload(WorkloadSettings(rate_per_s=200, duration_s=10, seed=3))
    assert 1800 < len(w) < 2200
    assert all(0 <= t < 10 for t in w.offsets_s)


def test_bursty_arrivals_fall_in_on_windows():
    w = build_workload(WorkloadSettings(arrival="bursty", rate_per_s=20, duration_s=10, burst_on_s=1, burst_off_s=4))
    assert all((t % 5.0) < 1.0 for t in w.offsets_s)
    assert 120 < len(w) < 280


def test_payload_has_the_requested_size():
    w = build_workload(WorkloadSettings(rate_per_s=5, duration_s=2, payload_bytes=1000))
    assert all(len(json.dumps(p, separators=(",", ":"))) == 1000 for p in w.payloads)


def test_trace_replay(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("timestamp\n100.0\n100.5\n101.25\n")
    w = build_workload(WorkloadSettings(arrival="trace", trace_path=str(trace), duration_s=60))
    assert w.offsets_s == (0.0, 0.5, 1.25)
    trace.write_text("timestamp\n1\nnot-a-time\n")
    with pytest.raises(ConfigError, match="not a timestamp"):
        build_workload(WorkloadSettings(arrival="trace", trace_path=str(trace), duration_s=60))
