"""Figures shared by notebooks and reports: measurements beside the model.

Each function takes DataFrames from ``load_results`` / ``load_events`` and
returns a ``matplotlib.figure.Figure`` built without pyplot (no global state,
safe under the Agg backend and in threads). Measurements are drawn as markers
and solid lines; the closed-form model as dashed lines whose labels begin
with "model", so a reader never takes a formula for a measurement.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from labkit import model

STYLE_COLORS = {"webhook": "#1f77b4", "polling": "#d62728"}
STYLE_MARKERS = {"webhook": "o", "polling": "s"}
MODEL_STYLE = {"linestyle": "--", "linewidth": 1.6, "alpha": 0.9}
_OTHER_COLORS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def _color(style: str, i: int = 0) -> str:
    return STYLE_COLORS.get(style, _OTHER_COLORS[i % len(_OTHER_COLORS)])


def _new(ncols: int = 1, width: float = 7.0, height: float = 4.5) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    for ax in axes:
        ax.grid(True, which="major", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    return fig, axes


def _col(df: pd.DataFrame, *names: str) -> pd.Series:
    """The first of ``names`` that the frame has, as floats (NaN where missing)."""
    for name in names:
        if name in df.columns:
            return pd.to_numeric(df[name], errors="coerce")
    return pd.Series(np.nan, index=df.index, dtype=float)


def _style_rows(df: pd.DataFrame, style: str) -> pd.DataFrame:
    return df[df["style"] == style] if "style" in df.columns else df.iloc[0:0]


def _styles(df: pd.DataFrame) -> list[str]:
    order = ["webhook", "polling"]
    present = list(dict.fromkeys(df["style"])) if "style" in df.columns else []
    return [s for s in order if s in present] + [s for s in present if s not in order]


def _no_data(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _plain_number(x: float, _pos: Any = None) -> str:
    return f"{x:g}"


def _logspace_around(values: pd.Series, extra: tuple[float, ...] = (), pad: float = 3.0) -> np.ndarray:
    v = [float(x) for x in values.dropna() if x > 0] + [x for x in extra if x > 0]
    lo, hi = (min(v) / pad, max(v) * pad) if v else (0.01, 100.0)
    return np.logspace(math.log10(lo), math.log10(hi), 200)


def _lambda_t(df: pd.DataFrame) -> pd.Series:
    lt = _col(df, "workload.lambda_t")
    if lt.isna().all():
        lt = _col(df, "workload.rate_per_s") * _col(df, "poll_interval_s", "settings.poll_interval_s")
    return lt


def _batch(df: pd.DataFrame) -> int:
    b = _col(df, "settings.batch_max_events").dropna()
    return int(b.median()) if len(b) else 1


# -- latency ------------------------------------------------------------------


def latency_cdf(events_df: pd.DataFrame, *, poll_interval_s: float | None = None, rtt_ms: float = 0.0) -> Figure:
    """Per-style distribution of event latency (created -> processed), on a log axis.

    With ``poll_interval_s`` the model's polling delay, uniform on
    [RTT, T + RTT], is drawn dashed beside the measured curve.
    """
    fig, (ax,) = _new()
    if events_df.empty:
        _no_data(ax, "no events")
        return fig
    df = events_df.assign(latency_ms=events_df["latency_us"] / 1000.0)
    by_run = "run_id" in df.columns and df["run_id"].nunique() > 1
    keys = ["run_id", "style"] if by_run else ["style"]
    for i, (key, part) in enumerate(df.groupby(keys, sort=False)):
        style = key[-1] if isinstance(key, tuple) else key
        lat = np.sort(part["latency_ms"].to_numpy())
        y = np.arange(1, len(lat) + 1) / len(lat)
        p50, p99 = np.percentile(lat, [50, 99])
        name = f"{key[0]} {style}" if by_run else str(style)
        ax.step(lat, y, where="post", color=_color(str(style), i), linewidth=2, label=f"{name} (p50 {p50:.3g} ms, p99 {p99:.3g} ms)")
    if poll_interval_s:
        t_ms = poll_interval_s * 1000.0
        x = np.linspace(max(rtt_ms, t_ms * 1e-3), t_ms + rtt_ms, 300)
        ax.plot(x, np.clip((x - rtt_ms) / t_ms, 0, 1), color=_color("polling"), **MODEL_STYLE, label=f"model: polling delay uniform on [0, T] + RTT (T = {poll_interval_s:g} s)")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(_plain_number))
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("latency: created at the provider -> processed by the consumer (ms, log scale)")
    ax.set_ylabel("share of events at or below")
    ax.set_title("Latency distribution per delivery style")
    ax.legend(loc="lower right", fontsize="small")
    return fig


def summary_bars(results_df: pd.DataFrame) -> Figure:
    """One compare run: latency p50 and p99, requests and bytes per event, per style, model dashed."""
    fig, axes = _new(ncols=4, width=13.0, height=4.2)
    if results_df.empty:
        for ax in axes:
            _no_data(ax, "no results")
        return fig
    run = results_df["run_id"].iloc[0] if "run_id" in results_df.columns else None
    df = results_df[results_df["run_id"] == run] if run is not None else results_df
    styles = _styles(df)
    panels = [
        ("latency p50 (ms)", "latency_ms.p50", ("model.latency_p50_ms", "model.latency_mean_ms"), True),
        ("latency p99 (ms)", "latency_ms.p99", ("model.latency_p99_ms",), True),
        ("requests per event per consumer", "requests_per_event", ("model.requests_per_event",), False),
        ("bytes per event per consumer", "bytes_per_event", ("model.bytes_per_event",), False),
    ]
    model_labelled = False
    for ax, (title, column, model_cols, log) in zip(axes, panels):
        for i, style in enumerate(styles):
            row = _style_rows(df, style)
            value = float(_col(row, column).iloc[0])
            if math.isnan(value):
                continue
            ax.bar(i, value, color=_color(style, i), width=0.6, label=style)
            ax.annotate(f"{value:.3g}", (i, value), ha="center", va="bottom", fontsize="small", xytext=(0, 2), textcoords="offset points")
            predicted = _first_value(row, model_cols)
            if not math.isnan(predicted):
                ax.plot([i - 0.4, i + 0.4], [predicted, predicted], color="black", **MODEL_STYLE, label="_nolegend_" if model_labelled else "model")
                model_labelled = True
        ax.set_xticks(range(len(styles)), styles)
        ax.set_title(title, fontsize="medium")
        if log:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(_plain_number))
        else:
            ax.set_ylim(bottom=0)
    lt = float(_lambda_t(df).iloc[0])
    title = "Push against poll, one run"
    if run is not None and not math.isnan(lt):
        events = _col(df, "workload.events").iloc[0]
        title = f"Run {run}: {events:.0f} events at {_col(df, 'workload.rate_per_s').iloc[0]:g}/s, lambda T = {lt:.3g}"
    fig.suptitle(title, fontsize="large")
    handles = [h for ax in axes for h in ax.get_legend_handles_labels()[0]]
    labels = [label for ax in axes for label in ax.get_legend_handles_labels()[1]]
    unique = dict(zip(labels, handles))
    axes[0].legend(unique.values(), unique.keys(), loc="upper left", fontsize="small")
    return fig


def _first_value(row: pd.DataFrame, columns: tuple[str, ...]) -> float:
    """The first of ``columns`` with a number in this one-row frame, else NaN."""
    for c in columns:
        if c in row.columns:
            value = pd.to_numeric(row[c], errors="coerce").iloc[0]
            if not pd.isna(value):
                return float(value)
    return math.nan


def latency_vs_interval(results_df: pd.DataFrame) -> Figure:
    """Polling latency (mean, p99) against the poll interval T, with T/2 + RTT and 0.99 T + RTT dashed."""
    fig, (ax,) = _new()
    poll = _style_rows(results_df, "polling")
    if poll.empty:
        _no_data(ax, "no polling runs")
        return fig
    t = _col(poll, "poll_interval_s", "settings.poll_interval_s")
    rtt_ms = float(np.nanmedian(_col(poll, "rtt_ms.mean"))) if _col(poll, "rtt_ms.mean").notna().any() else 0.0
    c = _color("polling")
    ax.plot(t, _col(poll, "latency_ms.mean"), marker="s", linestyle="none", color=c, markersize=7, label="polling: measured mean")
    ax.plot(t, _col(poll, "latency_ms.p99"), marker="^", linestyle="none", color=c, markersize=7, alpha=0.6, label="polling: measured p99")
    grid = _logspace_around(t, pad=1.5)
    ax.plot(grid, (grid / 2) * 1000 + rtt_ms, color=c, **MODEL_STYLE, label=f"model: mean T/2 + RTT (RTT {rtt_ms:.2g} ms)")
    ax.plot(grid, 0.99 * grid * 1000 + rtt_ms, color=c, linestyle=":", linewidth=1.4, label="model: p99 0.99 T + RTT")
    web = _style_rows(results_df, "webhook")
    if not web.empty:
        wt = _col(web, "settings.poll_interval_s", "poll_interval_s")
        if wt.isna().all():
            wt = pd.Series(np.nanmedian(t), index=web.index)
        ax.plot(wt, _col(web, "latency_ms.mean"), marker="o", linestyle="none", color=_color("webhook"), markersize=7, label="webhook: measured mean (T does not apply)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(_plain_number))
    ax.set_xlabel("poll interval T (s, log scale)")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title("Polling latency grows with the poll interval; push does not")
    ax.legend(fontsize="small")
    return fig


# -- cost against lambda T ----------------------------------------------------------


def cost_vs_lambda_t(results_df: pd.DataFrame, metric: str = "requests_per_event") -> Figure:
    """Requests or bytes per event per consumer against lambda T, each style with its model curve.

    Requests: polling 1/(lambda T) (plus extra pages), push 1/B; they cross at
    lambda T = 1/B. Bytes: the calibrated cost model fitted on these runs
    (``labkit.calibration``), crossing where the fitted costs are equal.
    """
    if metric not in ("requests_per_event", "bytes_per_event"):
        raise ValueError("metric is 'requests_per_event' or 'bytes_per_event'")
    fig, (ax,) = _new(width=7.5)
    if results_df.empty:
        _no_data(ax, "no results")
        return fig
    df = results_df.assign(_lt=_lambda_t(results_df), _y=_col(results_df, metric))
    batch = _batch(df)
    grid = _logspace_around(df["_lt"], extra=(1.0 / batch,))
    for i, style in enumerate(_styles(df)):
        part = df[df["style"] == style].dropna(subset=["_lt", "_y"]).sort_values("_lt")
        if part.empty:
            continue
        mean = part.groupby("_lt")["_y"].mean()
        ax.plot(mean.index, mean.to_numpy(), color=_color(style, i), linewidth=1.2, alpha=0.6)
        ax.plot(part["_lt"], part["_y"], marker=STYLE_MARKERS.get(style, "D"), linestyle="none", color=_color(style, i), markersize=7, label=f"{style}: measured")
    crossover, curves = _cost_models(df, metric, grid, batch)
    for style, (y, label) in curves.items():
        ax.plot(grid, y, color=_color(style), **MODEL_STYLE, label=label)
    if crossover is not None and math.isfinite(crossover):
        name = "1/B" if metric == "requests_per_event" else "equal bytes"
        ax.axvline(crossover, color="0.3", linestyle=":", linewidth=1.2, label=f"model crossover: lambda T = {crossover:.3g} ({name})")
        ax.annotate("push cheaper", (crossover, 0.97), xycoords=("data", "axes fraction"), xytext=(6, 0), textcoords="offset points", ha="left", va="top", fontsize="small", color="0.3")
        ax.annotate("polling cheaper", (crossover, 0.90), xycoords=("data", "axes fraction"), xytext=(-6, 0), textcoords="offset points", ha="right", va="top", fontsize="small", color="0.3")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(_plain_number))
    what = "requests" if metric == "requests_per_event" else "bytes"
    ax.set_xlabel("lambda T: events per poll interval (log scale)")
    ax.set_ylabel(f"{what} per event per consumer (log scale)")
    ax.set_title(f"{what.capitalize()} per event: polling against push")
    ax.legend(fontsize="small", loc="lower left")
    return fig


def _cost_models(df: pd.DataFrame, metric: str, grid: np.ndarray, batch: int) -> tuple[float | None, dict[str, tuple[np.ndarray, str]]]:
    styles = set(df["style"])
    curves: dict[str, tuple[np.ndarray, str]] = {}
    if metric == "requests_per_event":
        if "polling" in styles:
            curves["polling"] = (np.array([model.polling_requests_per_event(x, 1.0, 100) for x in grid]), "model: polling 1/(lambda T)")
        if "webhook" in styles:
            curves["webhook"] = (np.full_like(grid, model.push_requests_per_event(batch)), f"model: push 1/B (B = {batch})")
        return model.crossover_lambda_t(batch), curves
    from labkit.calibration import fit_costs
    from labkit.errors import ResultsError

    try:
        cal = fit_costs(df, per_run=False)
    except ResultsError:
        return None, curves
    poll = cal.fits.get("polling", {}).get("bytes")
    push = cal.fits.get("webhook", {}).get("bytes")
    if poll is not None:
        curves["polling"] = (
            np.array([model.polling_bytes_per_event(x, 1.0, poll.per_request, poll.per_event) for x in grid]),
            f"model (calibrated): polling {poll.per_request:.0f} B/(lambda T) + {poll.per_event:.0f} B",
        )
    if push is not None:
        curves["webhook"] = (
            np.full_like(grid, model.push_bytes_per_event(push.per_request, push.per_event, batch=batch)),
            f"model (calibrated): push {model.push_bytes_per_event(push.per_request, push.per_event, batch=batch):.0f} B",
        )
    if poll is None or push is None:
        return None, curves
    return model.bytes_crossover_lambda_t(poll.per_request, poll.per_event, push.per_request, push.per_event, batch=batch), curves


def empty_polls_vs_lambda_t(results_df: pd.DataFrame) -> Figure:
    """Share of empty polls against lambda T, with e^(-lambda T) and Zapier's 98.5 % marked."""
    fig, (ax,) = _new(width=7.5)
    zapier_lt = model.lambda_t_for_wasted_ratio(model.zapier_wasted_ratio())
    poll = _style_rows(results_df, "polling")
    lt = _lambda_t(poll)
    ratio = _col(poll, "empty_poll_ratio")
    grid = _logspace_around(lt, extra=(zapier_lt,), pad=2.0)
    ax.plot(grid, np.exp(-grid), color="black", **MODEL_STYLE, label="model: e^(-lambda T) (Poisson arrivals)")
    if not poll.empty and ratio.notna().any():
        polls = _col(poll, "polls")
        err = np.sqrt(ratio * (1 - ratio) / polls.where(polls > 0))
        ax.errorbar(lt, ratio, yerr=err, marker="s", linestyle="none", color=_color("polling"), markersize=7, capsize=3, label="measured (bars: one standard error)")
        for x, y in zip(lt, ratio):
            if not (math.isnan(x) or math.isnan(y)):
                ax.annotate(f"{y:.1%}\nmodel {math.exp(-x):.1%}", (x, y), xytext=(8, 4), textcoords="offset points", fontsize="x-small", color="0.25")
    else:
        _no_data(ax, "no polling runs: model only")
    zapier = model.zapier_wasted_ratio()
    ax.plot([zapier_lt], [zapier], marker="*", markersize=14, color="#ff7f0e", linestyle="none", label=f"Zapier: {zapier:.1%} of polls empty (lambda T = {zapier_lt:.3f})")
    ax.axvline(1.0, color="0.5", linestyle=":", linewidth=1, label=f"lambda T = 1: {math.exp(-1):.1%} empty")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(_plain_number))
    ax.set_ylim(-0.02, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("lambda T: events per poll interval (log scale)")
    ax.set_ylabel("polls that found nothing new")
    ax.set_title("Wasted polls against the event rate")
    ax.legend(fontsize="small", loc="lower left")
    return fig


# -- CPU and snapshots ------------------------------------------------------------


def cpu_vs_consumers(results_df: pd.DataFrame) -> Figure:
    """Provider and consumer CPU per delivered event against the number of consumers (start-up excluded)."""
    fig, axes = _new(ncols=2, width=12.0)
    sides = (("provider", "provider_cpu_s", "provider_cpu_start_s"), ("consumer", "consumer_cpu_s", "consumer_cpu_start_s"))
    if results_df.empty:
        for ax in axes:
            _no_data(ax, "no results")
        return fig
    from labkit.calibration import fit_costs
    from labkit.errors import ResultsError

    try:
        cal = fit_costs(results_df)
    except ResultsError:
        cal = None
    for ax, (side, col, start) in zip(axes, sides):
        for i, style in enumerate(_styles(results_df)):
            part = _style_rows(results_df, style)
            n = _col(part, "consumers")
            delivered = _col(part, "delivered")
            cpu = _col(part, col) - _col(part, start).fillna(0.0)
            y = cpu / delivered.where(delivered > 0) * 1000.0
            order = np.argsort(n.to_numpy())
            ax.plot(n.to_numpy()[order], y.to_numpy()[order], marker=STYLE_MARKERS.get(style, "D"), color=_color(style, i), markersize=7, label=f"{style}: measured")
            fit = cal.fits.get(style, {}).get(f"{side}_cpu_s") if cal else None
            if fit is not None and n.notna().any():
                grid = _logspace_around(n, pad=1.5)
                per_consumer = float(np.nanmedian(delivered / n))
                rpe = float(np.nanmedian(_col(part, "requests") / delivered))
                model_y = (fit.per_request * rpe + fit.per_event + fit.per_run / (grid * per_consumer)) * 1000.0
                ax.plot(grid, model_y, color=_color(style, i), **MODEL_STYLE, label=f"model (calibrated, R^2 {fit.r2:.2f}): {style}")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(_plain_number))
        ax.set_ylim(bottom=0)
        ax.set_xlabel("consumers (pollers or subscribers, log scale)")
        ax.set_ylabel(f"{side} CPU per delivered event (ms)")
        ax.set_title(f"{side.capitalize()} CPU per event")
        ax.legend(fontsize="small")
    fig.suptitle("CPU per event against the number of consumers (start-up excluded)")
    return fig


def snapshot_fraction(results_df: pd.DataFrame | None = None) -> Figure:
    """Share of a snapshot's updates a poller sees against lambda T (= poll interval / publish interval).

    Measured points come from a ``fraction_seen`` column when the runs polled a
    snapshot; without such runs the figure shows the model alone and says so.
    """
    fig, (ax,) = _new(width=7.5)
    measured = pd.DataFrame()
    if results_df is not None and not results_df.empty and "fraction_seen" in results_df.columns:
        measured = results_df.dropna(subset=["fraction_seen"])
    lt = _lambda_t(measured) if not measured.empty else pd.Series(dtype=float)
    grid = _logspace_around(lt, extra=(0.05, 20.0), pad=1.5)
    ax.plot(grid, [model.snapshot_fraction_seen(x, 1.0) for x in grid], color="black", **MODEL_STYLE, label="model: (1 - e^(-lambda T)) / (lambda T), Poisson updates")
    ax.plot(grid, [model.snapshot_fraction_seen(x, 1.0, "constant") for x in grid], color="0.45", linestyle="-.", linewidth=1.4, label="model: min(1, 1/(lambda T)), updates every 1/lambda")
    if not measured.empty:
        ax.plot(lt, _col(measured, "fraction_seen"), marker="s", linestyle="none", color=_color("polling"), markersize=7, label="snapshot polling: measured")
        title = "Snapshot polling misses updates"
    else:
        title = "Snapshot polling misses updates (model only: no snapshot runs)"
    ax.axhline(1.0, color=_color("webhook"), linewidth=1.2, alpha=0.7, label="log feed or push: every update (by construction)")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(_plain_number))
    ax.set_ylim(0, 1.08)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("lambda T: updates per poll interval (poll interval / publish interval, log scale)")
    ax.set_ylabel("share of updates the poller sees")
    ax.set_title(title)
    ax.legend(fontsize="small", loc="lower left")
    return fig
