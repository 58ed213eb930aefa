"""``labkit failures [FILE]`` and ``labkit tls-cost``: the failure experiment and the price of TLS.

``failures`` runs every fault of a failure experiment (by default
scenarios/experiments/failures.toml; any experiment file whose variants set
``fault`` works) and prints, per fault and style, what was lost, repeated,
retried, dead-lettered, and how long catching up took. Its results are an
ordinary experiment's: results/<experiment>/<run-id>/summary.json per fault.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from labkit.cli.app import app
from labkit.cli.common import emit_json, json_option, out_option, progress_bar, writable_dir
from labkit.errors import ConfigError
from labkit.results.layout import SCHEMA_VERSION

DEFAULT_FILE = Path("scenarios/experiments/failures.toml")


@app.command("failures")
def failures_command(
    file: Path = typer.Argument(DEFAULT_FILE, help="a failure experiment file (variants that set fault = {...})"),
    out: Path = out_option("results root; faults go to OUT/<experiment>/<run-id>/"),
    resume: bool = typer.Option(False, "--resume", help="keep faults already run instead of running them again"),
    as_json: bool = json_option("print only the faults' outcome JSON on stdout"),
) -> None:
    """Break things on purpose and measure what each style loses, repeats or delays."""
    from labkit.analysis.failure_table import fault_document, fault_rows
    from labkit.runs.experiments import load_experiment
    from labkit.runs.sweep import run_sweep

    experiment = load_experiment(file, out_dir=out)
    if not any(p.settings.fault is not None for p in experiment.points):
        raise ConfigError(f"{file}: no point sets a fault; give each variant fault = {{ kind = ... }}")
    writable_dir(out)
    with progress_bar() as bar:
        result = run_sweep(experiment, force=not resume, progress=bar.update, log=bar.log)
    dirs = [o.results_dir for o in result.points]
    if as_json:
        faults: dict[str, Any] = {}
        for d in dirs:
            faults.update(fault_document(d))
        emit_json(
            {
                "schema_version": SCHEMA_VERSION,
                "experiment": experiment.name,
                "results_dir": str(result.results_dir),
                "table": str(result.table),
                "faults": faults,
            }
        )
        return
    _render([row for d in dirs for row in fault_rows(d)], f"{experiment.name}: {experiment.question}")


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _render(rows: list[dict[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    columns = (
        ("fault", "fault"),
        ("style", "style"),
        ("published", "published"),
        ("delivered", "delivered"),
        ("lost", "lost"),
        ("dup seen", "duplicates_seen"),
        ("dup processed", "duplicates_processed"),
        ("retries", "retries"),
        ("retry delay ms", "retry_delay_added_ms"),
        ("dead", "dead_lettered"),
        ("outage s", "outage_s"),
        ("catch-up s", "catch_up_s"),
        ("p99 ms", "latency_p99_ms"),
    )
    for head, _ in columns:
        table.add_column(head, justify="left" if head in ("fault", "style") else "right")
    for row in rows:
        cells = [_fmt(row.get(key), 0 if key.endswith("_ms") else 2) for _, key in columns]
        if row.get("lost") and not row.get("loss_ok"):
            cells[4] = f"[bold red]{cells[4]}[/]"
        table.add_row(*cells)
    console = Console()
    if not console.is_terminal:  # piped or captured: 80 columns would squash the numbers
        console = Console(width=170)
    console.print(table)
    console.print("lost: events the provider committed that never reached the consumer (a 410 disables an endpoint by design);")
    console.print("catch-up: from the fault's end until the consumer held every event published before it.")
    if any("network" in row for row in rows):
        from labkit.servers.netproxy import EMULATION

        console.print(f"network faults: {EMULATION}.")


@app.command("tls-cost")
def tls_cost_command(
    requests: int = typer.Option(200, "--requests", min=1, max=100_000, help="deliveries timed per mode"),
    as_json: bool = json_option("print only the measurement JSON on stdout"),
) -> None:
    """What a TLS handshake adds to a webhook delivery, against a reused connection."""
    from labkit.servers.tls import measure_handshake_cost

    result = measure_handshake_cost(requests=requests)
    if as_json:
        emit_json({"schema_version": SCHEMA_VERSION, **result})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"signed webhook deliveries on loopback, {requests} per mode ({result['tls'].get('version', 'TLS')})", title_justify="left"
    )
    for head in ("mode", "wall ms (median)", "client CPU ms", "receiver CPU ms"):
        table.add_column(head, justify="left" if head == "mode" else "right")
    for mode, m in result["modes"].items():
        table.add_row(mode, f"{m['wall_ms_median']:.3f}", f"{m['client_cpu_ms']:.3f}", f"{m['server_cpu_ms']:.3f}")
    console = Console()
    console.print(table)
    h, t = result["handshake"], result["tcp_connect"]
    console.print(
        f"a TLS handshake per delivery adds {h['wall_ms']:.3f} ms of wall time, {h['client_cpu_ms']:.3f} ms of sender CPU"
        f" and {h['server_cpu_ms']:.3f} ms of receiver CPU; a new TCP connection alone adds {t['wall_ms']:.3f} ms."
    )
