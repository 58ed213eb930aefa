"""Paths and stand-ins the report tests share."""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "report"
COMPARE_RUN = FIXTURES / "compare" / "20250301T120000000000Z-s1"
SWEEP = FIXTURES / "sweep"
STREAMS_RUN = FIXTURES / "streams" / "20250303T100000000000Z-s11"
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
    """A ``labkit.analysis.figures`` with every report figure, some left out or raising on purpose."""
    mod = types.ModuleType("labkit.analysis.figures")
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


class StandInStream:
    """Just enough of a stream style's unit for the report: its variant name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def variant(self, setting, assumes):  # type: ignore[no-untyped-def]
        return self.name

    def shows_interval(self) -> bool:
        return False


@contextlib.contextmanager
def stream_styles_registered() -> Iterator[None]:
    """Register stand-in `sse` and `websocket` styles (push, no public endpoint) when no module has registered them."""
    from labkit import styles
    from labkit.styles.registry import unregister

    added = []
    for name, label, colour in (("sse", "Server-Sent Events", "#2ca02c"), ("websocket", "WebSocket", "#9467bd")):
        if styles.get(name) is None:
            info = styles.StyleInfo(name, label, colour, "^", "push", False, "event id; resumes from its last id", order=30 + len(added))
            styles.register(info, StandInStream(label))
            added.append(name)
    try:
        yield
    finally:
        for name in added:
            unregister(name)
