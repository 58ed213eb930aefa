"""The command line: parses arguments, builds settings, calls the library.

Every command is a thin function over plain library calls. A ``LabkitError``
or a usage error becomes one line on stderr and exit code 2 (user error) or
1 (a run that failed); a traceback means a bug.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from labkit.cli import INTERRUPTED, exit_interrupted
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


serve_app = typer.Typer(help="Run one lab server in the foreground (bound to 127.0.0.1).", no_args_is_help=True)
app.add_typer(serve_app, name="serve")


@serve_app.command("provider")
def serve_provider(
    port: int = typer.Option(8000, "--port", min=0, max=65535),
    api_key: list[str] = typer.Option(["lab-key"], "--api-key", help="accepted API keys (repeat for several)"),
    db: Path = typer.Option(Path("labkit-provider.db"), "--db", help="SQLite event log and outbox"),
    rate_limit: float = typer.Option(200.0, "--rate-limit", help="requests per second per key; 0 = off"),
    poll_interval_hint: float = typer.Option(1.0, "--poll-interval-hint", help="sent as X-Poll-Interval"),
    time_scale: float = typer.Option(1.0, "--time-scale", help="compresses the retry schedule (0 < x <= 1)"),
    allow_host: list[str] = typer.Option([], "--allow-callback-host", help="private/loopback hosts webhooks may target"),
) -> None:
    """The provider: event log, cursor feed, subscriptions and webhook dispatcher."""
    from labkit.config import ProviderSettings, validated
    from labkit.provider.app import create_app
    from labkit.servers.serving import serve_app as run_server

    settings = validated(
        ProviderSettings,
        {
            "db_path": str(db),
            "api_keys": api_key,
            "rate_limit_per_s": rate_limit,
            "poll_interval_hint_s": poll_interval_hint,
            "time_scale": time_scale,
            "allowed_callback_hosts": allow_host,
        },
    )
    typer.echo(f"provider on http://127.0.0.1:{port} (db {db}); Ctrl-C stops it", err=True)
    run_server(create_app(settings), port=port)


@serve_app.command("receiver")
def serve_receiver(
    port: int = typer.Option(8001, "--port", min=0, max=65535),
    secret: list[str] = typer.Option(..., "--secret", help="whsec_ secret (repeat during a rotation)"),
    db: str = typer.Option(":memory:", "--db", help="SQLite file for records and de-duplication"),
    no_verify: bool = typer.Option(False, "--no-verify", help="skip signature checks (benchmarks only)"),
    fail_rate: float = typer.Option(0.0, "--fail-rate", help="share of requests answered with an error"),
    delay_ms: float = typer.Option(0.0, "--delay-ms", help="added latency per request"),
) -> None:
    """The webhook receiver: verifies, de-duplicates and records."""
    from labkit.config import ReceiverSettings, validated
    from labkit.consumers.receiver import create_app
    from labkit.servers.serving import serve_app as run_server

    settings = validated(
        ReceiverSettings,
        {"secrets": secret, "db_path": db, "verify": not no_verify, "fail_rate": fail_rate, "delay_ms": delay_ms},
    )
    typer.echo(f"receiver on http://127.0.0.1:{port}/webhook; Ctrl-C stops it", err=True)
    run_server(create_app(settings), port=port)


# The command modules, registered explicitly: each adds its commands to ``app`` on import.
COMMAND_MODULES = ("compare", "bench", "capacity", "experiments", "failures", "report", "notebooks")


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
    if rv == 130:  # typer's click turns Ctrl-C into a return code
        sys.stderr.write(INTERRUPTED)
    sys.exit(rv if isinstance(rv, int) else 0)
