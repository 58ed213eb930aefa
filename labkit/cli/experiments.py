"""``labkit run FILE`` and ``labkit sweep FILE``: experiments declared in TOML files.

``run`` runs a file that declares exactly one point (a file with lists is a
grid: it says so and points to ``sweep`` rather than silently running a
part of it). ``sweep`` runs the grid, skipping points already in the
results unless ``--force``. Both write results/<experiment>/<run-id>/ per
point and rebuild results/<experiment>/table.csv.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer

from labkit.cli.app import app
from labkit.cli.common import emit_json, json_option, out_option, progress_bar, writable_dir
from labkit.errors import ConfigError
from labkit.runs.experiments import load_experiment

SUMMARY_KEYS = ("schema_version", "run_id", "results_dir", "experiment", "point", "params", "workload", "styles")


@app.command("run")
def run_command(
    file: Path = typer.Argument(..., metavar="FILE", help="an experiment file, e.g. scenarios/experiments/quick.toml", show_default=False),
    out: Path = out_option("results root; the run goes to OUT/<experiment>/<run-id>/"),
    as_json: bool = json_option("print only the run's summary JSON on stdout"),
) -> None:
    """Run the one point an experiment file declares (a file with lists is a sweep)."""
    experiment = load_experiment(file, out_dir=out)
    if len(experiment) != 1:
        swept = ", ".join(experiment.swept)
        raise ConfigError(f"{file}: declares {len(experiment)} points (over {swept}); run them with: labkit sweep {file}")
    writable_dir(out)
    from labkit.analysis.summary_table import render_summary
    from labkit.results.layout import read_summary
    from labkit.runs.sweep import run_sweep

    with progress_bar() as bar:
        result = run_sweep(experiment, force=True, progress=bar.update)
    summary = read_summary(result.points[0].results_dir)
    if as_json:
        emit_json({k: summary[k] for k in SUMMARY_KEYS if k in summary})
    else:
        render_summary(summary)


@app.command("sweep")
def sweep_command(
    file: Path = typer.Argument(
        ..., metavar="FILE", help="an experiment file, e.g. scenarios/experiments/wasted-polls.toml", show_default=False
    ),
    out: Path = out_option("results root; points go to OUT/<experiment>/<run-id>/"),
    force: bool = typer.Option(False, "--force", help="rerun points that already have results"),
    as_json: bool = json_option("print only the sweep's outcome JSON on stdout"),
) -> None:
    """Run every point of an experiment's grid; points already done are skipped."""
    experiment = load_experiment(file, out_dir=out)
    writable_dir(out)
    from labkit.runs.sweep import run_sweep

    with progress_bar() as bar:
        result = run_sweep(experiment, force=force, progress=bar.update, log=bar.log)
    if as_json:
        emit_json(result.to_json())
    else:
        _render(result)


# (header, measured column, model column or None)
HEADLINES = (
    ("latency ms", "latency_ms.mean", "model.latency_mean_ms"),
    ("req/event", "requests_per_event", "model.requests_per_event"),
    ("empty polls", "empty_poll_ratio", "model.empty_poll_ratio"),
    ("bytes/event", "bytes_per_event", None),
    ("lost", "lost", None),
)


def _render(result: Any) -> None:
    """Headline numbers per point and style, each measurement beside the model's figure."""
    from rich.console import Console
    from rich.table import Table

    from labkit.analysis.summary_table import format_cell
    from labkit.runs.sweep import load_table

    df = load_table(result.results_dir)
    exp = result.experiment
    table = Table(title=f"{exp.name}: {exp.question or exp.description}", title_justify="left")
    params = [c for c in df.columns if c.startswith("param.")]
    for c in params:
        table.add_column(c[len("param.") :])
    table.add_column("style")
    for header, _, model_col in HEADLINES:
        table.add_column(header, justify="right")
        if model_col:
            table.add_column("model", justify="right", style="dim")
    for _, row in df.iterrows():
        cells = [format_cell(_value(row, c)) for c in params] + [str(row["style"])]
        for _, col, model_col in HEADLINES:
            cells.append(format_cell(_value(row, col)))
            if model_col:
                cells.append(format_cell(_value(row, model_col)))
        table.add_row(*cells)
    console = Console()
    console.print(table)
    ran = sum(1 for o in result.points if not o.skipped)
    console.print(
        f"{ran} point(s) run, {len(result.points) - ran} already done; table: {result.table}  (model columns are closed forms, not measurements)"
    )


def _value(row: Any, col: str) -> Any:
    value = row.get(col)
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value
