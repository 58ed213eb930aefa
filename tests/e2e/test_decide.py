"""One small real ``labkit decide`` on loopback: runs each style, writes the report, and a second call skips the runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labkit import styles

REQ = """
name = "Small shop"
use_case = "order status notifications"
target_latency_p99_ms = 1000
event_rate_per_s = 5
consumers = 3
missed_events_tolerated = true
"""


def decide(req: Path, out: Path) -> dict:
    args = [sys.executable, "-m", "labkit", "decide", str(req), "--out", str(out), "--max-minutes", "1", "--json"]
    # this machine's start-up and drain are probed into a cache of the test's own, not the user's
    env = {**os.environ, "XDG_CACHE_HOME": str(out.parent / "cache")}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_decide_measures_each_style_for_these_requirements_and_resumes(tmp_path: Path) -> None:
    req = tmp_path / "small.toml"
    req.write_text(REQ)
    first = decide(req, tmp_path / "out")
    # every registered style: these consumers can expose HTTPS, so webhooks too
    assert [r["style"] for r in first["runs"]] == list(styles.names())
    assert all(not r["skipped"] and r["consumers"] == 3 for r in first["runs"])
    for r in first["runs"]:
        summary = json.loads((Path(r["results_dir"]) / "summary.json").read_text())
        assert summary["styles"][r["style"]]["consumers"] == 3
        assert summary["styles"][r["style"]]["lost"] == 0
    md = Path(first["markdown"]).read_text()
    run_ids = {r["run_id"] for r in first["runs"]}
    cited = {h["run_id"] for h in first["headlines"] if h["run_id"]}
    assert cited and cited <= run_ids
    assert "## Headline numbers" in md
    # predicted (written before the runs), then measured, in the report itself: one row per candidate that has a model
    predicted = md.split("## Predicted, then measured", 1)[1].split("\n## ", 1)[0]
    for p in first["predictions"]:
        if p["predicted_latency_mean_ms"] is not None:
            assert f"| {p['label']} | " in predicted
    second = decide(req, tmp_path / "out")
    assert all(r["skipped"] for r in second["runs"])
    assert [r["run_id"] for r in second["runs"]] == [r["run_id"] for r in first["runs"]]


@pytest.mark.slow
def test_decide_runs_the_declared_audience(tmp_path: Path) -> None:
    req = tmp_path / "merchants.toml"
    req.write_text(REQ.replace('name = "Small shop"', 'name = "Merchants"') + 'audience = "per-consumer"\nconsumer_skew = "zipf:1.1"\n')
    out = decide(req, tmp_path / "out")
    for r in out["runs"]:
        summary = json.loads((Path(r["results_dir"]) / "summary.json").read_text())
        block = summary["styles"][r["style"]]
        assert summary["settings"]["audience"] == "per-consumer" and summary["settings"]["consumer_skew"] == "zipf:1.1"
        assert block["lost"] == 0 and block["audience"]["misdelivered"] == 0
        # each consumer receives 5 events/s on average: N consumers, 5 x N events/s published, each to one of them
        assert summary["workload"]["rate_per_s"] == pytest.approx(5 * block["consumers"])
