"""Locust across machines, on one: a master on 127.0.0.2, workers joining it from elsewhere.

Linux routes all of 127.0.0.0/8 to the loopback interface, so separate
addresses stand in for separate machines: the master binds 127.0.0.2, the
servers 127.0.0.4, one worker connects from 127.0.0.3 (``labkit
capacity-worker --source``), the other is plain ``locust --worker``. The
verdict must count every request of every worker, exactly.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labkit.capacity.latency import read_latency

ROOT = Path(__file__).resolve().parents[2]
MASTER, WORKER_SOURCE, SERVERS = "127.0.0.2", "127.0.0.3", "127.0.0.4"
RECORDED = re.compile(r"labkit latency: this worker recorded (\d+) requests")

pytestmark = pytest.mark.slow


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def test_master_and_two_workers_on_separate_addresses(tmp_path):
    port = free_port(MASTER)
    master_cmd = [
        sys.executable, "-m", "labkit", "capacity", "polling", "--expect-workers", "2",
        "--master-bind", f"{MASTER}:{port}", "--server-bind", SERVERS, "--workers-wait", "60",
        "--max-users", "6", "--step-users", "2", "--step-seconds", "4", "--duration", "15",
        "--json", "--out", str(tmp_path),
    ]  # fmt: skip
    workers_cmds = [
        [sys.executable, "-m", "labkit", "capacity-worker", "--master", f"{MASTER}:{port}", "--source", WORKER_SOURCE, "--timeout", "120"],
        [sys.executable, "-m", "locust", "--worker", "--master-host", MASTER, "--master-port", str(port), "-f", "scenarios/polling.py"],
    ]
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        master = subprocess.Popen(master_cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(master)
        time.sleep(2)  # the workers retry until the master listens; this only saves them a retry
        for cmd, log in zip(workers_cmds, logs):
            with open(log, "wb") as f:
                procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT))
        out, err = master.communicate(timeout=180)
        for p in procs[1:]:
            p.wait(timeout=60)  # the workers quit with the master
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    assert master.returncode == 0, err.decode(errors="replace")[-2000:]
    summary = json.loads(out)
    assert [p.returncode for p in procs[1:]] == [0, 0], [log.read_text()[-1500:] for log in logs]

    # Each worker says what it recorded; the master merged exactly that, nothing lost at the end.
    per_worker = [int(m.group(1)) for log in logs for m in RECORDED.finditer(log.read_text())]
    assert len(per_worker) == 2 and all(n > 0 for n in per_worker), per_worker
    lat = summary["latency"]
    assert len(lat["nodes"]) == 2
    assert lat["requests"] == sum(per_worker) == sum(n["requests"] for n in lat["nodes"].values())
    results = Path(summary["results_dir"])
    merged = read_latency(results / "locust")
    assert merged is not None and merged.window().raw.get_total_count() == sum(per_worker)
    for name in ("locust_latency_corrected.hlog", "locust_latency_raw.hlog", "locust_stats_history.csv", "locust_report.html"):
        assert (results / name).stat().st_size > 0, name

    # The workers' load reached the provider, which listened on the servers' address only.
    assert summary["distributed"] == {
        "local_workers": 0, "expected_workers": 2, "master_bind": f"{MASTER}:{port}", "server_bind": SERVERS,
    }  # fmt: skip
    assert summary["servers_counted"]["provider"]["polls"] >= lat["requests"] > 0

    # Every step carries the exact p99 beside Locust's, and the late requests.
    assert summary["steps"]
    for step in summary["steps"]:
        assert {"p99_exact_ms", "p99_locust_ms", "late_requests", "dropped_requests", "requests_recorded"} <= set(step)
        assert step["p99_source"] == "hdrhistogram" and step["p99_ms"] == step["p99_exact_ms"]
    assert summary["schema_version"] == 1

    # The same verdict from the master's files alone, as a master in a container leaves them (no resources.csv)
    copy = tmp_path / "from-a-container"
    copy.mkdir()
    for f in results.iterdir():
        if f.name.startswith("locust"):
            shutil.copy(f, copy / f.name)
    report_cmd = [
        sys.executable, "-m", "labkit", "capacity-report", str(copy), "--scenario", "polling",
        "--max-users", "6", "--step-users", "2", "--step-seconds", "4", "--duration", "15", "--json",
    ]  # fmt: skip
    done = subprocess.run(report_cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    again = json.loads(done.stdout)
    assert again["analysed_from"] == "files" and summary["analysed_from"] == "run"
    assert again["capacity"] == summary["capacity"] and again["slo"] == summary["slo"]
    assert again["latency"]["requests"] == lat["requests"] and again["latency"]["p99_ms"] == lat["p99_ms"]
    assert [s["users"] for s in again["steps"]] == [s["users"] for s in summary["steps"]]
    assert "resources" not in again["files"] and again["server_cpu_max"] is None
    assert json.loads((copy / "capacity.json").read_text())["capacity"] == summary["capacity"]
