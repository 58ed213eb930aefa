"""``labkit serve provider|receiver``: one lab server in the foreground, for people and Locust.

Secrets (the receiver's ``whsec_`` secrets, the provider's API keys) can be
given three ways. ``--secret`` and ``--api-key`` put them in the process's
command line, which every local user can read (``ps``, ``/proc/PID/cmdline``);
a file (``--secret-file``, ``--api-key-file``: one per line, readable by you
alone) or an environment variable (``LABKIT_WEBHOOK_SECRET``,
``LABKIT_API_KEY``: several separated by spaces) keeps them out of it. A
secrets file that others may read or write is refused, as ssh refuses such a
private key: ``chmod 600`` it.

``--db`` is opened before the server starts: a folder, a missing folder or a
file that is not SQLite is one line, not a server's start-up traceback.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import typer

from labkit.cli.app import app
from labkit.config import DEFAULT_API_KEY
from labkit.errors import ConfigError

SECRET_ENV = "LABKIT_WEBHOOK_SECRET"
API_KEY_ENV = "LABKIT_API_KEY"
# A secrets file holds a handful of lines; a bigger one is a wrong path (a log, a device).
MAX_SECRETS_FILE_BYTES = 64 * 1024
VISIBLE = "visible to every local user in the process list; prefer"

serve_app = typer.Typer(help="Run one lab server in the foreground (bound to 127.0.0.1).", no_args_is_help=True)
app.add_typer(serve_app, name="serve")


def read_secrets_file(path: Path, option: str) -> list[str]:
    """The non-blank lines of a small regular file, stripped; a bad file is one ConfigError line naming ``option``."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{option}: {path}: not a regular file")
        if st.st_size > MAX_SECRETS_FILE_BYTES:
            raise ConfigError(f"{option}: {path}: over {MAX_SECRETS_FILE_BYTES} bytes; it holds one secret per line")
        if st.st_mode & 0o077:
            raise ConfigError(f"{option}: {path}: others may read or change it (mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 {path}")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{option}: {path}: no such file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{option}: {path}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{option}: {path}: cannot read ({exc.strerror})") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ConfigError(f"{option}: {path}: holds no secret (one per line)")
    return lines


def check_db(db: str | Path, option: str = "--db") -> None:
    """``db`` opens as a SQLite database (it is created when missing, as the server would); else one ConfigError line."""
    if str(db) == ":memory:":
        return
    path = Path(db)
    if path.is_dir():
        raise ConfigError(f"{option}: {path} is a folder; give a database file (e.g. {path / 'labkit.db'})")
    try:
        con = sqlite3.connect(str(path), timeout=5)
        try:
            con.execute("PRAGMA schema_version").fetchone()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"{option}: cannot open {path} as a SQLite database ({exc})") from None


def gather_secrets(given: list[str], files: list[Path], option_file: str, env_name: str) -> list[str]:
    """Secrets from the options and files; from ``env_name`` (split on spaces) only when neither is given."""
    out = list(given)
    for path in files:
        out.extend(read_secrets_file(path, option_file))
    if not out:
        out = os.environ.get(env_name, "").split()
    return out


@serve_app.command("provider")
def serve_provider(
    port: int = typer.Option(8000, "--port", min=0, max=65535),
    api_key: list[str] = typer.Option(
        [], "--api-key", help=f"an accepted API key (repeat for several; default lab-key); {VISIBLE} --api-key-file or ${API_KEY_ENV}"
    ),
    api_key_file: list[Path] = typer.Option([], "--api-key-file", help="a file of API keys, one per line (kept out of the process list)"),
    db: Path = typer.Option(Path("labkit-provider.db"), "--db", help="SQLite event log and outbox"),
    rate_limit: float = typer.Option(200.0, "--rate-limit", help="requests per second per key; 0 = off"),
    rate_limit_burst: int | None = typer.Option(
        None, "--rate-limit-burst", help="requests a key may make at once before the rate applies [default: one second's worth]"
    ),
    poll_interval_hint: float = typer.Option(1.0, "--poll-interval-hint", help="sent as X-Poll-Interval"),
    time_scale: float = typer.Option(1.0, "--time-scale", help="compresses the retry schedule (0 < x <= 1)"),
    allow_host: list[str] = typer.Option([], "--allow-callback-host", help="private/loopback hosts webhooks may target"),
) -> None:
    """The provider: event log, cursor feed, subscriptions and webhook dispatcher."""
    from labkit.config import ProviderSettings, validated
    from labkit.lab.serving import serve_app as run_server
    from labkit.provider.app import create_app

    keys = gather_secrets(api_key, api_key_file, "--api-key-file", API_KEY_ENV) or [DEFAULT_API_KEY]
    settings = validated(
        ProviderSettings,
        {
            "db_path": str(db),
            "api_keys": keys,
            "rate_limit_per_s": rate_limit,
            "rate_limit_burst": rate_limit_burst,
            "poll_interval_hint_s": poll_interval_hint,
            "time_scale": time_scale,
            "allowed_callback_hosts": allow_host,
        },
    )
    check_db(db)  # after every other check: opening creates the file
    typer.echo(f"provider on http://127.0.0.1:{port} (db {db}); Ctrl-C stops it", err=True)
    run_server(create_app(settings), port=port)


@serve_app.command("receiver")
def serve_receiver(
    port: int = typer.Option(8001, "--port", min=0, max=65535),
    secret: list[str] = typer.Option(
        [], "--secret", help=f"whsec_ secret (repeat during a rotation); {VISIBLE} --secret-file or ${SECRET_ENV}"
    ),
    secret_file: list[Path] = typer.Option(
        [], "--secret-file", help="a file of whsec_ secrets, one per line (kept out of the process list)"
    ),
    db: str = typer.Option(":memory:", "--db", help="SQLite file for records and de-duplication"),
    no_verify: bool = typer.Option(False, "--no-verify", help="skip signature checks (benchmarks only)"),
    fail_rate: float = typer.Option(0.0, "--fail-rate", help="share of requests answered with an error"),
    delay_ms: float = typer.Option(0.0, "--delay-ms", help="added latency per request"),
) -> None:
    """The webhook receiver: verifies, de-duplicates and records."""
    from labkit.config import ReceiverSettings, validated
    from labkit.consumers.receiver import create_app
    from labkit.lab.serving import serve_app as run_server

    secrets = gather_secrets(secret, secret_file, "--secret-file", SECRET_ENV)
    if not secrets:
        raise ConfigError(
            f"the receiver needs a whsec_ secret: --secret-file PATH or ${SECRET_ENV} (--secret works, but every local user can read it)"
        )
    settings = validated(
        ReceiverSettings,
        {"secrets": secrets, "db_path": db, "verify": not no_verify, "fail_rate": fail_rate, "delay_ms": delay_ms},
    )
    check_db(db)
    typer.echo(f"receiver on http://127.0.0.1:{port}/webhook; Ctrl-C stops it", err=True)
    run_server(create_app(settings), port=port)
