"""``labkit compare``: one seeded workload delivered by each style (webhook push and API polling by default), all measured."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from labkit.cli.app import app
from labkit.cli.common import emit_json, json_option, out_option, progress_bar, writable_dir
from labkit.config import RunSettings, describe_error
from labkit.errors import ConfigError

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
    "consumer_processes": "--processes",
    "styles": "--styles",
    "network": "--network",
    "webhook_connection": "--webhook-connection",
    "audience": "--audience",
    "consumer_skew": "--consumer-skew",
    "topics": "--topics",
    "subscriptions": "--subscriptions",
}

DEFAULT_STYLES = "webhook,polling"

SUMMARY_KEYS = ("schema_version", "run_id", "results_dir", "workload", "styles")


def build_run_settings(data: dict[str, Any]) -> RunSettings:
    """RunSettings from option values; a bad value names its option."""
    from labkit import styles  # the style modules load the servers' code: only when settings are built

    try:
        settings = RunSettings.model_validate(data)
        styles.check(settings)
        return settings
    except ConfigError as exc:
        raise ConfigError(f"--styles{str(exc).removeprefix('styles')}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        option = OPTION_NAMES.get(loc)
        if option:
            msg = describe_error(exc).split(": ", 1)[-1]
            raise ConfigError(f"{option}: {msg}") from None
        message = describe_error(exc)
        head, sep, rest = message.partition(": ")
        if sep and head in OPTION_NAMES:  # a check across fields that names the one at fault first
            raise ConfigError(f"{OPTION_NAMES[head]}: {rest}") from None
        raise ConfigError(options_named(message)) from None


def options_named(message: str) -> str:
    """A check across several fields (rate x duration) says the options, not the fields, it is about."""
    for field, option in OPTION_NAMES.items():
        message = re.sub(rf"(?<![\w.-]){re.escape(field)}(?![\w])", option, message)
        if "." in field:  # a nested model's own check names its fields without the prefix
            message = re.sub(rf"(?<![\w.-]){re.escape(field.rsplit('.', 1)[1])}(?![\w])", option, message)
    return message


def subscribers_for(subscribers: int | None, pollers: int, audience: str) -> int:
    """``--subscribers`` as given; else 1 for a broadcast, and ``--pollers`` under an audience (every style, the same consumers)."""
    if subscribers is not None:
        return subscribers
    return pollers if audience != "broadcast" else 1


def parse_styles(text: str) -> tuple[str, ...]:
    """``webhook,polling,sse`` as a tuple; RunSettings names an unknown or repeated style."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise ConfigError("--styles: name at least one delivery style (webhook, polling, sse, websocket)")
    return names


@app.command()
def compare(
    rate: float = typer.Option(20.0, "--rate", help="events per second"),
    duration: float = typer.Option(10.0, "--duration", help="seconds of publishing"),
    poll_interval: float = typer.Option(1.0, "--poll-interval", help="seconds between polls (T)"),
    payload_bytes: int = typer.Option(256, "--payload-bytes", help="bytes of JSON payload per event"),
    seed: int = typer.Option(1, "--seed", help="seeds the arrivals and payloads"),
    arrival: str = typer.Option("poisson", "--arrival", help="constant | poisson | bursty"),
    pollers: int = typer.Option(1, "--pollers", help="pollers in the fleet"),
    subscribers: int | None = typer.Option(
        None,
        "--subscribers",
        help="webhook subscriptions (default 1; with a per-consumer or topics --audience, as many as --pollers: the same consumers)",
    ),
    processes: str = typer.Option(
        "1", "--processes", help="processes for the poller fleet and the receiver: N, or auto (one per core)", metavar="N|auto"
    ),
    drain_timeout: float = typer.Option(30.0, "--drain-timeout", help="seconds to wait for stragglers"),
    out: Path = out_option("results root; the run goes to OUT/<run-id>/"),
    as_json: bool = json_option("print only the summary JSON on stdout"),
    report: bool = typer.Option(True, "--report/--no-report", help="write a decision report beside the results"),
    styles: str = typer.Option(
        DEFAULT_STYLES,
        "--styles",
        help="comma-separated delivery styles: webhook, polling, sse, websocket. The default is push vs poll, the question"
        " labkit asks; sse and websocket need the consumer to hold a connection open (one stream per --pollers)",
    ),
    network: str | None = typer.Option(
        None, "--network", help="a shipped profile (loopback, same-region, cross-region, ...) or a spec such as rtt=80ms,loss=0.5%"
    ),
    tls: bool = typer.Option(False, "--tls/--no-tls", help="serve the provider and the receiver over HTTPS (a local CA)"),
    webhook_connection: str = typer.Option("reuse", "--webhook-connection", help="reuse | new: the webhook sender's connections"),
    audience: str = typer.Option(
        "broadcast", "--audience", help="broadcast (every consumer gets every event) | per-consumer | topics: who receives which event"
    ),
    consumer_skew: str = typer.Option("uniform", "--consumer-skew", help="uniform | zipf:S: how events spread over consumers (or topics)"),
    topics: int | None = typer.Option(None, "--topics", help="--audience topics: how many event types"),
    subscriptions: int | None = typer.Option(None, "--subscriptions", help="--audience topics: how many types each consumer follows"),
) -> None:
    """Deliver one seeded workload by each style (default webhook push and API polling); measure each."""
    from labkit.config.network import parse_network

    profile = parse_network(network, source="--network") if network is not None else None
    settings = build_run_settings(
        {
            "workload": {"arrival": arrival, "rate_per_s": rate, "duration_s": duration, "payload_bytes": payload_bytes, "seed": seed},
            "poll_interval_s": poll_interval,
            "pollers": pollers,
            "subscribers": subscribers_for(subscribers, pollers, audience),
            "consumer_processes": processes,
            "drain_timeout_s": drain_timeout,
            "out_dir": str(out),
            "styles": parse_styles(styles),
            "network": profile,
            "tls": tls,
            "webhook_connection": webhook_connection,
            "audience": audience,
            "consumer_skew": consumer_skew,
            "topics": topics,
            "subscriptions": subscriptions,
        }
    )
    writable_dir(out)
    from labkit.analysis.summary_table import render_summary
    from labkit.lab import pipeline

    with progress_bar() as bar:
        result = pipeline.run(settings, progress=bar.update)
    paths = None
    if report:
        from labkit.report import write_report

        paths = write_report([result.results_dir], out_dir=result.results_dir / "report")
    if as_json:
        emit_json({k: result.summary[k] for k in SUMMARY_KEYS})
    else:
        render_summary(result.summary)
        if paths is not None:
            typer.echo(f"report: {paths.html}")
