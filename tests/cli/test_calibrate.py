"""``labkit calibrate``: this machine's loopback costs per style, measured and cached outside results/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import labkit


def _labkit(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True, text=True, timeout=timeout, env=env, check=False)


def test_calibrate_is_a_command() -> None:
    r = labkit("calibrate", "--help")
    assert r.returncode == 0 and "--json" in r.stdout


def test_a_bad_injected_calibration_is_one_line_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "LABKIT_CALIBRATION": str(tmp_path / "nope.json")}
    r = labkit("compare", "--duration", "1", "--out", str(tmp_path / "out"), env=env)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "calibration" in r.stderr, r.stderr


@pytest.mark.slow  # every style once on loopback: about 40 s
def test_calibrate_measures_every_style_and_the_next_run_uses_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LABKIT_CALIBRATION"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    r = _labkit("calibrate", "--json", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout)
    assert doc["schema_version"] == 1 and doc["source"] == f"calibration {doc['id']}"
    assert Path(doc["path"]).parent == tmp_path / "cache" / "labkit"
    assert {"webhook", "polling"} <= set(doc["costs"])
    assert 0 < doc["costs"]["webhook"]["delivery_s"] < 1 and 0 < doc["costs"]["polling"]["poll_s"] < 1
    # the dispatcher's spacing between an event's deliveries, from the 20-subscriber run beside the single one
    assert 0 < doc["costs"]["webhook"]["dispatch_cost_s"] < 1 and doc["measured_with"]["consumers_per_run"]["webhook"] == [1, 20]
    assert doc["costs_ms"]["webhook"]["delivery_ms"] == pytest.approx(doc["costs"]["webhook"]["delivery_s"] * 1000)
    assert doc["measured_with"]["network"] == "loopback" and "load_average" in doc["measured_with"]
    run = _labkit("compare", "--styles", "webhook", "--duration", "1", "--out", str(tmp_path / "out"), "--json", env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    block = json.loads(run.stdout)["styles"]["webhook"]
    assert block["model"]["base_source"] == doc["source"] and block["agreement"]["base_source"] == doc["source"]
    assert not list((tmp_path / "out").rglob("calibration*"))  # the cache lives outside the results
