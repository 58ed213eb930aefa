"""``labkit bench`` runs end to end and writes a well-formed file; this is not a timed test.

The run uses the test-only tiny plan (``LABKIT_BENCH_TINY=1``): every benchmark
for a second or two, on real servers, so the numbers mean nothing; only the
shape of the results is checked.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.bench import RATIO_KEYS, SCHEMA_VERSION, TARGETS, read_bench
from labkit.bench.cases import paired_ratio, plan
from labkit.bench.suite import BENCHMARKS, TINY_ENV, Target, build_summary
from labkit.bench.table import rows as table_rows
from labkit.errors import ResultsError

pytestmark = pytest.mark.slow  # real servers for many seconds, a browser, benchmarks or Locust


def labkit(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labkit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_bench_quick_json_writes_a_well_formed_file(tmp_path: Path) -> None:
    proc = labkit("bench", "--quick", "--json", "--out", str(tmp_path), env={TINY_ENV: "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = json.loads(proc.stdout)
    files = list((tmp_path / "bench").glob("*.json"))
    assert len(files) == 1
    data = read_bench(files[0])
    assert printed == data
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["mode"] == "tiny"
    assert set(data["ratios"]) == set(RATIO_KEYS)
    for key, value in data["ratios"].items():
        if key.endswith("socat_p50") and not shutil.which("socat"):
            assert value is None
            continue
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)
    assert set(data["targets"]) == {t.name for t in TARGETS}
    for t in data["targets"].values():
        assert isinstance(t["pass"], bool) and t["op"] in (">=", "<=")
    # the dispatcher's pairs, each with how long its processes waited for a CPU (the machine's share of a low ratio)
    d = data["benchmarks"]["dispatcher"]
    assert len(d["ratios"]) == len(d["samples_per_s"]) == len(d["provider_wait_shares"]) == len(d["receiver_wait_shares"]["drain"])
    # the terminal table shows a verdict for every declared target (it once left the proxy's out)
    verdicts = [row[4] for row in table_rows(data) if row[4].startswith((">=", "<="))]
    assert len(verdicts) == len(TARGETS), verdicts
    assert set(data["benchmarks"]) == set(BENCHMARKS)
    assert set(BENCHMARKS) >= {
        "poll_endpoint",
        "dispatcher",
        "latency_floor",
        "poller_fleet",
        "receiver_ingest",
        "proxy_cost",
        "sse_fanout",
        "process_scaling",
    }
    assert data["benchmarks"]["latency_floor"]["delivered"] == data["benchmarks"]["latency_floor"]["events"] > 0
    assert data["environment"]["cpu_count"] >= 1 and data["environment"]["packages"]["uvicorn"]
    assert {"loadavg_start", "other_cpu_share", "max_cv"} <= set(data["noise"])


def test_bench_table_and_only(tmp_path: Path) -> None:
    proc = labkit("bench", "--quick", "--only", "receiver_ingest", "--out", str(tmp_path), env={TINY_ENV: "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "receiver" in proc.stdout and "results:" in proc.stdout
    data = read_bench(next((tmp_path / "bench").glob("*.json")))
    assert set(data["benchmarks"]) == {"receiver_ingest"}
    assert data["ratios"]["poll_304"] is None  # not measured: null, and its target is not passed
    assert data["targets"]["poll_304"]["pass"] is False


def test_process_scaling_compares_one_and_n_processes(tmp_path: Path) -> None:
    proc = labkit("bench", "--quick", "--only", "process_scaling", "--out", str(tmp_path), env={TINY_ENV: "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "processes vs 1" in proc.stdout
    data = read_bench(next((tmp_path / "bench").glob("*.json")))
    ps = data["benchmarks"]["process_scaling"]
    n = ps["processes"]
    assert n >= 2 and ps["pollers"]["one"]["processes"] == 1 and ps["pollers"]["n"]["processes"] == n
    assert ps["pollers"]["one"]["achieved_polls_per_s"] > 0 and ps["pollers"]["n"]["errors"] == 0
    assert ps["receiver"]["one"]["rps"] > 0 and ps["receiver"]["n"]["rps"] > 0 and ps["receiver"]["n"]["errors"] == 0
    po = ps["pollers"]
    assert data["ratios"]["scaling_pollers"] == pytest.approx(
        po["n"]["achieved_polls_per_s"] / (n * po["one"]["achieved_polls_per_s"]), rel=1e-6
    )
    assert data["targets"]["scaling_receiver"]["target"] == 0.8
    judged = "raw" if ps["cores"] >= n + 1 else "cpu_efficiency"
    assert data["targets"]["scaling_pollers"]["judged"] == ps["judged"] == judged and data["targets"]["scaling_pollers"]["reason"]
    assert data["ratios"]["scaling_receiver_cpu"] == ps["receiver"]["cpu_efficiency"]


def test_an_unknown_benchmark_is_one_line_and_exit_2() -> None:
    proc = labkit("bench", "--only", "nope", timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "--only" in proc.stderr and "Traceback" not in proc.stderr


def test_targets_judge_both_directions() -> None:
    at_least = Target("x", "ratios.x", ">=", 0.6, "")
    at_most = Target("y", "ratios.y", "<=", 3.0, "")
    assert at_least.judge(0.6)["pass"] and not at_least.judge(0.59)["pass"]
    assert at_most.judge(3.0)["pass"] and not at_most.judge(3.1)["pass"]
    assert not at_least.judge(None)["pass"] and not at_most.judge(float("nan"))["pass"]


def test_summary_is_strict_json_and_pairs_ratios() -> None:
    assert paired_ratio([10, 20, 30], [20, 20, 20]) == 1.0
    assert paired_ratio([], []) is None
    doc = build_summary("r", plan(tiny=True), "wrk", {"dispatcher": {"ratio": float("nan")}}, {}, 1.0)
    assert doc["ratios"]["dispatcher"] is None
    json.dumps(doc, allow_nan=False)


def test_read_bench_refuses_an_unknown_schema(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(ResultsError, match="schema_version"):
        read_bench(path)


def test_proxy_cost_measures_the_proxy_process_runs_use(tmp_path: Path) -> None:
    proc = labkit("bench", "--quick", "--only", "proxy_cost", "--json", "--out", str(tmp_path), env={TINY_ENV: "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    case = json.loads(proc.stdout)["benchmarks"]["proxy_cost"]
    assert case["proxy_runs_in"] == "process" and case["proxy_path"] == "straight-through"
    assert case["delivered"]["proxied"] == case["events"]["proxied"] > 0
    counters = case["proxy"]  # sent back by the proxy's own process when it stopped
    assert counters["connections"] >= 1 and counters["bytes_up"] > 0 and counters["bytes_down"] > 0
    assert counters["mean_added_delay_ms"] == 0 and counters["stalled_chunks"] == 0
    assert case["proxy_cpu_us_per_event"] is not None and case["proxy_cpu_us_per_event"] >= 0
    # the floor in the same rounds: a bare relay (and socat when installed), each with its own provider
    relay = case["relays"]["relay"]
    assert relay["installed"] and case["delivered"]["relay"] == case["events"]["relay"] > 0
    assert relay["ratio_p50"] > 0 and case["ratio_to_relay_p50"] > 0
    # the paths interleaved on one timetable: every path published as many events, in rounds of every path
    assert case["interleaved"] and len(set(case["events"].values())) == 1
    assert case["round_s"] == case["segment_s"] * len(case["paths"]) and "ratio_to_relay_p50_interval" in case
    assert case["relays"]["socat"]["installed"] is bool(shutil.which("socat"))
    fleet = json.loads(proc.stdout)["targets"]
    assert fleet["proxy_vs_relay_p50"]["target"] == 1.05 and "proxy_p50" not in fleet
    assert "interval" in fleet["proxy_vs_relay_p50"]  # the judged median's interval rides with its verdict


def test_per_consumer_fanout_runs_both_cases_and_records_both_ratios(tmp_path: Path) -> None:
    proc = labkit("bench", "--quick", "--only", "per_consumer_fanout", "--json", "--out", str(tmp_path), env={TINY_ENV: "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    f = data["benchmarks"]["per_consumer_fanout"]
    # the same frames both ways: K streams x E events broadcast, E x K events of one consumer each
    assert f["broadcast"]["frames"] == f["per_consumer"]["frames"] == f["streams"] * f["frames_per_stream"]
    assert f["publish_only"]["server_cpu_us_per_event"] >= 0
    assert data["ratios"]["per_consumer_fanout"] > 0 and data["ratios"]["per_consumer_fanout_with_publish"] > 0
    assert data["targets"]["per_consumer_fanout"]["op"] == "<="
    # both cases publish through the batch path, one frame per stream per batch: as many requests each way
    assert f["publishing"]["path"] == "POST /events/batch"
    assert f["broadcast"]["events"] == f["frames_per_stream"] and f["per_consumer"]["events"] == f["per_consumer"]["frames"]
    assert f["broadcast"]["requests"] == f["per_consumer"]["requests"] == f["frames_per_stream"]
    # judged with everything in: the publish is part of the per-consumer frame's cost, not taken out of it
    assert data["ratios"]["per_consumer_fanout"] == f["ratio"] == f["ratio_with_publish"]
    # judged as the median of each repetition's own ratio (its two bursts back to back), one sample per repetition
    assert len(f["ratio_samples"]) == len(f["broadcast"]["samples_server_cpu_us_per_frame"]) >= 1
    assert f["ratio"] == pytest.approx(statistics.median(f["ratio_samples"]), abs=1e-3) and f["ratio_of_medians"] > 0
    parts = f["breakdown_us_per_frame"]
    assert parts["publish"] + parts["route_and_write"] == pytest.approx(parts["per_consumer"])


def test_the_304_path_is_measured_with_per_key_feeds_too(tmp_path: Path) -> None:
    proc = labkit("bench", "--quick", "--only", "poll_endpoint", "--json", "--out", str(tmp_path), env={TINY_ENV: "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    keyed = data["benchmarks"]["poll_endpoint"]["status_304_per_key"]
    # each consumer's own key and ETag (the bench checks each answers 304 before it loads them), no error under load
    assert keyed["consumers"] > 1 and keyed["provider"]["errors"] == 0 and keyed["bare"]["errors"] == 0
    assert keyed["provider"]["requests"] > 0 and keyed["response_body_bytes"] == 0
    assert data["ratios"]["poll_304_per_key"] == keyed["ratio"] > 0
    assert data["targets"]["poll_304_per_key"]["op"] == ">=" and data["targets"]["poll_304_per_key"]["target"] == 0.6
