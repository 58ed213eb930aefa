"""Ctrl-C at any moment of a command, even while it is still importing, is one line and exit 130.

The signal is sent at several moments after labkit's own code starts. Before
that, the interpreter's start-up (the ``site`` module) is Python's, not
labkit's; so the test first waits until the child has loaded
``_posixsubprocess``, which Python loads only when ``labkit.cli`` imports the
command line (typer imports subprocess), inside the entry point's ``try``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.cli import fresh_sigint

FIRST_COMMAND_IMPORT = "_posixsubprocess"


def _wait_for_library(pid: int, name: str, timeout_s: float = 60.0) -> None:
    """Wait until the child's own interpreter has loaded ``name``.

    Until exec, the child is the test's own (v)forked image, whose maps already hold
    ``_posixsubprocess``: a signal sent then is lost in exec and the command runs to
    its end (exit 0). So the command line must be the child's before the maps count.
    """
    maps, cmdline = Path(f"/proc/{pid}/maps"), Path(f"/proc/{pid}/cmdline")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if b"\x00-m\x00labkit\x00" in cmdline.read_bytes() and name in maps.read_text():
                return
        except OSError:  # the process has exited
            return
        time.sleep(0.002)
    raise AssertionError(f"{name} was not loaded within {timeout_s} s")


@pytest.mark.slow  # six CLI start-ups, each waiting for a module to load: seconds, not the fast loop's
@pytest.mark.parametrize("offset_s", [0.0, 0.05, 0.1, 0.2, 0.35, 0.5])
def test_ctrl_c_during_imports_is_one_line_and_exit_130(offset_s: float, tmp_path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "labkit", "compare", "--duration", "1", "--no-report", "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=fresh_sigint,
    )
    try:
        _wait_for_library(proc.pid, FIRST_COMMAND_IMPORT)
        time.sleep(offset_s + random.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, f"offset {offset_s} s: exit {proc.returncode}\n{err}"
    assert "Traceback" not in err, err
    assert err.strip().splitlines() == ["labkit: interrupted; every process it started was stopped"], err
    assert out == ""


def test_the_marker_library_is_not_loaded_before_the_command_line() -> None:
    """The wait above is meaningful only if start-up and ``import labkit.cli`` do not load the marker."""
    code = f"import sys, labkit.cli; sys.exit(0 if {FIRST_COMMAND_IMPORT!r} not in open('/proc/self/maps').read() else 1)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_a_cancellation_swallowed_on_the_way_still_stops_the_run() -> None:
    """A Ctrl-C that an await swallowed (the task still counts it) ends the run at the next check, not with exit 0."""
    import asyncio

    from labkit.lab.session import raise_if_cancelled

    async def run() -> str:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            pass  # swallowed, as a buggy await on the way might
        raise_if_cancelled()
        return "finished"

    async def fresh() -> str:
        raise_if_cancelled()  # nothing pending: goes on
        return "finished"

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run())
    assert asyncio.run(fresh()) == "finished"


def test_an_interrupt_wrapped_by_a_library_is_still_one_line_and_exit_130(monkeypatch, capsys) -> None:
    """Ctrl-C inside ``__set_name__`` (pydantic building a class while importing) reaches main as a RuntimeError."""
    import labkit.cli as cli
    import labkit.cli.commands as commands

    def wrapped(argv: list[str] | None) -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise RuntimeError("Error calling __set_name__") from exc

    exits: list[int] = []
    monkeypatch.setattr(commands, "main", wrapped)
    monkeypatch.setattr(cli, "install", lambda: None)  # the test runner's own SIGTERM handler stays
    monkeypatch.setattr(os, "_exit", exits.append)
    cli.main(["compare"])
    assert exits == [130]
    assert capsys.readouterr().err == "labkit: interrupted; every process it started was stopped\n"


def test_a_bug_is_not_taken_for_an_interrupt(monkeypatch) -> None:
    import labkit.cli as cli
    import labkit.cli.commands as commands

    def broken(argv: list[str] | None) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(commands, "main", broken)
    monkeypatch.setattr(cli, "install", lambda: None)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["compare"])
