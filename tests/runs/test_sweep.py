"""Sweeps: resumable, forced reruns, a tidy table; damaged results stop with a clear error.

The logic is tested with a stand-in runner (fast); one real sweep of
scenarios/experiments/quick.toml runs the servers end to end.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from labkit.errors import ResultsError
from labkit.results.layout import SCHEMA_VERSION, load_results, write_json
from labkit.runs import campaign, sweep
from labkit.runs.experiments import load_experiment
from tests.helpers.cli import fresh_sigint
from tests.helpers.paths import EXPERIMENTS, REPO

GRID = """
[experiment]
name = "grid"
seed = 1
[run]
poll_interval_s = 1.0
[workload]
rate_per_s = [1.0, 2.0, 4.0]
duration_s = 10
"""


def _fake_summary(point, out: Path) -> dict:
    wl = point.settings.workload
    style = {
        "published": 10,
        "delivered": 10,
        "requests": 10,
        "latency_ms": {"mean": 1.0},
        "model": {"kind": "model", "requests_per_event": 1.0},
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": point.run_id,
        "results_dir": str(out),
        "experiment": point.experiment,
        "workload": {"rate_per_s": wl.rate_per_s, "lambda_t": wl.rate_per_s * point.settings.poll_interval_s},
        "styles": {"webhook": dict(style), "polling": dict(style)},
        "settings": point.settings.model_dump(mode="json"),
        "point": point.point_id,
        "params": point.params,
    }


@pytest.fixture
def fake_runner(monkeypatch):
    """Replace the servers with a function that writes a summary; records which points ran."""
    ran: list[str] = []
    fail_on: dict[str, BaseException] = {}

    def run_point(point, exp_dir, *, progress=None):
        if point.point_id in fail_on:
            raise fail_on[point.point_id]
        out = exp_dir / point.run_id
        write_json(out / "summary.json", _fake_summary(point, out))
        ran.append(point.point_id)
        return out

    monkeypatch.setattr(campaign, "run_point", run_point)
    return ran, fail_on


def test_sweep_runs_each_point_then_skips_them(write_toml, tmp_path, fake_runner):
    ran, _ = fake_runner
    exp = load_experiment(write_toml(GRID), out_dir=tmp_path)
    first = sweep.run_sweep(exp)
    assert [o.skipped for o in first.points] == [False] * 3
    assert ran == [p.point_id for p in exp.points]
    again = sweep.run_sweep(exp)
    assert [o.skipped for o in again.points] == [True] * 3
    assert len(ran) == 3
    forced = sweep.run_sweep(exp, force=True)
    assert [o.skipped for o in forced.points] == [False] * 3
    assert len(ran) == 6
    out = forced.to_json()
    assert out["schema_version"] == 1 and out["experiment"] == "grid"
    assert [p["params"] for p in out["points"]] == [{"rate_per_s": r} for r in (1.0, 2.0, 4.0)]
    assert set(out["points"][0]) == {"point", "params", "run_id", "skipped"}
    assert out["table"] == str(tmp_path / "grid" / "table.csv")


def test_an_interrupted_sweep_resumes_where_it_stopped(write_toml, tmp_path, fake_runner):
    ran, fail_on = fake_runner
    exp = load_experiment(write_toml(GRID), out_dir=tmp_path)
    fail_on[exp.points[1].point_id] = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(exp)
    assert ran == [exp.points[0].point_id]
    fail_on.clear()
    result = sweep.run_sweep(exp)
    assert [o.skipped for o in result.points] == [True, False, False]


def test_a_changed_file_runs_only_the_new_points(write_toml, tmp_path, fake_runner):
    sweep.run_sweep(load_experiment(write_toml(GRID), out_dir=tmp_path))
    grown = load_experiment(write_toml(GRID.replace("[1.0, 2.0, 4.0]", "[1.0, 2.0, 4.0, 8.0]"), "grown.toml"), out_dir=tmp_path)
    result = sweep.run_sweep(grown)
    assert [o.skipped for o in result.points] == [True, True, True, False]


def test_table_has_one_row_per_point_and_style(write_toml, tmp_path, fake_runner):
    exp = load_experiment(write_toml(GRID), out_dir=tmp_path)
    result = sweep.run_sweep(exp)
    df = pd.read_csv(result.table)
    assert len(df) == 6
    assert list(df.columns[:4]) == ["experiment", "point", "run_id", "style"]
    assert df.columns[4] == "param.rate_per_s"
    assert sorted(df["param.rate_per_s"].unique()) == [1.0, 2.0, 4.0]
    assert {"model.requests_per_event", "latency_ms.mean", "settings.poll_interval_s"} <= set(df.columns)
    table = json.loads((tmp_path / "grid" / "table.json").read_text())
    assert table["schema_version"] == 1 and table["experiment"] == "grid" and len(table["rows"]) == 6
    assert sweep.load_table(tmp_path / "grid").shape == df.shape


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda p: p.write_text('{"schema_version": 1, "run'), "corrupted results file"),
        (lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "schema_version": 99})), "unknown schema_version 99"),
    ],
)
def test_damaged_results_in_the_sweep_dir_are_a_clear_error(write_toml, tmp_path, fake_runner, damage, match):
    exp = load_experiment(write_toml(GRID), out_dir=tmp_path)
    result = sweep.run_sweep(exp)
    summary = result.points[1].results_dir / "summary.json"
    damage(summary)
    with pytest.raises(ResultsError) as info:
        sweep.run_sweep(exp)
    message = str(info.value)
    assert str(summary) in message and match in message and "\n" not in message


def test_unknown_table_version_is_refused(tmp_path):
    (tmp_path / "table.json").write_text(json.dumps({"schema_version": 2, "rows": []}))
    with pytest.raises(ResultsError, match="unknown schema_version 2"):
        sweep.load_table(tmp_path)


# -- one real sweep, servers and all ---------------------------------------------------


def labkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labkit", *args], check=False, capture_output=True, text=True, timeout=240, cwd=REPO)


@pytest.fixture(scope="module")
def quick_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    proc = labkit("sweep", str(EXPERIMENTS / "quick.toml"), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)


@pytest.mark.slow
def test_real_sweep_writes_points_and_a_table(quick_sweep):
    out, data = quick_sweep
    assert data["schema_version"] == 1 and data["experiment"] == "quick"
    assert data["results_dir"] == str(out / "quick")
    assert [p["skipped"] for p in data["points"]] == [False, False]
    assert [p["params"] for p in data["points"]] == [{"rate_per_s": 4.0}, {"rate_per_s": 16.0}]
    for p in data["points"]:
        summary = json.loads((out / "quick" / p["run_id"] / "summary.json").read_text())
        assert summary["point"] == p["point"] and summary["params"] == p["params"] and summary["experiment"] == "quick"
        assert (out / "quick" / p["run_id"] / "events.parquet").exists()
    assert Path(data["table"]).exists()


@pytest.mark.slow
def test_real_sweep_loads_one_row_per_point_and_style(quick_sweep):
    out, data = quick_sweep
    df = load_results(out / "quick")
    assert len(df) == 4
    assert set(zip(df["param.rate_per_s"], df["style"])) == {(r, s) for r in (4.0, 16.0) for s in ("webhook", "polling")}
    for col in ("latency_ms.mean", "model.latency_mean_ms", "requests_per_event", "model.requests_per_event", "point"):
        assert col in df.columns
    assert set(df["point"]) == {p["point"] for p in data["points"]}
    assert (df["lost"] == 0).all()


@pytest.mark.slow
def test_real_sweep_rerun_skips_and_force_reruns(quick_sweep):
    out, data = quick_sweep
    summary = out / "quick" / data["points"][0]["run_id"] / "summary.json"
    before = summary.stat().st_mtime_ns
    again = labkit("sweep", str(EXPERIMENTS / "quick.toml"), "--out", str(out), "--json")
    assert again.returncode == 0, again.stderr
    assert [p["skipped"] for p in json.loads(again.stdout)["points"]] == [True, True]
    assert summary.stat().st_mtime_ns == before
    forced = labkit("sweep", str(EXPERIMENTS / "quick.toml"), "--out", str(out), "--json", "--force")
    assert forced.returncode == 0, forced.stderr
    points = json.loads(forced.stdout)["points"]
    assert [p["skipped"] for p in points] == [False, False]
    assert [p["point"] for p in points] == [p["point"] for p in data["points"]]
    assert summary.stat().st_mtime_ns > before
    assert len(load_results(out / "quick")) == 4  # a rerun replaces a point, it does not add one


@pytest.mark.slow
def test_real_sweep_with_a_corrupted_summary_exits_2_with_one_line(quick_sweep, tmp_path):
    out, data = quick_sweep
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    bad = copy / "quick" / data["points"][1]["run_id"] / "summary.json"
    bad.write_text("{not json")
    proc = labkit("sweep", str(EXPERIMENTS / "quick.toml"), "--out", str(copy))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "corrupted" in lines[0], proc.stderr


@pytest.mark.slow
def test_real_run_of_a_one_point_file(write_toml, tmp_path):
    path = write_toml(
        "[experiment]\nname = 'one'\nseed = 2\n[run]\nstyles = ['polling']\npoll_interval_s = 0.25\n"
        "[workload]\nrate_per_s = 8.0\nduration_s = 1.0\n",
        "one.toml",
    )
    proc = labkit("run", str(path), "--out", str(tmp_path / "out"), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["schema_version"] == 1 and summary["experiment"] == "one"
    assert summary["params"] == {} and len(summary["point"]) == 12
    assert list(summary["styles"]) == ["polling"] and summary["styles"]["polling"]["lost"] == 0
    assert (tmp_path / "out" / "one" / summary["run_id"] / "summary.json").exists()
    assert (tmp_path / "out" / "one" / "table.csv").exists()


@pytest.mark.slow
def test_ctrl_c_stops_the_sweep_cleanly_and_it_resumes(tmp_path):
    import signal
    import time

    import psutil

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "labkit", "sweep", str(EXPERIMENTS / "quick.toml"), "--out", str(out), "--json"]

    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=fresh_sigint)
    masks = ""
    try:
        # wait until the first point is written and the second is under way
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(out.glob("quick/*/summary.json")):
            time.sleep(0.1)
        assert list(out.glob("quick/*/summary.json")), "the first point never finished"
        children: list[psutil.Process] = []
        while time.monotonic() < deadline and not children:
            children = psutil.Process(proc.pid).children(recursive=True)
            time.sleep(0.05)
        with contextlib.suppress(OSError):
            masks = " ".join(line for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines() if line.startswith("Sig"))
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, f"{stderr}\n{masks}"
    assert "Traceback" not in stderr
    _, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"orphans: {alive}"
    again = labkit("sweep", str(EXPERIMENTS / "quick.toml"), "--out", str(out), "--json")
    assert again.returncode == 0, again.stderr
    assert [p["skipped"] for p in json.loads(again.stdout)["points"]] == [True, False]
