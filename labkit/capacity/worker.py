"""``labkit capacity-worker``: one Locust worker joining a capacity run's master, here or elsewhere.

It runs the scenario's locustfile (and the step shape's, so the options match
the master's) as ``locust --worker`` in the foreground. The master sends it
the host, the users to run and the scenario's options; the worker records its
requests' exact latency and reports it to the master (``labkit.capacity.recording``).
It ends when the master quits, on Ctrl-C, or after ``timeout_s``; the Locust
process is stopped in every case.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable

from labkit.capacity.commands import scenarios_dir, worker_command
from labkit.capacity.settings import SCENARIOS, WorkerSettings
from labkit.errors import RunError

STOP_GRACE_S = 10.0


def run_worker(settings: WorkerSettings, progress: Callable[[str], None] = lambda _: None) -> int:
    """Run one worker until the master lets it go; returns Locust's exit code."""
    locustfile = scenarios_dir(settings.scenarios_dir) / SCENARIOS[settings.scenario].locustfile
    if not locustfile.is_file():
        raise RunError(f"{locustfile}: scenario file not found (run from a labkit checkout or set LABKIT_SCENARIOS_DIR)")
    cmd = worker_command(locustfile.resolve(), settings.master_address(), [], source=settings.source)
    progress(f"joining the master at {settings.master} ({settings.scenario}); Ctrl-C stops this worker")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        return proc.wait(timeout=settings.timeout_s)
    except subprocess.TimeoutExpired:
        progress(f"stopping after {settings.timeout_s:g} s (--timeout)")
        return _stop(proc)
    finally:
        if proc.poll() is None:
            _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=STOP_GRACE_S)
