"""How every command ends on Ctrl-C: one line, exit 130, after every ``finally`` has stopped what it started."""

from __future__ import annotations

import os
import sys

INTERRUPTED = "labkit: interrupted; every process it started was stopped\n"


def exit_interrupted() -> None:
    """The one line, then exit 130 at once.

    By the time Ctrl-C reaches here every ``finally`` below has run, so the
    processes a command started are stopped. ``sys.exit(130)`` would not do:
    under load CPython 3.11 was seen to turn it into death by SIGINT (exit
    -2) after the line was printed, so the status is set with ``os._exit``.
    """
    sys.stderr.write(INTERRUPTED)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(130)
