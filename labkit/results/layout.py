"""Where runs write, what they write, and how analysis reads it back.

Layout (paths relative to the results root, ``results/`` by default):

    <run-id>/summary.json          schema_version 1: workload, settings, environment, styles
    <run-id>/events.parquet        one row per (style, consumer, event): created_ns, received_ns, latency_us
    <experiment>/<run-id>/...      the same, for the runs of an experiment or sweep

Loading refuses an unknown ``schema_version``; reports and figures only read.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit._version import __version__
from labkit.errors import ResultsError
from labkit.wire import jsonsafe

if TYPE_CHECKING:  # pandas costs about a second to import; the command line's checks need none of it
    import pandas as pd

SCHEMA_VERSION = 1
SUMMARY = "summary.json"
EVENTS = "events.parquet"

_PACKAGES = (
    "fastapi",
    "uvicorn",
    "httpx",
    "starlette",
    "standardwebhooks",
    "locust",
    "pandas",
    "hdrhistogram",
    "orjson",
    "uvloop",
    "httptools",
)


def new_run_id(seed: int) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-s{seed}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """What a reader needs to reproduce or discount a number."""
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "labkit": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "packages": versions,
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(jsonsafe.dumps(data, indent=2, sort_keys=False, default=_jsonable))  # NaN/inf as null: strict JSON
    os.replace(tmp, path)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def read_versioned_json(path: Path, filename: str, what: str = "results file", missing: str = "") -> dict[str, Any]:
    """A JSON object of ours (``path`` or ``path/filename``), checked: readable, an object, a known schema_version."""
    path = Path(path)
    if path.is_dir():
        path = path / filename
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such {what}{missing}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: corrupted {what} ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: corrupted {what} (not a JSON object)")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ResultsError(f"{path}: unknown schema_version {version!r}; this labkit reads {SCHEMA_VERSION}")
    return data


# What schema_version 1 promises about a summary's top level: field -> (JSON type, required).
# Readers index into these without further checks, so a hand-edited or foreign file that breaks
# them must be refused here, with the field named, not fail later with an AttributeError.
_SUMMARY_FIELDS: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "run_id": (str, True),
    "workload": (dict, True),
    "styles": (dict, True),
    "settings": (dict, False),
    "environment": (dict, False),
    "params": (dict, False),
    "experiment": (str, False),
    "point": (str, False),
    "results_dir": (str, False),
}
_JSON_NAMES = {str: "a string", dict: "an object"}


def check_summary(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """Raise ResultsError naming the file and the first field that does not match schema_version 1."""
    for name, (kind, required) in _SUMMARY_FIELDS.items():
        if name not in data:
            if required:
                raise ResultsError(f"{path}: field {name!r} is missing (schema_version {SCHEMA_VERSION})")
            continue
        if not isinstance(data[name], kind):
            raise ResultsError(f"{path}: field {name!r} must be {_JSON_NAMES[kind]} (schema_version {SCHEMA_VERSION})")  # type: ignore[index]
    for style, value in data["styles"].items():
        if not isinstance(value, dict):
            raise ResultsError(f"{path}: field 'styles.{style}' must be an object (schema_version {SCHEMA_VERSION})")
    return data


def read_summary(path: Path) -> dict[str, Any]:
    """A summary.json, checked: readable, an object, a known schema_version, and that version's shape."""
    path = Path(path)
    data = read_versioned_json(path, SUMMARY)
    return check_summary(path / SUMMARY if path.is_dir() else path, data)


def summary_paths(path: Path) -> list[Path]:
    """Every summary.json at or below ``path``, in a stable order."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.exists():
        raise ResultsError(f"{path}: no such results directory")
    found = sorted(p for p in path.rglob(SUMMARY) if p.is_file())
    if not found:
        raise ResultsError(f"{path}: holds no {SUMMARY}")
    return found


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """{"latency_ms": {"p50": 1}} -> {"latency_ms.p50": 1}."""
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}{k}.", v, out)
    else:
        out[prefix[:-1]] = value


def _cell(value: Any) -> Any:
    """A list becomes a tuple, so a column of them can be grouped and compared."""
    return tuple(value) if isinstance(value, list) else value


def summary_rows(summary: dict[str, Any], source: Path | None = None) -> list[dict[str, Any]]:
    """One flat row per style: measured columns, and model columns prefixed ``model.``."""
    rows = []
    base: dict[str, Any] = {
        "run_id": summary.get("run_id"),
        "experiment": summary.get("experiment", "compare"),
        "point": summary.get("point", summary.get("run_id")),
        "results_dir": str(source.parent) if source else summary.get("results_dir"),
    }
    for k, v in (summary.get("workload") or {}).items():
        base[f"workload.{k}"] = v
    for k, v in (summary.get("params") or {}).items():
        base[f"param.{k}"] = _cell(v)
    for k, v in (summary.get("settings") or {}).items():
        if k != "workload":  # already in the workload.* columns
            base[f"settings.{k}"] = _cell(v)
    env = summary.get("environment") or {}
    for k in ("labkit", "python", "cpu_model", "cpu_count"):
        if k in env:
            base[f"env.{k}"] = env[k]
    for style, data in (summary.get("styles") or {}).items():
        row = dict(base, style=style)
        flat: dict[str, Any] = {}
        _flatten("", data, flat)
        row.update(flat)
        rows.append(row)
    return rows


def load_results(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A tidy DataFrame, one row per (run, style), measured and model columns side by side."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for p in summary_paths(Path(path)):
        rows.extend(summary_rows(read_summary(p), p))
    return pd.DataFrame(rows)


def load_events(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Per-event records of every run at or below ``path`` (style, consumer, event_id, latency_us, ...)."""
    import pandas as pd

    frames = []
    for p in summary_paths(Path(path)):
        summary = read_summary(p)
        ev = p.parent / EVENTS
        if not ev.exists():
            continue
        try:
            df = pd.read_parquet(ev)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise ResultsError(f"{ev}: corrupted events file ({exc.__class__.__name__})") from None
        df.insert(0, "run_id", summary.get("run_id"))
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["run_id", "style", "consumer", "event_id", "created_ns", "received_ns", "latency_us"])
    return pd.concat(frames, ignore_index=True)


def write_events(path: Path, rows: Iterable[tuple[str, str, int, int, int]]) -> None:
    import pandas as pd

    df = pd.DataFrame(list(rows), columns=["style", "consumer", "event_id", "created_ns", "received_ns"])
    df["latency_us"] = (df["received_ns"] - df["created_ns"]) / 1000.0
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)
