"""Issue 16, item 13: an exact fit (as many runs as costs) is neither drawn as a model nor quoted with its R^2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest
from matplotlib.figure import Figure

from labkit import figures
from labkit.analysis.calibration import fit_costs
from labkit.results.layout import load_results

matplotlib.use("Agg")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "report"
ONE_RUN = FIXTURES / "compare" / "20250301T120000000000Z-s1"
SWEEP = FIXTURES / "sweep" / "wasted-polls"


def labels(fig: Figure) -> list[str]:
    return [line.get_label() for ax in fig.axes for line in ax.get_lines()]


def texts(fig: Figure) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_one_run_draws_the_measured_points_and_says_what_would_calibrate() -> None:
    df = load_results(ONE_RUN)
    assert all(f.exact for fits in fit_costs(df).fits.values() for f in fits.values())
    fig = figures.cpu_vs_consumers(df)
    assert not [label for label in labels(fig) if label.startswith("model") or "R^2" in label]
    assert "webhook: measured" in labels(fig) and "polling: measured" in labels(fig)
    note = " ".join(texts(fig).split())
    assert "exact fit" in note and "no model is drawn" in note and "cost-vs-consumers.toml" in note


def test_more_runs_than_costs_draw_the_calibrated_model() -> None:
    df = load_results(SWEEP)
    df["consumers"] = range(1, len(df) + 1)
    fits = [f for fs in fit_costs(df).fits.values() for f in fs.values()]
    if not any(not f.exact for f in fits):  # the fixture must hold a fit the figure can draw
        raise AssertionError("the sweep fixture gives only exact fits")
    fig = figures.cpu_vs_consumers(df)
    assert any(label.startswith("model (calibrated, R^2") for label in labels(fig))


def test_exact_is_in_the_calibration_dict() -> None:
    cal = fit_costs(load_results(ONE_RUN)).to_dict()
    assert all(fit["exact"] is True for fits in cal["fits"].values() for fit in fits.values())


@pytest.mark.slow  # renders a whole report with every figure in a subprocess
def test_the_report_does_not_quote_r2_of_an_exact_fit(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", "report", str(ONE_RUN), "-o", str(tmp_path / "rep")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "fits.webhook.provider_cpu_s.per_event" in md  # the calibration table is there
    assert ".r2`" not in md
