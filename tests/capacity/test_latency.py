"""Exact request latency: coordinated-omission correction, exact merging, the .hlog files, per-step windows."""

from __future__ import annotations

import json

import pandas as pd
from hdrh.log import HistogramLogReader

from labkit.capacity import analysis
from labkit.capacity.lag import new_histogram
from labkit.capacity.latency import LatencyRecorder, MergedLatency, latency_paths, read_latency

T0 = 1_800_000_000


def test_correction_adds_the_requests_a_slow_answer_held_back():
    rec = LatencyRecorder(interval_s=1.0)
    rec.record(3500.0, T0)  # 3.5 intervals: 3 more requests would have been due meanwhile
    rec.record(10.0, T0)
    delta = rec.take()["seconds"][str(T0)]
    corrected, raw = new_histogram(), new_histogram()
    corrected.decode_and_add(delta["corrected"].encode())
    raw.decode_and_add(delta["raw"].encode())
    assert raw.get_total_count() == 2 and corrected.get_total_count() == 5
    assert corrected.get_count_at_value(2_500_000) == 1 and corrected.get_count_at_value(500_000) == 1
    assert delta["requests"] == 2


def test_no_interval_means_no_correction():
    rec = LatencyRecorder(interval_s=0)
    rec.record(3500.0, T0)
    delta = rec.take()["seconds"][str(T0)]
    h = new_histogram()
    h.decode_and_add(delta["corrected"].encode())
    assert h.get_total_count() == 1


def test_take_is_a_delta():
    rec = LatencyRecorder(1.0)
    rec.record(5.0, T0)
    assert rec.take()["seconds"]
    assert rec.take()["seconds"] == {}
    assert rec.totals["requests"] == 1


def test_merge_is_exact_across_nodes_and_reports(tmp_path):
    a, b = LatencyRecorder(0.5), LatencyRecorder(0.5)
    merged = MergedLatency()
    for i in range(300):
        a.record(1 + i % 40, T0 + i / 100)
        if i % 100 == 99:
            merged.merge(a.take(), "worker-a")  # several reports from one worker
    for i in range(120):
        b.record(2 + i % 7, T0 + 1 + i / 60, failed=i % 30 == 0)
    b.late(T0 + 2, dropped=3)
    merged.merge(b.take(), "worker-b")
    paths = merged.write(tmp_path / "locust")
    assert paths == latency_paths(tmp_path / "locust")

    log = read_latency(tmp_path / "locust")
    assert log is not None
    whole = log.window()
    assert whole.raw.get_total_count() == whole.requests == 420 == a.totals["requests"] + b.totals["requests"]
    assert (whole.late, whole.dropped, whole.failures) == (1, 3, 4)
    meta = json.loads(paths["json"].read_text())
    assert meta["nodes"]["worker-a"]["requests"] == 300 and meta["nodes"]["worker-b"]["requests"] == 120
    assert meta["corrected_interval_s"] == 0.5
    first = log.window(T0, T0)
    assert first.requests == 100 and first.raw.get_total_count() == 100


def test_hlog_files_are_read_by_hdrhistograms_own_reader(tmp_path):
    rec = LatencyRecorder(1.0)
    for sec in range(3):
        for ms in (1, 2, 50):
            rec.record(ms, T0 + sec + 0.5)
    merged = MergedLatency()
    merged.merge(rec.take(), "local")
    paths = merged.write(tmp_path / "run")
    text = paths["raw"].read_text()
    assert text.startswith("#[Histogram log format version 1.3]")
    assert f"#[StartTime: {T0}.000 " in text and '"StartTimestamp","Interval_Length"' in text
    reader = HistogramLogReader(str(paths["raw"]), new_histogram())
    intervals = []
    while (h := reader.get_next_interval_histogram()) is not None:
        intervals.append((round(h.get_start_time_stamp() / 1000), h.get_total_count(), h.get_max_value()))
    reader.close()
    assert [i[0] for i in intervals] == [T0, T0 + 1, T0 + 2]
    assert all(n == 3 and 50_000 <= mx < 50_100 for _, n, mx in intervals)


def test_step_table_judges_on_the_exact_corrected_p99(tmp_path):
    # Locust says p99 = 80 ms (rounded), the SLO is 100 ms; one request in the steady part took 2.5 s,
    # so corrected for coordinated omission (interval 1 s) the p99 is far above the SLO.
    rec = LatencyRecorder(1.0)
    for sec in range(T0, T0 + 10):
        for _ in range(20):
            rec.record(40.0, sec + 0.5)
    rec.record(2500.0, T0 + 6.5)
    merged = MergedLatency()
    merged.merge(rec.take(), "local")
    merged.write(tmp_path / "locust")
    log = read_latency(tmp_path / "locust")
    rows = [
        {"Timestamp": ts, "User Count": 20, "Type": "", "Name": "Aggregated", "99%": 80.0,
         "Total Request Count": 20 * (ts - T0), "Total Failure Count": 0}
        for ts in range(T0, T0 + 11)
    ]  # fmt: skip
    history = pd.DataFrame(rows)
    steps = analysis.find_steps(history, settle_s=2)
    slo = analysis.Slo(100.0)
    table = analysis.step_table(history, analysis.read_resources(tmp_path / "none.csv"), steps, slo, latency=log)
    row = table.iloc[0]
    assert row["p99_locust_ms"] == 80.0 and row["p99_source"] == "hdrhistogram"
    assert row["requests_p99_uncorrected_ms"] < 100 < row["p99_exact_ms"] == row["p99_ms"]
    assert row["requests_recorded"] == 8 * 20 + 1  # seconds T0+2 .. T0+9: rows stamped T count what ended before T
    assert not row["met_slo"]


TIMETABLE_PROBE = r"""
import json
import labkit.capacity.locustlib as ll
clock = [100.0]
ll.time.monotonic = lambda: clock[0]  # this subprocess only
late = []
tt = ll.Timetable(1.0, on_late=late.append)
tt.due = 100.0
waits = []
for now in (100.5, 101.2, 102.5, 104.5, 107.7, 108.1):
    clock[0] = now
    waits.append(round(tt.wait(), 3))
print(json.dumps({"late": late, "waits": waits}))
"""


def test_timetable_reports_late_starts_and_dropped_slots():
    # Locust's import patches the process with gevent: the probe runs in a subprocess of its own.
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", TIMETABLE_PROBE], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    # slots due at 101, 102, 103 were kept; the task ending at 104.5 overran the slot at 104 (late, none dropped);
    # the one ending at 107.7 was 2.7 slots behind: 2 slots dropped, the next starts at once.
    assert found["late"] == [0, 2]
    assert found["waits"] == [0.5, 0.8, 0.5, 0.0, 0.0, 0.6]


def test_merged_window_gives_the_running_step_its_exact_numbers():
    rec = LatencyRecorder(1.0)
    for i in range(100):
        rec.record(10.0, T0 + 0.5, failed=i < 2)
    rec.record(900.0, T0 + 1.5)
    rec.record(5.0, T0 + 3.5)  # outside the window
    merged = MergedLatency()
    merged.merge(rec.take(), "worker-a")
    requests, failures, p99 = merged.window(T0, T0 + 2)
    assert (requests, failures) == (101, 2)
    assert 9.9 <= p99 <= 10.1
    assert merged.window(T0 + 10, T0 + 20) == (0, 0, None)
