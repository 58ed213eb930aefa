"""The command line: parses arguments, builds settings, calls the library.

``main`` imports the commands (typer, pydantic, rich: a noticeable part of a
second) inside its own ``try``, so that Ctrl-C at any moment, even during
those imports, prints one line and exits 130 instead of a traceback.
"""

from __future__ import annotations

import os
import sys

__all__ = ["main", "exit_interrupted"]

INTERRUPTED = "labkit: interrupted; every process it started was stopped\n"


def main(argv: list[str] | None = None) -> None:
    """The ``labkit`` entry point."""
    try:
        import importlib

        commands = importlib.import_module("labkit.cli.main")
        _restore_entry_point()
        commands.main(argv)
    except KeyboardInterrupt:
        exit_interrupted()


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


_ENTRY_POINT = main


def _restore_entry_point() -> None:
    """Importing the submodule ``labkit.cli.main`` rebinds ``labkit.cli.main``; keep it this function."""
    globals()["main"] = _ENTRY_POINT
