"""``labkit capacity SCENARIO``: how much load one server holds within an SLO (Locust step test)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from labkit.cli.app import app
from labkit.cli.common import emit_json, json_option, out_option, writable_dir
from labkit.config import describe_error
from labkit.errors import ConfigError

# Settings fields as the options that set them, so a message names what the user typed.
OPTION_NAMES = {
    "scenario": "SCENARIO",
    "slo_p99_ms": "--slo-p99-ms",
    "max_failure_ratio": "--max-failure-ratio",
    "max_users": "--max-users",
    "duration_s": "--duration",
    "workers": "--workers",
    "expect_workers": "--expect-workers",
    "master_bind": "--master-bind",
    "server_bind": "--server-bind",
    "workers_wait_s": "--workers-wait",
    "interval_s": "--interval",
    "step_users": "--step-users",
    "step_seconds": "--step-seconds",
    "subscriptions": "--subscriptions",
    "audience": "--audience",
    "out_dir": "--out",
}


WORKER_OPTION_NAMES = {"master": "--master", "scenario": "--scenario", "source": "--source", "timeout_s": "--timeout"}

MASTER_BIND_HELP = (
    "HOST:PORT the Locust master listens on for workers (default 127.0.0.1:5557 with --expect-workers). "
    "An address other than 127.0.0.1 opens Locust's unauthenticated, unencrypted worker port to every host that "
    "reaches it: anyone there can join as a worker and is sent the scenario's options, the webhook secret included."
)
SERVER_BIND_HELP = (
    "address the provider/receiver listen on (default 127.0.0.1), and the address workers are told. "
    "Another address exposes the lab servers' HTTP API, with the lab's fixed API key, to every host that reaches it; "
    "workers on other machines need it."
)


def _validated(model: Any, data: dict[str, Any], names: dict[str, str]) -> Any:
    """``model`` from option values; a bad value names its option."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        loc = ".".join(str(p) for p in exc.errors()[0]["loc"])
        option = names.get(loc)
        msg = describe_error(exc)
        if option:
            msg = f"{option}: {msg.split(': ', 1)[-1]}"
        elif msg.startswith(tuple(f"{k}:" for k in names)):
            field, rest = msg.split(": ", 1)
            msg = f"{names[field]}: {rest}"
        raise ConfigError(msg) from None


def _check_scenario(scenario: str | None, name: str) -> None:
    from labkit.capacity.settings import SCENARIOS  # the scenarios are the capacity package's units

    if scenario not in SCENARIOS:
        raise ConfigError(f"{name}: unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")


def build_capacity_settings(data: dict[str, Any]) -> Any:
    """CapacitySettings from option values; a bad value names its option."""
    from labkit.capacity.settings import CapacitySettings

    _check_scenario(data.get("scenario"), "SCENARIO")
    return _validated(CapacitySettings, data, OPTION_NAMES)


def build_worker_settings(data: dict[str, Any]) -> Any:
    """WorkerSettings from option values; a bad value names its option."""
    from labkit.capacity.settings import WorkerSettings

    _check_scenario(data.get("scenario"), "--scenario")
    return _validated(WorkerSettings, data, WORKER_OPTION_NAMES)


def max_users_plan(max_users: str | None, duration: float | None) -> dict[str, Any]:
    """``--max-users N`` steps to N; absent or ``auto``, a search finds the limit (capped, and given more time)."""
    from labkit.capacity.settings import SEARCH_DURATION_S, SEARCH_MAX_USERS

    if max_users is None or max_users.strip().lower() == "auto":
        return {"max_users": SEARCH_MAX_USERS, "search": True, "duration_s": duration if duration is not None else SEARCH_DURATION_S}
    try:
        users = int(max_users)
    except ValueError:
        raise ConfigError(f"--max-users: {max_users!r} is not a whole number or 'auto'") from None
    return {"max_users": users, "duration_s": duration if duration is not None else 60.0}


def step_plan(
    scenario: str,
    slo_p99_ms: float,
    max_failure_ratio: float,
    max_users: int,
    duration: float,
    interval: float,
    step_users: int,
    step_seconds: float,
) -> dict[str, Any]:
    """The settings a step test is run and judged by, from their options (0 steps: auto)."""
    return {
        "scenario": scenario,
        "slo_p99_ms": slo_p99_ms,
        "max_failure_ratio": max_failure_ratio,
        "max_users": max_users,
        "duration_s": duration,
        "interval_s": interval,
        "step_users": step_users if step_users != 0 else None,
        "step_seconds": step_seconds if step_seconds != 0 else None,
    }


@app.command()
def capacity(
    scenario: str = typer.Argument(..., help="polling | webhook_ingest | publish_fanout | streams"),
    slo_p99_ms: float = typer.Option(100.0, "--slo-p99-ms", help="p99 latency the SLO allows (ms); delivery lag for publish_fanout"),
    max_failure_ratio: float = typer.Option(0.01, "--max-failure-ratio", help="failure ratio the SLO allows"),
    max_users: str | None = typer.Option(
        None,
        "--max-users",
        help="the most users the step test tries; absent or 'auto': find the limit (a climb, then bisection to 10 %, "
        "adding Locust workers up to one per core when Locust runs out of CPU)",
    ),
    duration: float | None = typer.Option(None, "--duration", help="hard time limit of the Locust run (s; default 60, a search 540)"),
    workers: int = typer.Option(0, "--workers", help="Locust worker processes (0: one local process)"),
    expect_workers: int = typer.Option(
        0, "--expect-workers", help="Locust workers started elsewhere (labkit capacity-worker, locust --worker) to wait for"
    ),
    master_bind: str | None = typer.Option(None, "--master-bind", help=MASTER_BIND_HELP),
    server_bind: str = typer.Option("127.0.0.1", "--server-bind", help=SERVER_BIND_HELP),
    workers_wait: float = typer.Option(30.0, "--workers-wait", help="seconds the master waits for its workers to join"),
    interval: float = typer.Option(1.0, "--interval", help="seconds between one user's requests (poll interval T)"),
    step_users: int = typer.Option(0, "--step-users", help="users added per step (0: auto)"),
    step_seconds: float = typer.Option(0.0, "--step-seconds", help="seconds per step (0: auto, about 12 s)"),
    subscriptions: int = typer.Option(3, "--subscriptions", help="publish_fanout: subscriptions per event"),
    audience: str = typer.Option(
        "broadcast", "--audience", help="broadcast | per-consumer: each polling user follows its own consumer's feed with its own key"
    ),
    out: Path = out_option("results root; the run goes to OUT/capacity/<run-id>/"),
    as_json: bool = json_option("print only the capacity JSON on stdout"),
) -> None:
    """Find how much load one server holds within an SLO: a Locust step test on loopback (workers may join from elsewhere)."""
    users_plan = max_users_plan(max_users, duration)
    settings = build_capacity_settings(
        {
            **step_plan(
                scenario,
                slo_p99_ms,
                max_failure_ratio,
                users_plan["max_users"],
                users_plan["duration_s"],
                interval,
                step_users,
                step_seconds,
            ),
            "search": users_plan.get("search", False),
            "workers": workers,
            "expect_workers": expect_workers,
            "master_bind": master_bind,
            "server_bind": server_bind,
            "workers_wait_s": workers_wait,
            "subscriptions": subscriptions,
            "audience": audience,
            "out_dir": str(out),
        }
    )
    writable_dir(out)
    from labkit.capacity.run import run_capacity

    def progress(line: str) -> None:
        sys.stderr.write(f"capacity: {line}\n")
        sys.stderr.flush()

    result = run_capacity(settings, progress=progress)
    if as_json:
        emit_json(result.summary)
    else:
        render_capacity(result.summary)


@app.command("capacity-report")
def capacity_report(
    results_dir: Path = typer.Argument(..., help="the Locust master's results (its --csv prefix 'locust' in this directory)"),
    scenario: str = typer.Option("polling", "--scenario", help="polling | webhook_ingest | publish_fanout | streams (the master's)"),
    slo_p99_ms: float = typer.Option(100.0, "--slo-p99-ms", help="p99 latency the SLO allows (ms), as the master was given"),
    max_failure_ratio: float = typer.Option(0.01, "--max-failure-ratio", help="failure ratio the SLO allows"),
    max_users: int = typer.Option(200, "--max-users", help="the most users the step test tried (Locust's -u)"),
    duration: float = typer.Option(60.0, "--duration", help="the run's time limit (Locust's -t, in s)"),
    interval: float = typer.Option(1.0, "--interval", help="seconds between one user's requests (poll interval T)"),
    step_users: int = typer.Option(0, "--step-users", help="users added per step (0: auto, as the master computed it)"),
    step_seconds: float = typer.Option(0.0, "--step-seconds", help="seconds per step (0: auto)"),
    as_json: bool = json_option("print only the capacity JSON on stdout"),
) -> None:
    """capacity.json from a step test whose Locust master ran elsewhere (docker compose, Kubernetes): its files only."""
    _check_scenario(scenario, "--scenario")
    settings = build_capacity_settings(
        {
            **step_plan(scenario, slo_p99_ms, max_failure_ratio, max_users, duration, interval, step_users, step_seconds),
            "out_dir": str(results_dir),
        }
    )
    from labkit.capacity.run import analyse_directory

    result = analyse_directory(settings, results_dir)
    if as_json:
        emit_json(result.summary)
    else:
        render_capacity(result.summary)


@app.command("capacity-worker")
def capacity_worker(
    master: str = typer.Option(..., "--master", help="HOST:PORT of the master (labkit capacity --master-bind)"),
    scenario: str = typer.Option("polling", "--scenario", help="polling | webhook_ingest | publish_fanout | streams (the master's)"),
    source: str | None = typer.Option(None, "--source", help="local address to connect to the master from (several interfaces)"),
    timeout: float = typer.Option(7200.0, "--timeout", help="stop the worker after this many seconds"),
) -> None:
    """One Locust worker that joins a capacity run's master, here or on another machine; it stops when the master quits."""
    settings = build_worker_settings({"master": master, "scenario": scenario, "source": source, "timeout_s": timeout})
    from labkit.capacity.worker import run_worker

    def progress(line: str) -> None:
        sys.stderr.write(f"capacity-worker: {line}\n")
        sys.stderr.flush()

    raise typer.Exit(run_worker(settings, progress=progress))


SERVER_OPTION_NAMES = {"bind": "--bind", "db_path": "--db", "secret": "LABKIT_SECRET", "interval_s": "--poll-interval-hint"}


@app.command("capacity-server")
def capacity_server(
    role: str = typer.Argument(..., help="provider | receiver"),
    bind: str = typer.Option(
        "127.0.0.1:8000",
        "--bind",
        help="HOST:PORT to listen on. Any address other than 127.0.0.1 (0.0.0.0: every interface, as in a container) "
        "exposes the server's HTTP API, with the lab's fixed API key, to every host that reaches it.",
    ),
    db: Path = typer.Option(Path("labkit-capacity.db"), "--db", help="SQLite file (the provider's log, the receiver's records)"),
    allow_host: list[str] = typer.Option([], "--allow-callback-host", help="provider: hosts webhooks may target (the receiver's)"),
    poll_interval_hint: float = typer.Option(1.0, "--poll-interval-hint", help="provider: sent as X-Poll-Interval"),
) -> None:
    """A capacity scenario's server on its own, for Locust workers elsewhere (containers); receiver secret from LABKIT_SECRET."""
    import os

    from labkit.capacity.settings import StandaloneServerSettings

    if role not in ("provider", "receiver"):
        raise ConfigError(f"ROLE: unknown server {role!r}; choose provider or receiver")
    data = {
        "role": role,
        "bind": bind,
        "db_path": str(db),
        "secret": os.environ.get("LABKIT_SECRET", "") if role == "receiver" else "",
        "allowed_callback_hosts": allow_host,
        "interval_s": poll_interval_hint,
    }
    settings = _validated(StandaloneServerSettings, data, SERVER_OPTION_NAMES)
    from labkit.capacity.standalone import serve_standalone

    def progress(line: str) -> None:
        sys.stderr.write(f"capacity-server: {line}\n")
        sys.stderr.flush()

    serve_standalone(settings, progress=progress)


def render_capacity(summary: dict[str, Any]) -> None:
    """The verdict, then the steps, in plain text on stdout."""
    cap, slo = summary["capacity"], summary["slo"]
    out = sys.stdout.write
    p99 = f"{cap['p99_ms']:g} ms" if cap.get("p99_ms") is not None else "n/a"
    out(
        f"capacity of {summary['scenario']}: {cap['users']} users, {cap['rps']:.1f} req/s, p99 {p99} "
        f"(SLO: p99 <= {slo['p99_ms']:g} ms on {slo['metric']}, failures <= {slo['max_failure_ratio']:.1%})\n"
    )
    out(f"limited by: {summary['limited_by']}{' (a lower bound)' if summary.get('lower_bound') else ''}\n")
    out(f"  {summary['reason']}\n")
    search = summary.get("search")
    if search:
        out(
            f"search: {search.get('label')}; {len(search.get('probes', []))} steps judged, {search.get('workers_added', 0)} worker(s) added\n"
        )
    out(f"{summary['statement']}\n\n")
    out(
        f"{'step':>4} {'users':>6} {'req/s':>8} {'p99 ms':>8} {'Locust p99':>10} {'late':>6} {'fail %':>7} "
        f"{'server CPU %':>13} {'Locust CPU %':>13}  SLO\n"
    )
    for s in summary.get("steps", []):

        def f(v: Any, fmt: str) -> str:
            return format(v, fmt) if isinstance(v, (int, float)) else "-"

        out(
            f"{s['step']:>4} {s['users']:>6} {f(s.get('rps'), '8.1f')} {f(s.get('p99_ms'), '8.1f')} "
            f"{f(s.get('p99_locust_ms', s.get('p99_ms')), '10.0f')} {f(s.get('late_requests'), '6d')} "
            f"{f(100 * s['failure_ratio'] if s.get('failure_ratio') is not None else None, '7.2f')} "
            f"{f(s.get('server_cpu_percent'), '13.0f')} {f(s.get('load_generator_cpu_percent'), '13.0f')}  "
            f"{'met' if s.get('met_slo') else 'breached'}\n"
        )
    lat = summary.get("latency")
    if lat:
        out(
            f"\nexact latency (HdrHistogram, {len(lat.get('nodes') or {})} node(s) merged): {lat['requests']} requests, "
            f"p99 {lat['p99_ms']} ms corrected for coordinated omission ({lat['p99_uncorrected_ms']} ms as measured), "
            f"{lat['late_requests']} late, {lat['dropped_requests']} dropped\n"
        )
    files = summary.get("files", {})
    shown = ["capacity.json", *(files[k] for k in ("html_report", "stats_history", "resources") if k in files)]
    out(f"\nresults: {summary['results_dir']} ({', '.join(shown)})\n")
