"""The ``labkit`` command line run inside the test's process, or as a real process.

``labkit(*args)`` calls ``labkit.cli.main`` (the installed script's entry
point: the same parsing, the same one-line error handling, the same exit
codes) with stdout and stderr captured, and returns what a finished process
would show: ``returncode``, ``stdout``, ``stderr``. A test about what the
command says and which code it exits with needs no interpreter start-up of
its own (about 0.5 s each, and there are dozens). An exception the entry
point lets escape is raised in the test, where a process would have printed
a traceback: the test fails either way.

``labkit_process(*args)`` runs ``python -m labkit`` as a child, for the tests
about the process itself (that the real executable exits 2 with one line,
signals, the work directory of a run that is stopped).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Ran:
    """What a finished ``labkit`` invocation showed (the fields of ``subprocess.CompletedProcess`` the tests read)."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def _environment(cwd: Path | str | None, env: Mapping[str, str] | None) -> Iterator[None]:
    """The working directory, environment and signal handlers of a fresh process, restored afterwards."""
    old_cwd, old_env = os.getcwd(), dict(os.environ)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if cwd is not None:
            os.chdir(cwd)
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        yield
    finally:
        os.chdir(old_cwd)
        if env is not None:
            os.environ.clear()
            os.environ.update(old_env)
        for s, handler in handlers.items():
            signal.signal(s, handler)


def labkit(*args: str, cwd: Path | str | None = None, env: Mapping[str, str] | None = None) -> Ran:
    """Run ``labkit ARGS`` in this process; its exit code and what it wrote."""
    from labkit.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with _environment(cwd, env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code
    if not isinstance(code, int):  # sys.exit("message") prints it and exits 1, sys.exit(None) exits 0
        err.write(f"{code}\n" if code is not None else "")
        code = 0 if code is None else 1
    return Ran(args, code, out.getvalue(), err.getvalue())


def labkit_process(
    *args: str, cwd: Path | str | None = None, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m labkit ARGS`` as a child process."""
    return subprocess.run(
        [sys.executable, "-m", "labkit", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env, check=False
    )


def fresh_sigint() -> None:
    """A child's set-up before exec: SIGINT delivered as a terminal delivers it.

    A test runner started in the background (``.ci/run &``, nohup, some CI agents)
    has SIGINT ignored, and a child inherits that: Ctrl-C would then do nothing and a
    test of what Ctrl-C does would fail for the runner's reason, not labkit's.
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)
