"""The command line: parses arguments, builds settings, calls the library.

``main`` imports the commands (typer, pydantic, rich: a noticeable part of a
second) inside its own ``try``, so that Ctrl-C at any moment, even during
those imports, prints one line and exits 130 instead of a traceback.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

INTERRUPTED = "labkit: interrupted; every process it started was stopped\n"


def main(argv: list[str] | None = None) -> None:
    """The ``labkit`` entry point."""
    try:
        import importlib

        commands = importlib.import_module("labkit.cli.main")
        _restore_entry_point()
        commands.main(argv)
    except KeyboardInterrupt:
        sys.stderr.write(INTERRUPTED)
        sys.exit(130)


_ENTRY_POINT = main


def _restore_entry_point() -> None:
    """Importing the submodule ``labkit.cli.main`` rebinds ``labkit.cli.main``; keep it this function."""
    globals()["main"] = _ENTRY_POINT
