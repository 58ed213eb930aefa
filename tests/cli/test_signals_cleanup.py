"""Issue 24, item 7: SIGTERM or Ctrl-C in the middle of a command removes what it created, in one line.

Each command runs with its own ``TMPDIR``, so the private work directory it
makes (``labkit-*``: settings files with API keys and the webhook secret,
databases) is found there while the servers run, and must be gone after the
signal, with every process the command started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers.cli import fresh_sigint, labkit

REPO = Path(__file__).resolve().parents[2]
REQ = "target_latency_p99_ms = 1000\nevent_rate_per_s = 5\nconsumers = 2\nmissed_events_tolerated = true\n"


def _start(args: list[str], tmp: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-m", "labkit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, as a shell gives a command: Ctrl-C goes to the group
        preexec_fn=fresh_sigint,
    )


def _wait_for_servers(tmp: Path, proc: subprocess.Popen[str], timeout_s: float = 120) -> None:
    """Until a private work dir holds a server's settings file (the secrets are on disk now)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if any(tmp.glob("**/*.settings.json")):
            return
        time.sleep(0.05)
    raise AssertionError(f"no server started: {proc.poll()} {proc.stderr.read() if proc.poll() is not None else ''}")


def _survivors(tmp: Path) -> list[str]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        with_tmp = any(str(tmp) in part for part in (p.info["cmdline"] or []))
        if with_tmp:
            found.append(" ".join(p.info["cmdline"]))
    return found


@pytest.mark.slow  # starts a real run, then signals it
@pytest.mark.parametrize(
    ("command", "sig", "code", "says"),
    [
        ("compare", signal.SIGTERM, 143, "terminated (SIGTERM)"),
        ("compare", signal.SIGINT, 130, "interrupted"),
        ("decide", signal.SIGTERM, 143, "terminated (SIGTERM)"),
        ("notebooks", signal.SIGTERM, 143, "terminated (SIGTERM)"),
        ("notebooks", signal.SIGINT, 130, "interrupted"),
    ],
)
def test_a_signal_mid_run_removes_the_private_work_dir(tmp_path: Path, command: str, sig: int, code: int, says: str) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "out"
    if command == "compare":
        args = ["compare", "--duration", "30", "--no-report", "--out", str(out)]
    elif command == "notebooks":
        args = ["notebooks", "--quick", "--only", "01", "--out", str(out)]
    else:
        req = tmp_path / "r.toml"
        req.write_text(REQ)
        args = ["decide", str(req), "--out", str(out), "--max-minutes", "2"]
    proc = _start(args, tmp)
    try:
        _wait_for_servers(tmp, proc)
        time.sleep(0.5)
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)  # Ctrl-C in a terminal: the whole foreground process group
        else:
            proc.send_signal(sig)  # timeout, kill, docker stop: the command's process alone
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    lines = err.strip().splitlines()  # decide logs its plan and progress first; the end is one line
    assert "Traceback" not in err and says in lines[-1] and sum(line.startswith("labkit:") for line in lines) == 1, err
    assert list(tmp.iterdir()) == [], "the private work dir is removed"
    deadline = time.monotonic() + 10
    while _survivors(tmp) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _survivors(tmp) == []
    assert not [p for p in out.rglob("*") if p.is_file() and b"whsec_" in p.read_bytes()]


def test_notebooks_only_empty_is_refused() -> None:
    proc = labkit("notebooks", "--only", "")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "--only" in proc.stderr, proc.stderr
