"""``labkit capacity SCENARIO``: how much load one server holds within an SLO (Locust step test)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from labkit.cli.common import emit_json, json_option, out_option, writable_dir
from labkit.cli.main import app
from labkit.config import describe_error
from labkit.errors import ConfigError

SCENARIO_NAMES = ("polling", "webhook_ingest", "publish_fanout")

# Settings fields as the options that set them, so a message names what the user typed.
OPTION_NAMES = {
    "scenario": "SCENARIO",
    "slo_p99_ms": "--slo-p99-ms",
    "max_failure_ratio": "--max-failure-ratio",
    "max_users": "--max-users",
    "duration_s": "--duration",
    "workers": "--workers",
    "interval_s": "--interval",
    "step_users": "--step-users",
    "step_seconds": "--step-seconds",
    "subscriptions": "--subscriptions",
    "out_dir": "--out",
}


def build_capacity_settings(data: dict[str, Any]) -> Any:
    """CapacitySettings from option values; a bad value names its option."""
    from labkit.capacity.run import CapacitySettings

    if data.get("scenario") not in SCENARIO_NAMES:
        raise ConfigError(f"SCENARIO: unknown scenario {data.get('scenario')!r}; choose one of {', '.join(SCENARIO_NAMES)}")
    try:
        return CapacitySettings.model_validate(data)
    except ValidationError as exc:
        loc = ".".join(str(p) for p in exc.errors()[0]["loc"])
        option = OPTION_NAMES.get(loc)
        msg = describe_error(exc)
        if option:
            msg = f"{option}: {msg.split(': ', 1)[-1]}"
        elif msg.startswith(tuple(f"{k}:" for k in OPTION_NAMES)):
            field, rest = msg.split(": ", 1)
            msg = f"{OPTION_NAMES[field]}: {rest}"
        raise ConfigError(msg) from None


@app.command()
def capacity(
    scenario: str = typer.Argument(..., help="polling | webhook_ingest | publish_fanout"),
    slo_p99_ms: float = typer.Option(100.0, "--slo-p99-ms", help="p99 latency the SLO allows (ms); delivery lag for publish_fanout"),
    max_failure_ratio: float = typer.Option(0.01, "--max-failure-ratio", help="failure ratio the SLO allows"),
    max_users: int = typer.Option(200, "--max-users", help="the most users the step test tries"),
    duration: float = typer.Option(60.0, "--duration", help="hard time limit of the Locust run (s)"),
    workers: int = typer.Option(0, "--workers", help="Locust worker processes (0: one local process)"),
    interval: float = typer.Option(1.0, "--interval", help="seconds between one user's requests (poll interval T)"),
    step_users: int = typer.Option(0, "--step-users", help="users added per step (0: auto)"),
    step_seconds: float = typer.Option(0.0, "--step-seconds", help="seconds per step (0: auto, about 12 s)"),
    subscriptions: int = typer.Option(3, "--subscriptions", help="publish_fanout: subscriptions per event"),
    out: Path = out_option("results root; the run goes to OUT/capacity/<run-id>/"),
    as_json: bool = json_option("print only the capacity JSON on stdout"),
) -> None:
    """Find how much load one server holds within an SLO: a Locust step test on loopback."""
    settings = build_capacity_settings(
        {
            "scenario": scenario,
            "slo_p99_ms": slo_p99_ms,
            "max_failure_ratio": max_failure_ratio,
            "max_users": max_users,
            "duration_s": duration,
            "workers": workers,
            "interval_s": interval,
            "step_users": step_users if step_users != 0 else None,
            "step_seconds": step_seconds if step_seconds != 0 else None,
            "subscriptions": subscriptions,
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
    out(f"{summary['statement']}\n\n")
    out(f"{'step':>4} {'users':>6} {'req/s':>8} {'p99 ms':>8} {'fail %':>7} {'server CPU %':>13} {'Locust CPU %':>13}  SLO\n")
    for s in summary.get("steps", []):

        def f(v: Any, fmt: str) -> str:
            return format(v, fmt) if isinstance(v, (int, float)) else "-"

        out(
            f"{s['step']:>4} {s['users']:>6} {f(s.get('rps'), '8.1f')} {f(s.get('p99_ms'), '8.1f')} "
            f"{f(100 * s['failure_ratio'] if s.get('failure_ratio') is not None else None, '7.2f')} "
            f"{f(s.get('server_cpu_percent'), '13.0f')} {f(s.get('load_generator_cpu_percent'), '13.0f')}  "
            f"{'met' if s.get('met_slo') else 'breached'}\n"
        )
    out(f"\nresults: {summary['results_dir']} (capacity.json, locust_report.html, locust_stats_history.csv, resources.csv)\n")
