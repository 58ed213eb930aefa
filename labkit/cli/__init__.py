"""The command line: parses arguments, builds settings, calls the library.

``main`` imports the commands (typer, pydantic, rich: a noticeable part of a
second) inside its own ``try``, so that Ctrl-C at any moment, even during
those imports, prints one line and exits 130 instead of a traceback; SIGTERM
takes the same path and exits 143 (``labkit.cli.interrupt``).
"""

from __future__ import annotations

from labkit.cli.interrupt import exit_interrupted, install

__all__ = ["main", "exit_interrupted"]


def main(argv: list[str] | None = None) -> None:
    """The ``labkit`` entry point."""
    install()
    try:
        from labkit.cli.commands import main as run_command

        run_command(argv)
    except KeyboardInterrupt:
        exit_interrupted()
