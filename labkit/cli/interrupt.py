"""How every command ends on Ctrl-C or SIGTERM: one line, exit 130 or 143, after every ``finally`` has stopped what it started.

SIGTERM (``timeout``, ``kill``, a cancelled CI job, ``docker stop``) used to
kill the process where it stood: no ``finally`` ran, so the private work
directory (API keys, webhook secret, databases) stayed behind. ``install``
makes SIGTERM take Ctrl-C's path instead, through whatever SIGINT handler is
in place (asyncio's runner cancels the main task, Python's raises
``KeyboardInterrupt``), and remembers it so the exit says which signal it was.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

INTERRUPTED = "labkit: interrupted; every process it started was stopped\n"
TERMINATED = "labkit: terminated (SIGTERM); every process it started was stopped\n"
_state = {"terminated": False}


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _state["terminated"] = True
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not signal.default_int_handler:
        handler(signal.SIGINT, frame)  # e.g. asyncio.Runner's: cancel the main task, let its finally blocks run
        return
    raise KeyboardInterrupt  # also when SIGINT is ignored (a background job): SIGTERM must still end the command


def install() -> None:
    """SIGTERM ends the command the way Ctrl-C does (see the module doc); call first thing in the main thread."""
    signal.signal(signal.SIGTERM, _on_sigterm)


def terminated() -> bool:
    """True once a SIGTERM arrived."""
    return _state["terminated"]


def exit_interrupted() -> None:
    """The one line, then exit 130 (Ctrl-C) or 143 (SIGTERM) at once.

    By the time the signal's exception reaches here every ``finally`` below
    has run, so the processes a command started are stopped and its private
    work directory is removed. ``sys.exit(130)`` would not do: under load
    CPython 3.11 was seen to turn it into death by SIGINT (exit -2) after the
    line was printed, so the status is set with ``os._exit``.
    """
    term = terminated()
    sys.stderr.write(TERMINATED if term else INTERRUPTED)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(143 if term else 130)
