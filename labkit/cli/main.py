"""The command line: parses arguments, builds settings, calls the library.

Every command is a thin function over plain library calls. A ``LabkitError``
or a usage error becomes one line on stderr and exit code 2 (user error) or
1 (a run that failed); a traceback means a bug.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from labkit.config import RunSettings, describe_error
from labkit.errors import ConfigError, LabkitError

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


@app.callback()
def root() -> None:
    """Keeps ``labkit`` a group of commands even before the command modules are imported."""


# Settings fields as the options that set them, so a message names what the user typed.
OPTION_NAMES = {
    "workload.rate_per_s": "--rate",
    "workload.duration_s": "--duration",
    "workload.payload_bytes": "--payload-bytes",
    "workload.seed": "--seed",
    "workload.arrival": "--arrival",
    "poll_interval_s": "--poll-interval",
    "pollers": "--pollers",
    "subscribers": "--subscribers",
    "drain_timeout_s": "--drain-timeout",
    "out_dir": "--out",
}


def build_run_settings(data: dict[str, Any]) -> RunSettings:
    """RunSettings from option values; a bad value names its option."""
    try:
        return RunSettings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        option = OPTION_NAMES.get(loc)
        if option:
            msg = describe_error(exc).split(": ", 1)[-1]
            raise ConfigError(f"{option}: {msg}") from None
        raise ConfigError(options_named(describe_error(exc))) from None


def options_named(message: str) -> str:
    """A check across several fields (rate x duration) says the options, not the fields, it is about."""
    for field, option in OPTION_NAMES.items():
        message = re.sub(rf"(?<![\w.-]){re.escape(field)}(?![\w])", option, message)
        if "." in field:  # a nested model's own check names its fields without the prefix
            message = re.sub(rf"(?<![\w.-]){re.escape(field.rsplit('.', 1)[1])}(?![\w])", option, message)
    return message


def _stderr_progress():  # type: ignore[no-untyped-def]
    from labkit.progress import ProgressBar

    return ProgressBar()


def _emit_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


@app.command()
def compare(
    rate: float = typer.Option(20.0, "--rate", help="events per second"),
    duration: float = typer.Option(10.0, "--duration", help="seconds of publishing"),
    poll_interval: float = typer.Option(1.0, "--poll-interval", help="seconds between polls (T)"),
    payload_bytes: int = typer.Option(256, "--payload-bytes", help="bytes of JSON payload per event"),
    seed: int = typer.Option(1, "--seed", help="seeds the arrivals and payloads"),
    arrival: str = typer.Option("poisson", "--arrival", help="constant | poisson | bursty"),
    pollers: int = typer.Option(1, "--pollers", help="pollers in the fleet"),
    subscribers: int = typer.Option(1, "--subscribers", help="webhook subscriptions"),
    drain_timeout: float = typer.Option(30.0, "--drain-timeout", help="seconds to wait for stragglers"),
    out: Path = typer.Option(Path("results"), "--out", help="results root; the run goes to OUT/<run-id>/"),
    as_json: bool = typer.Option(False, "--json", help="print only the summary JSON on stdout"),
    report: bool = typer.Option(True, "--report/--no-report", help="write a decision report beside the results"),
) -> None:
    """Deliver one seeded workload by webhook push and by API polling; measure both."""
    settings = build_run_settings(
        {
            "workload": {"arrival": arrival, "rate_per_s": rate, "duration_s": duration, "payload_bytes": payload_bytes, "seed": seed},
            "poll_interval_s": poll_interval,
            "pollers": pollers,
            "subscribers": subscribers,
            "drain_timeout_s": drain_timeout,
            "out_dir": str(out),
        }
    )
    from labkit import runner
    from labkit.summary_table import render_summary

    with _stderr_progress() as bar:
        result = runner.run(settings, progress=bar.update)
    paths = None
    if report:
        from labkit.report import write_report

        paths = write_report([result.results_dir], out_dir=result.results_dir / "report")
    if as_json:
        keep = ("schema_version", "run_id", "results_dir", "workload", "styles")
        _emit_json({k: result.summary[k] for k in keep})
    else:
        render_summary(result.summary)
        if paths is not None:
            typer.echo(f"report: {paths.html}")


# The command modules, registered explicitly: each adds its commands to ``app`` on import.
COMMAND_MODULES = ("bench", "capacity", "experiments", "failures", "report", "serve")


def _register_commands() -> None:
    """Import every command module so that its commands are on ``app``."""
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"labkit.cli.{name}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line and a non-zero exit for every expected failure."""
    _register_commands()
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
        sys.stderr.write("labkit: interrupted; every process it started was stopped\n")
        sys.exit(130)
    except LabkitError as exc:
        sys.stderr.write(f"labkit: error: {exc}\n")
        sys.exit(exc.exit_code)
    if rv == 130:  # typer's click turns Ctrl-C into a return code
        sys.stderr.write("labkit: interrupted; every process it started was stopped\n")
    sys.exit(rv if isinstance(rv, int) else 0)
