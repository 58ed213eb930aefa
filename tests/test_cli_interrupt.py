"""Ctrl-C at any moment of a command, even while it is still importing, is one line and exit 130.

The signal is sent at several moments after labkit's own code starts: the
interpreter's start-up before that (the ``site`` module) is Python's, not
labkit's, so each delay is counted from how long a bare ``import labkit.cli``
takes on this machine now.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import pytest


def _startup_s() -> float:
    """Wall time of an interpreter that imports only ``labkit.cli`` (no commands), the slowest of three."""
    times = []
    for _ in range(3):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", "import labkit.cli"], check=True, timeout=60)
        times.append(time.monotonic() - started)
    return max(times)


@pytest.fixture(scope="module")
def startup_s() -> float:
    return _startup_s()


@pytest.mark.parametrize("offset_s", [0.0, 0.1, 0.2, 0.35, 0.5])
def test_ctrl_c_during_imports_is_one_line_and_exit_130(offset_s: float, startup_s: float, tmp_path) -> None:
    delay = startup_s + offset_s + random.uniform(0.0, 0.05)
    proc = subprocess.Popen(
        [sys.executable, "-m", "labkit", "compare", "--duration", "1", "--no-report", "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, f"delay {delay:.3f} s: exit {proc.returncode}\n{err}"
    assert "Traceback" not in err, err
    assert err.strip().splitlines() == ["labkit: interrupted; every process it started was stopped"], err
    assert out == ""
