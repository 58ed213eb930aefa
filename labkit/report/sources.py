"""What a report reads: the runs under the given paths, their tables, and how to reproduce them.

A report only reads results (``labkit.results.layout``); it never re-runs anything.
Everything it shows from a summary passes through ``redact`` first, so an API
key or a ``whsec_`` secret that found its way into a settings dump never
reaches the page.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from labkit.config import RunSettings
from labkit.errors import ResultsError
from labkit.report.observations import Observations, observations
from labkit.results import columns as cols
from labkit.results.layout import load_events, read_summary, summary_paths, summary_rows

_SECRET_KEY = re.compile(r"secret|api_?keys?$|token|password|passwd|authori[sz]ation|credential|private_key", re.I)
_SECRET_TEXT = (
    (re.compile(r"whsec_[A-Za-z0-9+/=_-]+"), "whsec_[redacted]"),
    (re.compile(r"(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [redacted]"),
)
REDACTED = "[redacted]"

# RunSettings fields `labkit compare` sets from its options, and the option that sets each.
COMPARE_OPTIONS = {
    cols.RATE: "--rate",
    "workload.duration_s": "--duration",
    "poll_interval_s": "--poll-interval",
    "workload.payload_bytes": "--payload-bytes",
    "workload.seed": "--seed",
    "workload.arrival": "--arrival",
    "pollers": "--pollers",
    "subscribers": "--subscribers",
    "drain_timeout_s": "--drain-timeout",
}
_NOT_A_CHOICE = {"out_dir", "experiment"}


def redact(value: Any) -> Any:
    """A copy of ``value`` with secret-looking keys blanked and secret-looking strings masked."""
    if isinstance(value, dict):
        return {k: (REDACTED if _SECRET_KEY.search(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_text(text: str) -> str:
    for pattern, repl in _SECRET_TEXT:
        text = pattern.sub(repl, text)
    return text


@dataclass(frozen=True)
class RunSource:
    """One run as the report's appendix shows it."""

    run_id: str
    experiment: str
    point: str | None
    results_dir: Path
    seed: Any
    settings: dict[str, Any]
    environment: dict[str, Any]
    command: str  # reruns it: `labkit compare ...`, or the sweep that made it
    single: str  # for a sweep's point: the same settings as one `labkit compare` run
    unflagged: str  # settings `labkit compare` has no option for (set them in an experiment file)


@dataclass(frozen=True)
class Sources:
    """Every run under the report's paths: the tables the decision and the figures read."""

    paths: tuple[Path, ...]
    runs: tuple[RunSource, ...]
    results: pd.DataFrame  # load_results rows, one per (run, style)
    events: pd.DataFrame | None
    events_error: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @cached_property
    def observations(self) -> Observations:
        """The results as typed observations, built once for the whole report."""
        return observations(self.results)

    @property
    def experiments(self) -> dict[str, list[RunSource]]:
        out: dict[str, list[RunSource]] = {}
        for r in self.runs:
            out.setdefault(r.experiment, []).append(r)
        return out


def load_sources(paths: Iterable[str | os.PathLike[str]]) -> Sources:
    """Read every summary at or below ``paths`` (each run once), its table rows and its events."""
    roots = tuple(Path(p) for p in paths)
    if not roots:
        raise ResultsError("no results given: name a results directory or a summary.json")
    seen: set[Path] = set()
    rows: list[dict[str, Any]] = []
    runs: list[RunSource] = []
    for root in roots:
        for sp in summary_paths(root):
            key = sp.resolve()
            if key in seen:
                continue
            seen.add(key)
            summary = read_summary(sp)
            for row in summary_rows(summary, sp):
                rows.append(_with_settings(row, summary))
            runs.append(_run_source(summary, sp.parent))
    results = pd.DataFrame(rows)
    if results.empty or "style" not in results.columns:
        raise ResultsError(f"{', '.join(map(str, roots))}: the summaries hold no measured style")
    events, error = _events(roots)
    results = with_order(results, events)
    runs.sort(key=lambda r: (r.experiment, str(r.point or ""), r.run_id))
    return Sources(paths=roots, runs=tuple(runs), results=results, events=events, events_error=error)


def _with_settings(row: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """The row with ``settings.*`` and ``env.*`` columns, where ``load_results`` does not add them already."""
    row = dict(row)
    for k, v in (summary.get("settings") or {}).items():
        if k != "workload" and not isinstance(v, dict):
            row.setdefault(f"settings.{k}", tuple(v) if isinstance(v, list) else v)
    env = summary.get("environment") or {}
    for k in ("labkit", "python", "cpu_model", "cpu_count"):
        if k in env:
            row.setdefault(f"env.{k}", env[k])
    return row


def _events(paths: tuple[Path, ...]) -> tuple[pd.DataFrame | None, str | None]:
    frames = []
    try:
        for p in paths:
            frames.append(load_events(p))
    except ResultsError as exc:  # a damaged events file costs a figure, not the report
        return None, str(exc)
    df = pd.concat(frames, ignore_index=True) if frames else None
    if df is not None and "run_id" in df.columns and "event_id" in df.columns:
        df = df.drop_duplicates(subset=[c for c in ("run_id", "style", "consumer", "event_id") if c in df.columns])
    return df, None


def with_order(results: pd.DataFrame, events: pd.DataFrame | None) -> pd.DataFrame:
    """``results`` with an ``out_of_order`` column per (run, style): events a consumer received after a later one of the log.

    Measured from the per-event records (received time, then event id, so one
    page of a poll is in order); left out where a run recorded no events.
    """
    need = {"run_id", "style", "consumer", "event_id", "received_ns"}
    if events is None or events.empty or not need <= set(events.columns):
        return results
    ev = events.sort_values(["run_id", "style", "consumer", "received_ns", "event_id"])
    seen_max = ev.groupby(["run_id", "style", "consumer"])["event_id"].cummax()
    earlier_max = seen_max.groupby([ev["run_id"], ev["style"], ev["consumer"]]).shift(1)
    late = (ev["event_id"] < earlier_max).groupby([ev["run_id"], ev["style"]]).sum()
    counts = {(str(r), str(s)): int(n) for (r, s), n in late.items()}
    out = results.copy()
    out[cols.OUT_OF_ORDER] = [counts.get((str(r), str(s))) for r, s in zip(out["run_id"], out["style"], strict=True)]
    return out


def _run_source(summary: dict[str, Any], run_dir: Path) -> RunSource:
    settings = redact(summary.get("settings") or {})
    workload = summary.get("workload") or {}
    experiment = str(summary.get("experiment") or settings.get("experiment") or "compare")
    single, unflagged = compare_command(settings)
    command = f"labkit sweep scenarios/experiments/{experiment}.toml --force" if experiment != "compare" else single
    if experiment == "decide":  # made by `labkit decide` from a requirements file, not by a sweep
        command = "labkit decide REQUIREMENTS.toml --force"
    return RunSource(
        run_id=str(summary.get("run_id")),
        experiment=experiment,
        point=summary.get("point"),
        results_dir=run_dir,
        seed=workload.get("seed", (settings.get("workload") or {}).get("seed")),
        settings=settings,
        environment=redact(summary.get("environment") or {}),
        command=command,
        single=single if experiment != "compare" else "",
        unflagged=unflagged,
    )


def _arg(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def compare_command(settings: dict[str, Any]) -> tuple[str, str]:
    """``labkit compare`` with the run's options, and the settings it has no option for."""
    from labkit import styles  # the style modules load the servers' code: only when a command is written

    defaults = styles.resolve(RunSettings()).model_dump(mode="json")
    parts = ["labkit compare"]
    for key, option in COMPARE_OPTIONS.items():
        value = _dig(settings, key)
        if value is not None:
            parts.append(f"{option} {_arg(value)}")
    extra = []
    for key, default in defaults.items():
        if key == "workload" or key in _NOT_A_CHOICE or key in COMPARE_OPTIONS:
            continue
        if key in settings and settings[key] != default and settings[key] != REDACTED:
            extra.append(f"{key} = {settings[key]!r}")
    for key, default in (defaults.get("workload") or {}).items():
        wkey = f"workload.{key}"
        value = _dig(settings, wkey)
        if wkey not in COMPARE_OPTIONS and value is not None and value != default and value != REDACTED:
            extra.append(f"{wkey} = {value!r}")
    return " ".join(parts), ", ".join(extra)


def _dig(data: dict[str, Any], dotted: str) -> Any:
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
