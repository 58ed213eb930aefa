"""``labkit served FILE``: each variant's limit of consumers served within a latency bound, found by search."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from labkit.cli.app import app
from labkit.cli.common import emit_json, json_option, out_option, progress_bar, writable_dir
from labkit.runs.experiments import load_experiment


@app.command("served")
def served_command(
    file: Path = typer.Argument(
        ..., metavar="FILE", help="an experiment file with variants, e.g. scenarios/experiments/clients-served.toml", show_default=False
    ),
    out: Path = out_option("results root; the search goes to OUT/<experiment>/served/<search-id>/"),
    variants: str = typer.Option("", "--variants", help="comma-separated variants to search (default: every variant of the file)"),
    budget: float | None = typer.Option(None, "--budget", help="seconds for the whole search (default: the file's search.time_budget_s)"),
    max_probes: int | None = typer.Option(None, "--max-probes", help="runs per variant at most (default: the file's search.max_probes)"),
    provider_core: bool | None = typer.Option(
        None, "--provider-core/--no-provider-core", help="the provider on a core of its own, the fleets on the others (default: on)"
    ),
    as_json: bool = json_option("print only served.json on stdout"),
) -> None:
    """Find how many consumers one provider serves within L per variant: climb, then bisect to 10 %; every probe a real run."""
    from labkit.runs.served import search_settings, served_search

    experiment = load_experiment(file, out_dir=out)
    search = search_settings(experiment, {"time_budget_s": budget, "max_probes": max_probes, "provider_core": provider_core})
    chosen = tuple(v.strip() for v in variants.split(",") if v.strip())
    writable_dir(out)
    with progress_bar() as bar:
        doc = served_search(experiment, search, variants=chosen, log=bar.log, progress=bar.update)
    if as_json:
        emit_json(doc)
    else:
        render_served(doc)


def _ms(v: Any) -> str:
    return f"{v:.0f} ms" if isinstance(v, (int, float)) else "-"


def _share(used: Any, asked: Any) -> str:
    """CPU used, and asked for (used plus the time spent waiting for a CPU)."""
    if not isinstance(used, (int, float)):
        return "-"
    return f"{used:.0%} ({asked:.0%})" if isinstance(asked, (int, float)) else f"{used:.0%}"


def _run(p: dict[str, Any] | None) -> str:
    if p is None:
        return "-"
    return f"{p['load']}: {p.get('why', '')}"


def _set_by(v: dict[str, Any]) -> str:
    """What set the limit: a named limit the failed run hit (open files), or its latency or loss, or what ended the search."""
    failed = v.get("failed") or {}
    if v["limited_by"] == "system":
        return f"the failed run's latency or loss ({failed.get('why', '')}), not a named limit"
    return str(v["limited_by"])


def render_served(doc: dict[str, Any]) -> None:
    """The limits with their bracketing runs and CPU shares, then the ratio ranges, in plain text."""
    from labkit.runs.served import CONTENDED_WAIT_SHARE, cpu_run

    out = sys.stdout.write
    out(f"{doc['experiment']}: consumers served within p99 <= {doc['latency_bound_ms']:g} ms, nothing lost\n")
    out(f"load average before {doc.get('load_average_before')}, after {doc.get('load_average_after')}; {doc.get('cores')} cores\n\n")
    out(f"{'variant':<14} {'limit':<44} {'held run':<34} {'failed run':<40} {'provider CPU':>12} {'fleet CPU':>12} probes\n")
    for name, v in doc["variants"].items():
        held, failed = v.get("held"), v.get("failed")
        deciding = cpu_run(v)
        out(
            f"{name:<14} {v['label']:<44} {_run(held):<34} {_run(failed):<40} "
            f"{_share(deciding.get('provider_cpu_share'), deciding.get('provider_cpu_demand')):>12} "
            f"{_share(deciding.get('fleet_cpu_share'), deciding.get('fleet_cpu_demand')):>12} {len(v['probes'])}\n"
        )
        out(f"{'':<14} set by: {_set_by(v)}\n")
        if not v["within_tolerance"] and v["limit"] is not None:
            out(f"{'':<14} not within {v['tolerance']:.0%}: {v['stop_reason']}\n")
        wait = deciding.get("provider_cpu_wait_share")
        if isinstance(wait, (int, float)) and wait >= CONTENDED_WAIT_SHARE:
            out(f"{'':<14} the provider waited {wait:.0%} of that run for its core (other work on the machine): the busy machine's limit\n")
    out(
        "CPU: used (asked for: used plus waiting for a CPU) in the failed run, else the held one (also when the failed run"
        " stopped before its workload); a fleet asking >= 90 % ran out\n"
    )
    if doc.get("ratios"):
        out("\nratios (the ranges both brackets allow):\n")
        for name, r in doc["ratios"].items():
            low = f"{r['low']:.2f}" if r["low"] is not None else "open"
            high = f"{r['high']:.2f}" if r["high"] is not None else "open"
            out(f"  {name} / {r['over']}: {low} .. {high}\n")
    out(f"\nresults: {doc['results_dir']}\n")
