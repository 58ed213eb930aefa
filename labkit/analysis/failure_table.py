"""The failure experiment's results as one table and one JSON document (reads results, never runs).

Each fault is a point of the experiment (``results/failures/<run-id>/summary.json``)
whose styles carry a ``fault`` block; ``load_results`` flattens it into
``fault.*`` columns. This module picks the columns a reader compares.
"""

from __future__ import annotations

import math
import os
from typing import Any

import pandas as pd

from labkit.results import columns as cols
from labkit.results.layout import read_summary, summary_paths

# (column in the table, key in a style's fault block or summary)
HEADLINE: tuple[tuple[str, str], ...] = (
    ("published", "fault.published"),
    ("delivered", "fault.delivered"),
    ("lost", "fault.lost"),
    ("loss_ok", "fault.loss_ok"),
    ("duplicates_seen", "fault.duplicates_seen"),
    ("duplicates_processed", "fault.duplicates_processed"),
    ("retries", "fault.retries"),
    ("retry_delay_added_ms", "fault.retry_delay_added_ms"),
    ("dead_lettered", "fault.dead_lettered"),
    ("disabled", "fault.disabled"),
    ("outage_s", "fault.outage_s"),
    ("catch_up_s", "fault.catch_up_s"),
    ("latency_p50_ms", cols.LATENCY_P50),
    ("latency_p99_ms", cols.LATENCY_P99),
    ("latency_max_ms", cols.LATENCY_MAX),
    # over the workload window, as in every run (labkit compare, labkit sweep)
    ("requests_per_event", "requests_per_event"),
    ("empty_poll_ratio", "empty_poll_ratio"),
)


def _get(data: dict[str, Any], dotted: str) -> Any:
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def fault_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """One row per (fault, style) of every failure run at or below ``path``."""
    rows: list[dict[str, Any]] = []
    for p in summary_paths(path):  # type: ignore[arg-type]
        summary = read_summary(p)
        for style, data in (summary.get("styles") or {}).items():
            block = data.get("fault")
            if not isinstance(block, dict):
                continue
            params = summary.get("params") or {}
            row: dict[str, Any] = {
                "fault": params.get("variant") or block.get("kind"),
                "kind": block.get("kind"),
                "description": block.get("description"),
                "style": style,
                "run_id": summary.get("run_id"),
                "results_dir": str(p.parent),
            }
            for column, key in HEADLINE:
                row[column] = _get(data, key)
            row["episodes"] = block.get("episodes", [])
            if "network" in block:
                row["network"] = block["network"]
            rows.append(row)
    return rows


def fault_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """``fault_rows`` as a DataFrame, in the order the runs were written."""
    rows = fault_rows(path)
    return pd.DataFrame(rows, columns=None if rows else ["fault", "kind", "style"])


def fault_document(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """{fault: {kind, description, results_dir, styles: {style: headline numbers and episodes}}}."""
    out: dict[str, dict[str, Any]] = {}
    for row in fault_rows(path):
        entry = out.setdefault(
            row["fault"],
            {
                "kind": row["kind"],
                "description": row["description"],
                "run_id": row["run_id"],
                "results_dir": row["results_dir"],
                "styles": {},
            },
        )
        entry["styles"][row["style"]] = {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in row.items()
            if k not in ("fault", "kind", "description", "run_id", "results_dir", "style")
        }
    return out
