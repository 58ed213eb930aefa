"""Real, short runs on loopback: the command, the SLO stop, distributed Locust, and plain ``locust -f``.

No assertion depends on how fast this machine is: only on what was run,
what was written, and that the step shape stopped itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest

from labkit.capacity import load_capacity
from labkit.capacity.analysis import read_history
from labkit.capacity.lag import LagHistograms
from labkit.capacity.run import CapacitySettings, run_capacity
from labkit.servers.procs import ProcessGroup
from labkit.wire.signing import new_secret

pytestmark = pytest.mark.slow  # real servers for many seconds, a browser, benchmarks or Locust


ROOT = Path(__file__).resolve().parents[2]
JSON_KEYS = {"schema_version", "scenario", "capacity", "slo", "limited_by", "results_dir"}


def stats(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False).set_index(["Type", "Name"])


def test_capacity_polling_json(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", "capacity", "polling", "--max-users", "10", "--duration", "10",
         "--step-seconds", "4", "--json", "--out", str(tmp_path)],
        check=False, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)  # stdout holds only the JSON
    assert JSON_KEYS <= set(summary)
    assert summary["schema_version"] == 1 and summary["scenario"] == "polling"
    assert set(summary["capacity"]) >= {"users", "rps"} and set(summary["slo"]) >= {"p99_ms", "max_failure_ratio"}
    assert summary["limited_by"] in {"server CPU", "load generator CPU", "latency", "max users", "time limit"}
    assert summary["steps"] and summary["steps"][0]["users"] == 5
    results = Path(summary["results_dir"])
    assert results.parent == tmp_path / "capacity"
    for name in ("locust_stats.csv", "locust_stats_history.csv", "locust_report.html", "resources.csv", "capacity.png"):
        assert (results / name).stat().st_size > 0, name
    assert json.loads((results / "capacity.json").read_text()) == summary
    df = load_capacity(tmp_path)
    assert len(df) == len(summary["steps"]) and df["scenario"].eq("polling").all()
    assert df["is_capacity"].sum() == (1 if summary["capacity"]["users"] else 0)
    assert not list((results / "servers").glob("*.db")), "server databases are not kept"


def test_slo_breach_stops_the_step_test(tmp_path):
    # The receiver answers every webhook after 30 ms: no step can meet a 10 ms p99.
    settings = CapacitySettings(
        scenario="webhook_ingest", max_users=20, step_users=4, step_seconds=4, duration_s=40,
        slo_p99_ms=10, server_settings={"receiver": {"delay_ms": 30}}, out_dir=str(tmp_path),
    )  # fmt: skip
    result = run_capacity(settings)
    s = result.summary
    assert s["stop_reason"].startswith("SLO breached at 4 users"), s["stop_reason"]
    assert [step["users"] for step in s["steps"]] == [4]
    assert s["capacity"] == {"users": 0, "rps": 0.0, "p99_ms": None, "step": None}
    history = read_history(result.results_dir / "locust_stats_history.csv")
    assert history["User Count"].max() == 4, "no second step was started"
    table = stats(result.results_dir / "locust_stats.csv")
    assert table.loc[("", "Aggregated"), "Failure Count"] == 0, "every signed webhook was accepted"


def test_publish_fanout_with_two_workers_reports_delivery_lag(tmp_path):
    settings = CapacitySettings(
        scenario="publish_fanout", workers=2, max_users=4, step_users=2, step_seconds=4, duration_s=10,
        subscriptions=2, slo_p99_ms=10_000, out_dir=str(tmp_path),
    )  # fmt: skip
    result = run_capacity(settings)
    d = result.results_dir
    assert (d / "locust-worker-1.log").exists() and (d / "locust-worker-2.log").exists()
    processes = set(pd.read_csv(d / "resources.csv")["process"])
    assert {"locust-master", "locust-worker-1", "locust-worker-2", "provider", "receiver"} <= processes
    lag_row = stats(d / "locust_stats.csv").loc[("LAG", "delivery")]
    assert lag_row["Request Count"] > 0
    precise = LagHistograms.read(d / "locust_lag_hdr.json").window().get_total_count()
    assert 0 < precise <= lag_row["Request Count"]  # a worker's last samples may miss its final report
    assert "LAG" in (d / "locust_report.html").read_text()
    assert result.summary["slo"]["metric"] == "LAG delivery"
    assert {st["p99_source"] for st in result.summary["steps"]} == {"hdrhistogram"}


def test_each_scenario_runs_with_plain_locust(tmp_path):
    secret = new_secret()
    with ProcessGroup(tmp_path / "servers") as group:
        receiver = group.start_server("receiver", "receiver", {"secrets": [secret], "db_path": str(tmp_path / "r.db")})
        provider = group.start_server(
            "provider", "provider",
            {"db_path": str(tmp_path / "p.db"), "rate_limit_per_s": 0, "allowed_callback_hosts": ["127.0.0.1"]},
        )  # fmt: skip
        env = dict(os.environ, LABKIT_SECRET=secret, LABKIT_RECEIVER_DB=str(tmp_path / "r.db"), LABKIT_RECEIVER_URL=receiver.url)
        runs = {
            "polling": (provider.url, []),
            "webhook_ingest": (receiver.url, ["--resend-ratio", "0.5"]),
            "publish_fanout": (provider.url, ["--subscriptions", "2"]),
        }
        procs = {}
        for name, (host, extra) in runs.items():
            cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "scenarios" / f"{name}.py"), "--headless",
                   "-u", "3", "-r", "3", "-t", "5s", "--host", host, "--csv", str(tmp_path / name), "--only-summary", *extra]  # fmt: skip
            procs[name] = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            outputs = {name: p.communicate(timeout=90)[0].decode(errors="replace") for name, p in procs.items()}
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
        for name, p in procs.items():
            assert p.returncode == 0, f"{name}: {outputs[name][-2000:]}"
        receiver_stats = httpx.get(f"{receiver.url}/stats").json()["counters"]
    polling = stats(tmp_path / "polling_stats.csv")
    assert polling.loc[("GET", "/events"), "Request Count"] > 0
    ingest = stats(tmp_path / "webhook_ingest_stats.csv")
    assert ingest.loc[("", "Aggregated"), "Failure Count"] == 0
    assert ingest.loc[("POST", "/webhook/ingest (resend)"), "Request Count"] > 0
    assert receiver_stats["duplicates"] > 0 and receiver_stats["rejected"] == {}
    fanout = stats(tmp_path / "publish_fanout_stats.csv")
    assert fanout.loc[("POST", "/events"), "Request Count"] > 0
    assert fanout.loc[("LAG", "delivery"), "Request Count"] > 0
    assert (tmp_path / "publish_fanout_lag_hdr.json").exists()
    assert "delivery lag (HdrHistogram, precise)" in outputs["publish_fanout"]


def test_capacity_without_max_users_searches_for_the_limit(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", "capacity", "polling", "--step-users", "2", "--step-seconds", "8",
         "--duration", "36", "--slo-p99-ms", "5000", "--json", "--out", str(tmp_path)],
        check=False, capture_output=True, text=True, timeout=240, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    search = summary["search"]
    loads = [p["load"] for p in search["probes"]]
    assert loads == [2, 4, 8, 16][: len(loads)] and len(loads) >= 3  # the climb doubles
    assert all(p["held"] for p in search["probes"])  # a 5 s SLO holds for a handful of pollers
    assert summary["lower_bound"] and summary["limited_by"] == "time limit"
    assert summary["capacity"]["users"] == max(loads)
    assert "limited by time limit (a lower bound)" in summary["statement"]
    assert set(summary["cpu_at_limit"]) == {"held", "breached"}
    assert summary["settings"]["search"] is True and summary["settings"]["max_users"] == 20_000


def test_capacity_polling_per_consumer_each_user_polls_its_own_feed(tmp_path):
    # every user's key is made from the run's consumer-key secret: a wrong key would be a 401, a failure
    settings = CapacitySettings(
        scenario="polling", max_users=8, step_users=4, step_seconds=4, duration_s=10, publish_rate=8.0,
        audience="per-consumer", out_dir=str(tmp_path),
    )  # fmt: skip
    result = run_capacity(settings)
    assert result.summary["settings"]["audience"] == "per-consumer"
    table = stats(result.results_dir / "locust_stats.csv")
    assert table.loc[("", "Aggregated"), "Request Count"] > 0
    assert table.loc[("", "Aggregated"), "Failure Count"] == 0
    assert result.summary["background_publisher"]["published"] > 0
