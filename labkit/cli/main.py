"""The command line: parses arguments, builds settings, calls the library.

Every command is a thin function over plain library calls. A ``LabkitError``
or a usage error becomes one line on stderr and exit code 2 (user error) or
1 (a run that failed); a traceback means a bug.
"""

from __future__ import annotations

import sys

import typer

from labkit.cli import exit_interrupted
from labkit.errors import LabkitError

try:  # typer >= 0.20 carries its own copy of click
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as _click_errors  # type: ignore[no-redef]

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


# The command modules, registered explicitly: each adds its commands to ``app`` on import.
COMMAND_MODULES = ("compare", "bench", "capacity", "experiments", "failures", "report", "decide", "notebooks", "serve")


def register_commands() -> typer.Typer:
    """Import every command module so that its commands are on ``app`` (again is a no-op)."""
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"labkit.cli.{name}")
    return app


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line and a non-zero exit for every expected failure."""
    register_commands()
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="labkit", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except _click_errors.NoArgsIsHelpError as exc:
        sys.stderr.write(exc.format_message().rstrip() + "\n")
        sys.exit(2)
    except _click_errors.UsageError as exc:
        message = exc.format_message().strip().splitlines()[0]
        param = getattr(exc, "param", None)
        if param is not None and getattr(param, "opts", None) and param.opts[0] not in message:
            message = f"{param.opts[0]}: {message}"
        sys.stderr.write(f"labkit: error: {message}\n")
        sys.exit(2)
    except typer.Abort:
        sys.stderr.write("labkit: interrupted\n")
        sys.exit(130)
    except KeyboardInterrupt:
        exit_interrupted()
    except LabkitError as exc:
        sys.stderr.write(f"labkit: error: {exc}\n")
        sys.exit(exc.exit_code)
    if rv == 130:  # typer's click turns Ctrl-C into a return code; exit as the handler above does
        exit_interrupted()
    sys.exit(rv if isinstance(rv, int) else 0)
