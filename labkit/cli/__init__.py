"""The command line: parses arguments, builds settings, calls the library.

``main`` imports the commands (typer, pydantic, rich: a noticeable part of a
second) inside its own ``try``, so that Ctrl-C at any moment, even during
those imports, prints one line and exits 130 instead of a traceback; SIGTERM
takes the same path and exits 143 (``labkit.cli.interrupt``), also when a
library wraps the interrupt in an exception of its own.
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
    except Exception as exc:
        if not _caused_by_interrupt(exc):
            raise
        exit_interrupted()


def _caused_by_interrupt(exc: BaseException) -> bool:
    """Whether Ctrl-C (or SIGTERM) is in ``exc``'s chain.

    Python wraps what a class body's ``__set_name__`` raises in a RuntimeError, so a
    Ctrl-C while pydantic builds a settings class during the imports arrives as one.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
