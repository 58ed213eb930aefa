"""Bad input to ``labkit capacity``: one line naming the problem, exit 2, no traceback, nothing run."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "args, names",
    [
        (["capacity", "nope"], "SCENARIO"),
        (["capacity", "polling", "--max-users", "-5"], "--max-users"),
        (["capacity", "polling", "--max-users", "0"], "--max-users"),
        (["capacity", "polling", "--workers", "-1"], "--workers"),
        (["capacity", "polling", "--duration", "1"], "--duration"),
        (["capacity", "polling", "--slo-p99-ms", "0"], "--slo-p99-ms"),
        (["capacity", "polling", "--interval", "-1"], "--interval"),
        (["capacity", "polling", "--step-users", "-3"], "--step-users"),
        (["capacity", "polling", "--max-users", "many"], "--max-users"),
        (["capacity"], "SCENARIO"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, names, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", *args, "--out", str(tmp_path)], check=False, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert names.lower() in lines[0].lower()
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "capacity").exists()
