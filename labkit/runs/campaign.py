"""Campaigns: resumable points, one loop for ``labkit sweep`` and ``labkit decide``.

A campaign is a list of ``Point`` s under one folder; each point is one run of
the pipeline, written to ``<folder>/<run-id>/`` with its ``point`` id and
``params`` in its summary.json. ``run_points`` runs the points not already
there (all of them with ``force``), and when a point is run again into a new
folder it retires the older folder's summary (renamed ``summary.json.replaced``),
so every point has exactly one result.

``point_id`` has one meaning for both: a hash of the settings that differ from
labkit's defaults, so a setting added to a later labkit (with a default) leaves
finished points finished.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.config import RunSettings
from labkit.errors import ResultsError
from labkit.results.layout import SUMMARY, read_summary

# progress(phase, done, total), as for the runner; log(message) for one line per point.
Progress = Callable[[str, int, int], None]
Log = Callable[[str], None]


def _quiet(*_: Any) -> None:
    return None


def point_id(settings: RunSettings) -> str:
    """A stable id from the settings that shape a run, not where it is written.

    Only settings that differ from labkit's defaults count, so a setting added
    to a later labkit (with a default) leaves finished points finished. The
    flip side: a changed default does not rerun a point by itself (``--force``).
    """
    from labkit import styles  # the style modules load the servers' code: only when a point is named

    full = styles.resolve(settings).model_dump(mode="json", exclude={"out_dir"})
    base = styles.resolve(RunSettings()).model_dump(mode="json", exclude={"out_dir"})  # the defaults a run really has
    # Compared key by key at two levels, each value whole: a nested plan (a fault,
    # say) keeps every field, its discriminating ``kind`` included.
    data = {k: v for k, v in full.items() if k != "workload" and (k not in base or v != base[k])}
    workload = {k: v for k, v in full["workload"].items() if k not in base["workload"] or v != base["workload"][k]}
    if workload:
        data["workload"] = workload
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _slug_value(v: Any) -> str:
    if isinstance(v, float) and math.isfinite(v) and v == int(v):
        return str(int(v))
    if isinstance(v, (list, tuple)):
        return "+".join(str(x) for x in v)
    return str(v)


@dataclass(frozen=True)
class Point:
    """One run of a campaign: its settings, the values that name it, a stable id.

    ``name`` names the run's folder when given (``labkit decide``: the variant
    and its consumers); otherwise the folder is named by the swept ``params``.
    """

    experiment: str
    params: dict[str, Any]
    settings: RunSettings
    point_id: str
    name: str = ""

    @property
    def run_id(self) -> str:
        """The point's folder: a readable name, then the id."""
        if self.name:
            return f"{self.name}-{self.point_id}"
        slug = "_".join(f"{k}-{_slug_value(v)}" for k, v in self.params.items())
        slug = re.sub(r"[^A-Za-z0-9_.=-]+", "", slug)[:60].strip("_.-")
        return f"{slug}-{self.point_id}" if slug else self.point_id


@dataclass(frozen=True)
class PointOutcome:
    """What the campaign did with one point: ran it, or found it done."""

    point: Point
    run_id: str
    results_dir: Path
    skipped: bool
    elapsed_s: float = 0.0  # wall time of the run (0 when skipped)


def completed_points(folder: Path) -> dict[str, Path]:
    """Point id -> run folder for every finished point under ``folder``.

    A damaged or unknown-version summary stops the campaign with a ``ResultsError``
    naming the file: skipping or overwriting it silently could lose a result.
    """
    done: dict[str, Path] = {}
    if not folder.is_dir():
        return done
    for path in sorted(folder.glob(f"*/{SUMMARY}")):
        try:
            summary = read_summary(path)
        except ResultsError as exc:
            raise ResultsError(f"{exc}; delete that point's folder to run it again") from None
        pid = summary.get("point")
        # Two folders for one point (an older layout, a copy): the newest wins.
        if isinstance(pid, str) and (pid not in done or path.stat().st_mtime > (done[pid] / SUMMARY).stat().st_mtime):
            done[pid] = path.parent
    return done


def run_point(point: Point, folder: Path, *, progress: Progress = _quiet) -> Path:
    """Run one point with the pipeline; its results go to <folder>/<run-id>/."""
    from labkit.lab import pipeline

    out = folder / point.run_id
    pipeline.run(
        point.settings,
        progress=progress,
        run_id=point.run_id,
        results_dir=out,
        extra={"experiment": point.experiment, "point": point.point_id, "params": point.params},
    )
    return out


def retire(run_dir: Path) -> None:
    """An older folder of a point just rerun: drop its summary so the point has one result."""
    summary = run_dir / SUMMARY
    if summary.exists():
        os.replace(summary, run_dir / (SUMMARY + ".replaced"))


def run_points(
    points: Sequence[Point],
    folder: Path,
    *,
    phase: str,
    describe: Callable[[Point], str],
    force: bool = False,
    progress: Progress = _quiet,
    log: Log = _quiet,
    then: Callable[[PointOutcome], Sequence[Point]] | None = None,
) -> list[PointOutcome]:
    """Run every point not already under ``folder`` (all with ``force``); one line per point through ``log``.

    ``then(outcome)``, when given, hears of each point as soon as it is done and
    returns the points still to run, in place of the rest of the list: a campaign
    on a time budget re-plans what is left from the time really left.
    """
    done = completed_points(folder)
    todo = list(points)
    total = len(todo)
    outcomes: list[PointOutcome] = []
    progress(phase, 0, total)
    i = 0
    while todo:
        point = todo.pop(0)
        i += 1
        label = describe(point) or point.point_id
        if point.point_id in done and not force:
            outcomes.append(PointOutcome(point, done[point.point_id].name, done[point.point_id], skipped=True))
            log(f"[{i}/{total}] {label}: already done, skipped")
        else:
            log(f"[{i}/{total}] {label}: running")
            started = time.monotonic()
            out = run_point(point, folder, progress=progress)
            elapsed = time.monotonic() - started
            old = done.get(point.point_id)
            if old is not None and old.resolve() != out.resolve():
                retire(old)
            done[point.point_id] = out
            outcomes.append(PointOutcome(point, out.name, out, skipped=False, elapsed_s=elapsed))
        if then is not None:
            todo = list(then(outcomes[-1]))
            total = i + len(todo)
        progress(phase, i, total)
    return outcomes
