"""Issue 16, item 12: the report counts the endpoints a provider disabled (410 or the disable policy)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from labkit.report.render import measurement_rows
from labkit.report.sources import load_sources
from tests.helpers.report import COMPARE_RUN


def _cell(rows: list[dict], style: str, heading: str) -> str:
    row = next(r for r in rows if r["style"] == style)
    return next(c["measured"] for c in row["cells"] if c["heading"] == heading)


def test_the_measurements_table_counts_disabled_endpoints(tmp_path: Path) -> None:
    run = tmp_path / COMPARE_RUN.name
    shutil.copytree(COMPARE_RUN, run)
    summary = json.loads((run / "summary.json").read_text())
    summary["styles"]["webhook"]["disabled_endpoints"] = 2
    (run / "summary.json").write_text(json.dumps(summary))
    rows = measurement_rows(load_sources([run]))
    assert _cell(rows, "webhook", "endpoints disabled") == "2"
