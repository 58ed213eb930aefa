"""Sweeps: run an experiment's grid, point by point, resumably, into one tidy table.

Layout (under the results root, ``results/`` by default):

    <experiment>/<run-id>/summary.json     one point: the run's summary plus
                                           ``point`` (its stable id) and ``params`` (the swept values)
    <experiment>/<run-id>/events.parquet
    <experiment>/table.csv                 one row per (point, style), rebuilt after every sweep
    <experiment>/table.json                the same rows, with schema_version

A point whose summary is already there is skipped unless ``force``; a sweep
stopped half-way (Ctrl-C, a crash) picks up where it stopped.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from labkit.results.layout import (
    SCHEMA_VERSION,
    SUMMARY,
    read_summary,
    read_versioned_json,
    summary_rows,
    write_json,
)
from labkit.runs.campaign import Log, PointOutcome, Progress, run_points
from labkit.runs.experiments import Experiment

TABLE_CSV = "table.csv"
TABLE_JSON = "table.json"


_FIRST = ("experiment", "point", "run_id", "style")
# Each point's agreement with the model, next to its parameters: the model, the bound, the standard error, agrees, its base.
_AGREEMENT = (
    "latency_ms.mean",
    "agreement.model",
    "agreement.bound",
    "agreement.se",
    "agreement.width_se",
    "agreement.sized",
    "agreement.agrees",
    "agreement.base_source",  # what the model stood on: the machine's calibration (or none), never the point itself
)


def _quiet(*_: Any) -> None:
    return None


@dataclass(frozen=True)
class SweepResult:
    """A finished sweep: each point's outcome and the table rebuilt from all of them."""

    experiment: Experiment
    results_dir: Path
    points: tuple[PointOutcome, ...]
    table: Path

    def to_json(self) -> dict[str, Any]:
        """What ``labkit sweep --json`` prints."""
        return {
            "schema_version": SCHEMA_VERSION,
            "experiment": self.experiment.name,
            "results_dir": str(self.results_dir),
            "points": [
                {"point": o.point.point_id, "params": o.point.params, "run_id": o.run_id, "skipped": o.skipped} for o in self.points
            ],
            "table": str(self.table),
        }


def run_sweep(experiment: Experiment, *, force: bool = False, progress: Progress = _quiet, log: Log = _quiet) -> SweepResult:
    """Run every point of ``experiment`` not already in its results, then rebuild its table."""
    outcomes = run_points(
        experiment.points,
        experiment.results_dir,
        phase="sweep: points",
        describe=lambda p: describe_params(p.params),
        force=force,
        progress=progress,
        log=log,
    )
    table = write_table(experiment, [o.results_dir for o in outcomes])
    return SweepResult(experiment=experiment, results_dir=experiment.results_dir, points=tuple(outcomes), table=table)


def describe_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def build_table(run_dirs: list[Path]) -> pd.DataFrame:
    """One row per (point, style): identity, param.*, the agreement with the model, then measured, model.*, settings.*, env.*."""
    rows: list[dict[str, Any]] = []
    for run_dir in run_dirs:
        path = run_dir / SUMMARY
        rows.extend(summary_rows(read_summary(path), path))
    df = pd.DataFrame(rows)
    if df.empty:
        return df

    def rank(col: str) -> tuple[int, str]:
        if col in _FIRST:
            return (0, str(_FIRST.index(col)))
        if col in _AGREEMENT:
            return (2, f"{_AGREEMENT.index(col):02d}")
        for n, prefix in ((1, "param."), (3, "workload."), (5, "model."), (6, "settings."), (7, "env.")):
            if prefix and col.startswith(prefix):
                return (n, "")
        return (4, "")

    ordered = sorted(df.columns, key=lambda c: rank(c))  # stable: keeps first-seen order within a group
    return df[ordered]


def write_table(experiment: Experiment, run_dirs: list[Path]) -> Path:
    """Write <experiment>/table.csv and table.json from the given points; return the CSV's path."""
    exp_dir = experiment.results_dir
    df = build_table(run_dirs)
    exp_dir.mkdir(parents=True, exist_ok=True)
    csv_path = exp_dir / TABLE_CSV
    tmp = csv_path.with_suffix(".csv.tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, csv_path)
    write_json(
        exp_dir / TABLE_JSON,
        {
            "schema_version": SCHEMA_VERSION,
            "experiment": experiment.name,
            "question": experiment.question,
            "description": experiment.description,
            "source": str(experiment.path),
            "columns": list(df.columns),
            "rows": [{k: _plain(v) for k, v in row.items()} for row in df.to_dict(orient="records")],
        },
    )
    return csv_path


def load_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """An experiment's table.json (or the folder holding it), refusing an unknown schema_version."""
    data = read_versioned_json(Path(path), TABLE_JSON, "table", "; run the sweep first")
    return pd.DataFrame(data.get("rows", []), columns=data.get("columns"))


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
    return value
