"""End to end: real provider and consumer processes on loopback, real HTTP."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

from labkit.config import RunSettings, WorkloadSettings
from labkit.lab import pipeline
from labkit.results.layout import load_events, load_results
from labkit.servers.procs import ProcessGroup
from tests.helpers.cli import fresh_sigint

pytestmark = pytest.mark.slow  # real servers for many seconds, a browser, benchmarks or Locust


@pytest.fixture(scope="module")
def compare_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    settings = RunSettings(
        workload=WorkloadSettings(arrival="poisson", rate_per_s=40, duration_s=4, seed=3),
        poll_interval_s=0.5,
        out_dir=str(out),
    )
    return pipeline.run(settings)


def test_every_event_delivered_once_in_both_styles(compare_run):
    styles = compare_run.summary["styles"]
    events = compare_run.summary["workload"]["events"]
    assert events > 100
    for style in ("webhook", "polling"):
        s = styles[style]
        assert s["published"] == events, style
        assert s["delivered"] == events, style
        assert s["lost"] == 0, style
        assert s["drained"] is True


def test_per_event_records_are_unique_and_complete(compare_run):
    df = load_events(compare_run.results_dir)
    for style in ("webhook", "polling"):
        part = df[df["style"] == style]
        assert part["event_id"].is_unique
        assert len(part) == compare_run.summary["workload"]["events"]
        assert (part["latency_us"] > 0).all()


def test_webhook_is_one_request_per_event_and_much_faster(compare_run):
    web = compare_run.summary["styles"]["webhook"]
    poll = compare_run.summary["styles"]["polling"]
    assert web["requests_per_event"] == pytest.approx(1.0, abs=0.05)
    assert web["latency_ms"]["p50"] * 10 < poll["latency_ms"]["p50"]
    # bytes were counted at the socket, both directions
    assert web["bytes_in"] > 0 and web["bytes_out"] > 0
    assert poll["bytes_in"] > 0 and poll["bytes_out"] > 0


def test_polling_mean_latency_follows_the_model(compare_run):
    poll = compare_run.summary["styles"]["polling"]
    model = poll["model"]
    assert model["kind"] == "model"
    # T/2 + RTT with T = 0.5 s; a 4 s run has few polls, so the band is loose here (the sweep checks 15 %)
    assert poll["latency_ms"]["mean"] == pytest.approx(model["latency_mean_ms"], rel=0.3)
    assert poll["polls"] >= 6


def test_summary_is_written_and_loads(compare_run):
    data = json.loads((compare_run.results_dir / "summary.json").read_text())
    assert data["schema_version"] == 1
    for key in ("run_id", "results_dir", "workload", "styles", "environment", "settings"):
        assert key in data
    df = load_results(compare_run.results_dir)
    assert set(df["style"]) == {"webhook", "polling"}
    assert "model.requests_per_event" in df.columns


def test_no_secret_or_key_reaches_the_results(compare_run):
    for path in compare_run.results_dir.rglob("*"):
        if path.is_file() and path.suffix in {".json", ".md", ".html", ".csv"}:
            text = path.read_text(errors="replace")
            assert "whsec_" not in text, path
            assert "lab-publisher" not in text, path


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_sees_304_for_an_unchanged_feed(tmp_path):
    with ProcessGroup(tmp_path) as group:
        provider = group.start_server("provider", "provider", {"db_path": str(tmp_path / "p.db")})
        auth = ["-H", "Authorization: Bearer lab-key"]
        head = subprocess.run(
            ["curl", "-s", "-i", *auth, f"{provider.url}/events?after=0"], capture_output=True, text=True, timeout=30
        ).stdout
        assert head.startswith("HTTP/1.1 200")
        etag = next(line.split(":", 1)[1].strip() for line in head.splitlines() if line.lower().startswith("etag:"))
        again = subprocess.run(
            [
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{size_download}",
                *auth,
                "-H",
                f"If-None-Match: {etag}",
                f"{provider.url}/events?after=0",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        assert again == "304 0"
    assert not provider.alive()


def test_ctrl_c_stops_every_process(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "labkit", "compare", "--duration", "30", "--out", str(tmp_path), "--no-report"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=fresh_sigint,
    )
    me = psutil.Process(proc.pid)
    deadline = time.monotonic() + 60
    children: list[psutil.Process] = []
    while time.monotonic() < deadline and len(children) < 2:
        children = me.children(recursive=True)
        time.sleep(0.2)
    assert len(children) >= 2, "the run never started its servers"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err
    assert "interrupted" in err
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"left running: {[p.pid for p in alive]}"
