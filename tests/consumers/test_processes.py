"""The processes setting: what it accepts, what it refuses (one line, exit 2), and exact merging."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labkit.config import PollerSettings, ReceiverSettings, RunSettings, validated
from labkit.consumers.processes import merge_stats, resolve
from labkit.consumers.stats import Latency
from labkit.errors import ConfigError
from labkit.wire.signing import new_secret
from tests.helpers.cli import labkit


@pytest.mark.parametrize("value", ["0", "abc", "-1", "2.5", "257"])
def test_compare_refuses_bad_processes_in_one_line(value: str, tmp_path: Path) -> None:
    out = labkit("compare", "--processes", value, "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("labkit: error: --processes: must be a whole number")
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_experiment_key_processes(tmp_path: Path) -> None:
    exp = tmp_path / "e.toml"
    exp.write_text('[experiment]\nname = "x"\n[run]\nprocesses = "abc"\n[workload]\nrate_per_s = 5\nduration_s = 1\n')
    out = labkit("run", str(exp), "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"labkit: error: {exp}: run.processes: must be a whole number")
    assert lines[0].endswith("got 'abc'")


def test_accepted_values() -> None:
    assert validated(RunSettings, {"consumer_processes": "auto"}).consumer_processes == "auto"
    assert validated(RunSettings, {"consumer_processes": "3"}).consumer_processes == 3
    assert validated(PollerSettings, {"base_url": "http://127.0.0.1:1", "processes": 2}).processes == 2
    assert resolve("auto") == len(os.sched_getaffinity(0))
    assert resolve(4) == 4
    with pytest.raises(ConfigError, match="processes"):
        validated(ReceiverSettings, {"secrets": [new_secret()], "processes": True})


def test_merge_is_exact() -> None:
    a, b, both = Latency(), Latency(), Latency()
    for v in range(1, 1000):
        (a if v % 3 else b).record(v * 10.0)
        both.record(v * 10.0)
    snaps = [
        {"cpu_s": 1.0, "wire": {"bytes_in": 5}, "counters": {"polls": 7, "rejected": {"x": 1}}, "histograms": {"rtt": a.export()}},
        {"cpu_s": 2.0, "wire": {"bytes_in": 6}, "counters": {"polls": 3, "rejected": {"x": 2, "y": 1}}, "histograms": {"rtt": b.export()}},
    ]
    merged = merge_stats(snaps)
    assert merged["counters"]["polls"] == 10
    assert merged["counters"]["rejected"] == {"x": 3, "y": 1}
    assert merged["wire"] == {"bytes_in": 11}
    assert merged["cpu_s"] >= 3.0
    assert merged["counters"]["rtt"] == both.summary_ms()  # the same as one process that saw every value
    assert merged["histograms"]["rtt"]["count"] == 999
