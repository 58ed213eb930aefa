"""``labkit failures``: a small failure experiment end to end, and bad files as one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.cli.commands import main

REPO = Path(__file__).resolve().parents[2]

TINY = """
[experiment]
name = "tiny-failures"
question = "Does a failure experiment run end to end?"
seed = 3

[run]
styles = ["webhook"]
poll_interval_s = 0.25
drain_timeout_s = 20

[workload]
rate_per_s = 15.0
duration_s = 2.0

[variants.throttled]
fault = { kind = "throttle", at_s = 0.5, duration_s = 1.0, rate = 0.5, retry_after_s = 0.5 }

[variants.gone]
fault = { kind = "receiver_gone", at_s = 1.0 }
"""


def labkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True, text=True, timeout=240, cwd=REPO, check=False)


@pytest.mark.slow
def test_failures_command_runs_each_fault_and_reports_json(tmp_path: Path) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    proc = labkit("failures", str(path), "--out", str(tmp_path / "results"), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["schema_version"] == 1 and out["experiment"] == "tiny-failures"
    throttled = out["faults"]["throttled"]["styles"]["webhook"]
    assert throttled["lost"] == 0 and throttled["retries"] > 0 and throttled["loss_ok"]
    # the same window counters as labkit compare and labkit sweep (no polls for push: no empty-poll ratio)
    assert throttled["requests_per_event"] > 0 and throttled["empty_poll_ratio"] is None
    gone = out["faults"]["gone"]["styles"]["webhook"]
    # A 410 disables the endpoint: the events after it are not delivered, by design, and say so.
    assert gone["lost"] > 0 and gone["loss_ok"] is True
    assert (tmp_path / "results" / "tiny-failures" / "table.csv").exists()
    table = (tmp_path / "results" / "tiny-failures" / "table.csv").read_text()
    assert "fault.lost" in table and "fault.catch_up_s" in table


def test_bad_fault_settings_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Through the command line's entry point in this process: the checks come before any server starts."""
    for body, needle in (
        (TINY.replace('kind = "receiver_gone"', 'kind = "meteor"'), "fault"),
        (TINY.replace('styles = ["webhook"]', 'styles = ["webhook", "polling"]'), "does not apply to 'polling'"),
        (TINY.replace("at_s = 1.0 }", "at_s = -1.0 }"), "variants.gone.fault"),
        # a snapshot feed skips versions by design: a fault run refuses it rather than dropping it
        (
            TINY.replace('styles = ["webhook"]', 'styles = ["polling"]\nsnapshot = true')
            .replace('kind = "throttle", at_s = 0.5, duration_s = 1.0, rate = 0.5, retry_after_s = 0.5', 'kind = "consumer_kill"')
            .replace('[variants.gone]\nfault = { kind = "receiver_gone", at_s = 1.0 }\n', ""),
            "snapshot",
        ),
    ):
        path = tmp_path / "bad.toml"
        path.write_text(body)
        with pytest.raises(SystemExit) as exc:
            main(["failures", str(path), "--out", str(tmp_path / "r")])
        err = capsys.readouterr().err
        assert exc.value.code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err, err
        assert not (tmp_path / "r").exists()
