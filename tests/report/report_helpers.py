"""Paths and stand-ins the report tests share (imported by name: tests/ is not a package)."""

from __future__ import annotations

import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "report"
COMPARE_RUN = FIXTURES / "compare" / "20250301T120000000000Z-s1"
SWEEP = FIXTURES / "sweep"
GOLDEN = FIXTURES / "golden"
REQUIREMENTS = ROOT / "scenarios" / "requirements"
EXAMPLES = ("payments-provider", "mobile-app-behind-nat", "internal-batch-sync")
FIGURE_FUNCTIONS = ("latency_cdf", "summary_bars", "cost_vs_lambda_t", "empty_polls_vs_lambda_t", "latency_vs_interval", "cpu_vs_consumers")


def _line_figure(*_args, **_kwargs):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3))
    ax = fig.add_subplot()
    ax.plot([0, 1, 2], [0, 1, 4], marker="o")
    ax.set_title("stand-in figure")
    return fig


def stand_in_figures(*, missing: tuple[str, ...] = (), failing: tuple[str, ...] = ()) -> types.ModuleType:
    """A ``labkit.figures`` with every report figure, some left out or raising on purpose."""
    mod = types.ModuleType("labkit.figures")
    for name in FIGURE_FUNCTIONS:
        if name in missing:
            continue
        if name in failing:

            def boom(*_a, _name=name, **_k):
                raise ValueError(f"{_name} cannot draw this")

            setattr(mod, name, boom)
        else:
            setattr(mod, name, _line_figure)
    return mod
