"""Shared pieces of labkit's figures: colours and markers from the style registry, axes, columns.

``labkit.analysis.figures`` builds every figure from these; a figure module of its
own (capacity, bench) may use them too.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from labkit import model, styles
from labkit.results import columns as cols
from labkit.styles import Family

# Each registered style's colour and marker (labkit.styles); kept as mappings for callers that read them.
STYLE_COLORS = {s.name: s.colour for s in styles.all_styles()}
STYLE_MARKERS = {s.name: s.marker for s in styles.all_styles()}
MODEL_STYLE: dict[str, Any] = {"linestyle": "--", "linewidth": 1.6, "alpha": 0.9}
OTHER_COLORS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def style_color(style: str, i: int = 0) -> str:
    info = styles.get(style)
    return info.colour if info is not None else OTHER_COLORS[i % len(OTHER_COLORS)]


def style_marker(style: str) -> str:
    info = styles.get(style)
    return info.marker if info is not None else "D"


def paced_by_interval(style: str) -> bool:
    """True for a style whose latency the poll interval bounds (its model line is T/2 + RTT)."""
    return styles.get(style) is not None and styles.unit(style).shows_interval()


def style_look(style: str) -> dict[str, Any]:
    """A style's colour and marker as keyword arguments of ``plot``."""
    return {"color": style_color(style), "marker": style_marker(style)}


def family_style(family: Family) -> str:
    """The registered style a figure about one family draws: the first of ``family`` in display order."""
    return styles.styles_of(family)[0]


def new_figure(ncols: int = 1, width: float = 7.0, height: float = 4.5) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    for ax in axes:
        ax.grid(True, which="major", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    return fig, axes


def column(df: pd.DataFrame, *names: str) -> pd.Series:
    """The first of ``names`` that the frame has, as floats (NaN where missing)."""
    for name in names:
        if name in df.columns:
            return pd.to_numeric(df[name], errors="coerce")
    return pd.Series(np.nan, index=df.index, dtype=float)


def style_rows(df: pd.DataFrame, style: str) -> pd.DataFrame:
    return df[df["style"] == style] if "style" in df.columns else df.iloc[0:0]


def styles_in(df: pd.DataFrame) -> list[str]:
    order = list(styles.names())
    present = list(dict.fromkeys(df["style"])) if "style" in df.columns else []
    return [s for s in order if s in present] + [s for s in present if s not in order]


def no_data(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")


def plain_number(x: float, _pos: Any = None) -> str:
    return f"{x:g}"


def log_axis(axis: Axis) -> None:
    """A log axis labelled 1, 2, 5, 10, 20, ... in plain numbers (no 6 x 10^2)."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(plain_number))
    axis.set_minor_formatter(NullFormatter())


def legend_below(ax: Axes, ncol: int = 2) -> None:
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=ncol, fontsize="small", frameon=False)


def logspace_around(values: pd.Series, extra: tuple[float, ...] = (), pad: float = 3.0) -> np.ndarray:
    v = [float(x) for x in values.dropna() if x > 0] + [x for x in extra if x > 0]
    lo, hi = (min(v) / pad, max(v) * pad) if v else (0.01, 100.0)
    return np.logspace(math.log10(lo), math.log10(hi), 200)


def lambda_t_of(df: pd.DataFrame, realised: bool = False) -> pd.Series:
    """lambda T as declared, or as realised: events published / duration x T (a Poisson count varies)."""
    interval = column(df, "settings.poll_interval_s", "poll_interval_s")
    if realised:
        lt = column(df, "workload.events") / column(df, "workload.duration_s") * interval
        if lt.notna().all():
            return lt
    lt = column(df, cols.LAMBDA_T)
    if lt.isna().all():
        lt = column(df, cols.RATE) * interval
    return lt


def batch_of(df: pd.DataFrame) -> int:
    b = column(df, "settings.batch_max_events").dropna()
    return int(b.median()) if len(b) else 1


def cost_model_curves(
    df: pd.DataFrame, metric: str, grid: np.ndarray, batch: int
) -> tuple[float | None, dict[str, tuple[np.ndarray, str]]]:
    """The model's cost curves per style present (requests, or calibrated bytes) and the crossover lambda T."""
    present = styles_in(df)
    curves: dict[str, tuple[np.ndarray, str]] = {}
    if metric == "requests_per_event":
        for name in present:
            curve = styles.unit(name).model_requests_per_event(grid, batch) if styles.get(name) is not None else None
            if curve is not None:
                curves[name] = (np.asarray(curve[0], dtype=float), curve[1])
        return model.crossover_lambda_t(batch), curves
    from labkit.analysis.calibration import fit_costs
    from labkit.errors import ResultsError

    try:
        cal = fit_costs(df, per_run=False)
    except ResultsError:
        return None, curves
    pull_style, push_style = family_style("pull"), family_style("push")
    poll = cal.fits.get(pull_style, {}).get("bytes")
    push = cal.fits.get(push_style, {}).get("bytes")
    if poll is not None:
        curves[pull_style] = (
            np.array([model.polling_bytes_per_event(x, 1.0, poll.per_request, poll.per_event) for x in grid]),
            f"model (calibrated): {pull_style} {poll.per_request:.0f} B/(lambda T) + {poll.per_event:.0f} B",
        )
    if push is not None:
        curves[push_style] = (
            np.full_like(grid, model.push_bytes_per_event(push.per_request, push.per_event, batch=batch)),
            f"model (calibrated): push {model.push_bytes_per_event(push.per_request, push.per_event, batch=batch):.0f} B",
        )
    if poll is None or push is None:
        return None, curves
    return model.bytes_crossover_lambda_t(poll.per_request, poll.per_event, push.per_request, push.per_event, batch=batch), curves
