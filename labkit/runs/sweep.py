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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from labkit.errors import ResultsError
from labkit.results.layout import (
    SCHEMA_VERSION,
    SUMMARY,
    read_summary,
    read_versioned_json,
    summary_rows,
    write_json,
)
from labkit.runs.experiments import Experiment, Point

TABLE_CSV = "table.csv"
TABLE_JSON = "table.json"

# progress(phase, done, total), as for the runner; log(message) for one line per point.
Progress = Callable[[str, int, int], None]
Log = Callable[[str], None]

_FIRST = ("experiment", "point", "run_id", "style")
# Each point's agreement with the model, next to its parameters: the model, the bound, the standard error, agrees.
_AGREEMENT = (
    "latency_ms.mean",
    "agreement.model",
    "agreement.bound",
    "agreement.se",
    "agreement.width_se",
    "agreement.sized",
    "agreement.agrees",
)


def _quiet(*_: Any) -> None:
    return None


@dataclass(frozen=True)
class PointOutcome:
    """What the sweep did with one point: ran it, or found it done."""

    point: Point
    run_id: str
    results_dir: Path
    skipped: bool


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


def completed_points(exp_dir: Path) -> dict[str, Path]:
    """Point id -> run folder for every finished point under ``exp_dir``.

    A damaged or unknown-version summary stops the sweep with a ``ResultsError``
    naming the file: skipping or overwriting it silently could lose a result.
    """
    done: dict[str, Path] = {}
    if not exp_dir.is_dir():
        return done
    for path in sorted(exp_dir.glob(f"*/{SUMMARY}")):
        try:
            summary = read_summary(path)
        except ResultsError as exc:
            raise ResultsError(f"{exc}; delete that point's folder to run it again") from None
        pid = summary.get("point")
        # Two folders for one point (an older layout, a copy): the newest wins.
        if isinstance(pid, str) and (pid not in done or path.stat().st_mtime > (done[pid] / SUMMARY).stat().st_mtime):
            done[pid] = path.parent
    return done


def run_point(point: Point, exp_dir: Path, *, progress: Progress = _quiet) -> Path:
    """Run one point with the runner; its results go to <exp_dir>/<run-id>/."""
    from labkit.lab import pipeline

    out = exp_dir / point.run_id
    pipeline.run(
        point.settings,
        progress=progress,
        run_id=point.run_id,
        results_dir=out,
        extra={"experiment": point.experiment, "point": point.point_id, "params": point.params},
    )
    return out


def run_sweep(experiment: Experiment, *, force: bool = False, progress: Progress = _quiet, log: Log = _quiet) -> SweepResult:
    """Run every point of ``experiment`` not already in its results, then rebuild its table."""
    exp_dir = experiment.results_dir
    done = completed_points(exp_dir)
    total = len(experiment.points)
    outcomes: list[PointOutcome] = []
    progress("sweep: points", 0, total)
    for i, point in enumerate(experiment.points, start=1):
        label = describe_params(point.params) or point.point_id
        if point.point_id in done and not force:
            outcomes.append(PointOutcome(point, done[point.point_id].name, done[point.point_id], skipped=True))
            log(f"[{i}/{total}] {label}: already done, skipped")
        else:
            log(f"[{i}/{total}] {label}: running")
            out = run_point(point, exp_dir, progress=progress)
            old = done.get(point.point_id)
            if old is not None and old.resolve() != out.resolve():
                _forget_run(old)
            done[point.point_id] = out
            outcomes.append(PointOutcome(point, out.name, out, skipped=False))
        progress("sweep: points", i, total)
    table = write_table(experiment, [o.results_dir for o in outcomes])
    return SweepResult(experiment=experiment, results_dir=exp_dir, points=tuple(outcomes), table=table)


def _forget_run(run_dir: Path) -> None:
    """An older folder of a point just rerun: drop its summary so the point has one result."""
    summary = run_dir / SUMMARY
    if summary.exists():
        os.replace(summary, run_dir / (SUMMARY + ".replaced"))


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
