"""The command line: parses arguments, builds settings, calls the library.

Every command is a thin function over plain library calls. A ``LabkitError``
or a usage error becomes one line on stderr and exit code 2 (user error) or
1 (a run that failed); a traceback means a bug.
"""

from __future__ import annotations

import sys

import typer

from labkit.cli.interrupt import exit_interrupted
from labkit.errors import LabkitError

try:  # typer >= 0.20 carries its own copy of click
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as _click_errors  # type: ignore[no-redef]

# The command modules, imported plainly: each adds its commands to ``app`` as it is imported.
from labkit.cli import bench, calibrate, capacity, compare, decide, experiments, failures, notebooks, report, serve, served  # noqa: E402, F401
from labkit.cli.app import app  # noqa: E402


def register_commands() -> typer.Typer:
    """The application with every command on it (the imports above registered them)."""
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
        exit_interrupted()
    except KeyboardInterrupt:
        exit_interrupted()
    except LabkitError as exc:
        sys.stderr.write(f"labkit: error: {exc}\n")
        sys.exit(exc.exit_code)
    if rv == 130:  # typer's click turns Ctrl-C into a return code; exit as the handler above does
        exit_interrupted()
    sys.exit(rv if isinstance(rv, int) else 0)
