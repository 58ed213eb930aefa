"""A whole run with consumer_processes = 2: consumers SIGKILLed (supervisor and workers) lose nothing, count once."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.config import RunSettings
from labkit.lab import pipeline

pytestmark = pytest.mark.slow  # real servers for many seconds


def test_killed_multi_process_consumers_lose_nothing(tmp_path: Path) -> None:
    settings = RunSettings(
        workload={"rate_per_s": 20.0, "duration_s": 3.0, "seed": 5},
        poll_interval_s=0.25,
        pollers=3,
        subscribers=3,
        drain_timeout_s=30,
        experiment="scale",
        consumer_processes=2,
        fault={"kind": "consumer_kill", "at_s": [1.0], "restart_after_s": 0.2},
    )
    summary = pipeline.run(settings, results_dir=tmp_path / "run").summary
    for name in ("webhook", "polling"):
        style = summary["styles"][name]
        f = style["fault"]
        assert f["published"] > 0 and f["lost"] == 0 and style["lost"] == 0, f
        assert f["duplicates_processed"] == 0 and style["drained"]
        assert f["consumer_restarts"] == 1
    polling = summary["styles"]["polling"]
    assert polling["polls_in_window"] > 0  # the window bracket read the merged snapshots of both workers
    assert summary["styles"]["webhook"]["delivered"] == summary["styles"]["webhook"]["published"] * 3
