"""The ``labkit`` application object, apart from the commands so that each command module can add to it.

The command modules import ``app`` from here; ``labkit.cli.commands`` imports
them all, so nothing imports its own importer.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="labkit",
    help="Webhooks or polling? Measure both on real servers and compare them with the model.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from labkit._version import __version__

        typer.echo(f"labkit {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="print the version and exit", is_eager=True, callback=_print_version),
) -> None:
    """Webhooks or polling? Measure both on real servers and compare them with the model."""
