"""Figures shared by notebooks and reports: measurements beside the model.

Each function takes DataFrames from ``load_results`` / ``load_events`` and
returns a ``matplotlib.figure.Figure`` built without pyplot (no global state,
safe under the Agg backend and in threads). Measurements are drawn as markers
and solid lines; the closed-form model as dashed lines whose labels begin
with "model", so a reader never takes a formula for a measurement.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from labkit import model
from labkit.analysis import plotting as parts
from labkit.analysis.plotting import MODEL_STYLE
from labkit.results import columns as cols

# -- latency ------------------------------------------------------------------


def latency_cdf(events_df: pd.DataFrame, *, poll_interval_s: float | None = None, rtt_ms: float = 0.0) -> Figure:
    """Per-style distribution of event latency (created -> processed), on a log axis.

    With ``poll_interval_s`` the model's polling delay, uniform on
    [RTT, T + RTT], is drawn dashed beside the measured curve.
    """
    fig, (ax,) = parts.new_figure()
    if events_df.empty:
        parts.no_data(ax, "no events")
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
        ax.step(
            lat, y, where="post", color=parts.style_color(str(style), i), linewidth=2, label=f"{name} (p50 {p50:.3g} ms, p99 {p99:.3g} ms)"
        )
    if poll_interval_s:
        t_ms = poll_interval_s * 1000.0
        x = np.linspace(max(rtt_ms, t_ms * 1e-3), t_ms + rtt_ms, 300)
        ax.plot(
            x,
            np.clip((x - rtt_ms) / t_ms, 0, 1),
            color="black",
            **MODEL_STYLE,
            label=f"model: polling delay uniform on [0, T] + RTT (T = {poll_interval_s:g} s)",
        )
    ax.set_xscale("log")
    parts.log_axis(ax.xaxis)
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("latency: created at the provider -> processed by the consumer (ms, log scale)")
    ax.set_ylabel("share of events at or below")
    ax.set_title("Latency distribution per delivery style")
    ax.legend(loc="lower right", fontsize="small")
    return fig


def summary_bars(results_df: pd.DataFrame) -> Figure:
    """One compare run: latency p50 and p99, requests and bytes per event, per style, model dashed."""
    fig, axes = parts.new_figure(ncols=4, width=13.0, height=4.2)
    if results_df.empty:
        for ax in axes:
            parts.no_data(ax, "no results")
        return fig
    run = results_df["run_id"].iloc[0] if "run_id" in results_df.columns else None
    df = results_df[results_df["run_id"] == run] if run is not None else results_df
    names = parts.styles_in(df)
    panels = [
        ("latency p50 (ms)", cols.LATENCY_P50, (cols.MODEL_LATENCY_P50, cols.MODEL_LATENCY_MEAN), True),
        ("latency p99 (ms)", cols.LATENCY_P99, (cols.MODEL_LATENCY_P99,), True),
        ("requests per event per consumer", "requests_per_event", (cols.MODEL_REQUESTS_PER_EVENT,), False),
        ("bytes per event per consumer", "bytes_per_event", (cols.MODEL_BYTES_PER_EVENT,), False),
    ]
    model_labelled = False
    for ax, (title, column, model_cols, log) in zip(axes, panels):
        shown: list[float] = []
        for i, style in enumerate(names):
            row = parts.style_rows(df, style)
            value = float(parts.column(row, column).iloc[0])
            if math.isnan(value):
                continue
            ax.bar(i, value, color=parts.style_color(style, i), width=0.6, label=style)
            predicted = _first_value(row, model_cols)
            top = value if math.isnan(predicted) else max(value, predicted)
            shown += [value] if math.isnan(predicted) else [value, predicted]
            ax.annotate(f"{value:.3g}", (i, top), ha="center", va="bottom", fontsize="small", xytext=(0, 3), textcoords="offset points")
            if not math.isnan(predicted):
                ax.plot(
                    [i - 0.4, i + 0.4],
                    [predicted, predicted],
                    color="black",
                    **MODEL_STYLE,
                    label="_nolegend_" if model_labelled else "model",
                )
                model_labelled = True
        ax.set_xticks(range(len(names)), names)
        ax.set_title(title, fontsize="medium")
        if log:
            ax.set_yscale("log")
            parts.log_axis(ax.yaxis)
            positive = [v for v in shown if v > 0]
            if positive:  # a log bar starts at the axis: leave room below the smallest
                ax.set_ylim(min(positive) / 3, max(positive) * 2)
        else:
            ax.set_ylim(0, ax.get_ylim()[1] * 1.08)
    lt = float(parts.lambda_t_of(df).iloc[0])
    title = "Push against poll, one run"
    if run is not None and not math.isnan(lt):
        events = parts.column(df, "workload.events").iloc[0]
        title = f"Run {run}: {events:.0f} events at {parts.column(df, cols.RATE).iloc[0]:g}/s, lambda T = {lt:.3g}"
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
    fig, (ax,) = parts.new_figure()
    pull, push = parts.family_style("pull"), parts.family_style("push")
    poll = parts.style_rows(results_df, pull)
    if poll.empty:
        parts.no_data(ax, f"no {pull} runs")
        return fig
    t = parts.column(poll, "poll_interval_s", "settings.poll_interval_s")
    rtt_ms = float(np.nanmedian(parts.column(poll, cols.RTT_MEAN))) if parts.column(poll, cols.RTT_MEAN).notna().any() else 0.0
    c, mark = parts.style_color(pull), parts.style_marker(pull)
    ax.plot(t, parts.column(poll, cols.LATENCY_MEAN), marker=mark, linestyle="none", color=c, markersize=7, label=f"{pull}: measured mean")
    ax.plot(
        t,
        parts.column(poll, cols.LATENCY_P99),
        marker="^",
        linestyle="none",
        color=c,
        markersize=7,
        alpha=0.6,
        label=f"{pull}: measured p99",
    )
    grid = parts.logspace_around(t, pad=1.5)
    ax.plot(grid, (grid / 2) * 1000 + rtt_ms, color=c, **MODEL_STYLE, label=f"model: mean T/2 + RTT (RTT {rtt_ms:.2g} ms)")
    ax.plot(grid, 0.99 * grid * 1000 + rtt_ms, color=c, linestyle=":", linewidth=1.4, label="model: p99 0.99 T + RTT")
    web = parts.style_rows(results_df, push)
    if not web.empty:
        wt = parts.column(web, "settings.poll_interval_s", "poll_interval_s")
        if wt.isna().all():
            wt = pd.Series(np.nanmedian(t), index=web.index)
        ax.plot(
            wt,
            parts.column(web, cols.LATENCY_MEAN),
            **parts.style_look(push),
            linestyle="none",
            markersize=7,
            label=f"{push}: measured mean (T does not apply)",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        parts.log_axis(axis)
    ax.set_xlabel("poll interval T (s, log scale)")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title("Polling latency grows with the poll interval; push does not")
    parts.legend_below(ax)
    return fig


# -- cost against lambda T ----------------------------------------------------------


def cost_vs_lambda_t(results_df: pd.DataFrame, metric: str = "requests_per_event") -> Figure:
    """Requests or bytes per event per consumer against lambda T, each style with its model curve.

    Requests: polling 1/(lambda T) (plus extra pages), push 1/B; they cross at
    lambda T = 1/B. Bytes: the calibrated cost model fitted on these runs
    (``labkit.analysis.calibration``), crossing where the fitted costs are equal.
    """
    if metric not in ("requests_per_event", "bytes_per_event"):
        raise ValueError("metric is 'requests_per_event' or 'bytes_per_event'")
    fig, (ax,) = parts.new_figure(width=7.5)
    if results_df.empty:
        parts.no_data(ax, "no results")
        return fig
    df = results_df.assign(_lt=parts.lambda_t_of(results_df, realised=True), _y=parts.column(results_df, metric))
    batch = parts.batch_of(df)
    grid = parts.logspace_around(df["_lt"], extra=(1.0 / batch,))
    for i, style in enumerate(parts.styles_in(df)):
        part = df[df["style"] == style].dropna(subset=["_lt", "_y"]).sort_values("_lt")
        if part.empty:
            continue
        mean = part.groupby("_lt")["_y"].mean()
        ax.plot(mean.index, mean.to_numpy(), color=parts.style_color(style, i), linewidth=1.2, alpha=0.6)
        ax.plot(
            part["_lt"],
            part["_y"],
            marker=parts.style_marker(style),
            linestyle="none",
            color=parts.style_color(style, i),
            markersize=7,
            label=f"{style}: measured",
        )
    crossover, curves = parts.cost_model_curves(df, metric, grid, batch)
    for style, (y, label) in curves.items():
        ax.plot(grid, y, color=parts.style_color(style), **MODEL_STYLE, label=label)
    if crossover is not None and math.isfinite(crossover):
        name = "1/B" if metric == "requests_per_event" else "equal bytes"
        ax.axvline(crossover, color="0.3", linestyle=":", linewidth=1.2, label=f"model crossover: lambda T = {crossover:.3g} ({name})")
        ax.annotate(
            "<- push cheaper",
            (crossover, 0.97),
            xycoords=("data", "axes fraction"),
            xytext=(-6, 0),
            textcoords="offset points",
            ha="right",
            va="top",
            fontsize="small",
            color="0.3",
        )
        ax.annotate(
            "polling cheaper ->",
            (crossover, 0.97),
            xycoords=("data", "axes fraction"),
            xytext=(6, 0),
            textcoords="offset points",
            ha="left",
            va="top",
            fontsize="small",
            color="0.3",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        parts.log_axis(axis)
    what = "requests" if metric == "requests_per_event" else "bytes"
    ax.set_xlabel("lambda T: events per poll interval, as published (log scale)")
    ax.set_ylabel(f"{what} per event per consumer (log scale)")
    ax.set_title(f"{what.capitalize()} per event: polling against push")
    parts.legend_below(ax)
    return fig


def empty_polls_vs_lambda_t(results_df: pd.DataFrame) -> Figure:
    """Share of empty polls against lambda T, with e^(-lambda T) and Zapier's 98.5 % marked."""
    fig, (ax,) = parts.new_figure(width=7.5)
    zapier_lt = model.lambda_t_for_wasted_ratio(model.zapier_wasted_ratio())
    pull = parts.family_style("pull")
    poll = parts.style_rows(results_df, pull)
    lt = parts.lambda_t_of(poll, realised=True)
    ratio = parts.column(poll, "empty_poll_ratio")
    grid = parts.logspace_around(lt, extra=(zapier_lt,), pad=2.0)
    ax.plot(grid, np.exp(-grid), color="black", **MODEL_STYLE, label="model: e^(-lambda T) (Poisson arrivals)")
    if not poll.empty and ratio.notna().any():
        polls = parts.column(poll, "polls")
        err = np.sqrt(ratio * (1 - ratio) / polls.where(polls > 0))
        ax.errorbar(
            lt,
            ratio,
            yerr=err,
            **parts.style_look(pull),
            linestyle="none",
            markersize=7,
            capsize=3,
            label="measured (bars: one standard error)",
        )
        for x, y in zip(lt, ratio):
            if not (math.isnan(x) or math.isnan(y)):
                ax.annotate(
                    f"{y:.1%}\nmodel {math.exp(-x):.1%}",
                    (x, y),
                    xytext=(8, 4),
                    textcoords="offset points",
                    fontsize="x-small",
                    color="0.25",
                )
    else:
        parts.no_data(ax, f"no {pull} runs: model only")
    zapier = model.zapier_wasted_ratio()
    ax.plot(
        [zapier_lt],
        [zapier],
        marker="*",
        markersize=14,
        color="#ff7f0e",
        linestyle="none",
        label=f"Zapier: {zapier:.1%} of polls empty (lambda T = {zapier_lt:.3f})",
    )
    ax.axvline(1.0, color="0.5", linestyle=":", linewidth=1, label=f"lambda T = 1: {math.exp(-1):.1%} empty")
    ax.set_xscale("log")
    parts.log_axis(ax.xaxis)
    ax.set_ylim(-0.02, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("lambda T: events per poll interval, as published (log scale)")
    ax.set_ylabel("polls that found nothing new")
    ax.set_title("Wasted polls against the event rate")
    parts.legend_below(ax)
    return fig


# -- CPU and snapshots ------------------------------------------------------------


def cpu_vs_consumers(results_df: pd.DataFrame) -> Figure:
    """Provider and consumer CPU per delivered event against the number of consumers (start-up excluded)."""
    fig, axes = parts.new_figure(ncols=2, width=12.0)
    sides = (("provider", "provider_cpu_s", "provider_cpu_start_s"), ("consumer", "consumer_cpu_s", "consumer_cpu_start_s"))
    if results_df.empty:
        for ax in axes:
            parts.no_data(ax, "no results")
        return fig
    from labkit.analysis.calibration import fit_costs
    from labkit.errors import ResultsError

    try:
        cal = fit_costs(results_df)
    except ResultsError:
        cal = None
    for ax, (side, col, start) in zip(axes, sides):
        uncalibrated: list[str] = []
        for i, style in enumerate(parts.styles_in(results_df)):
            part = parts.style_rows(results_df, style)
            n = parts.column(part, "consumers")
            delivered = parts.column(part, "delivered")
            cpu = parts.column(part, col) - parts.column(part, start).fillna(0.0)
            y = cpu / delivered.where(delivered > 0) * 1000.0
            order = np.argsort(n.to_numpy())
            ax.plot(
                n.to_numpy()[order],
                y.to_numpy()[order],
                marker=parts.style_marker(style),
                color=parts.style_color(style, i),
                markersize=7,
                label=f"{style}: measured",
            )
            fit = cal.fits.get(style, {}).get(f"{side}_cpu_s") if cal else None
            if fit is not None and fit.exact:
                # A curve through every point (one run, say) would look like a confirmed model.
                uncalibrated.append(
                    f"{style}: {fit.runs} run(s) for {len(fit.terms)} cost(s), an exact fit, so no model is drawn;"
                    f" runs at {len(fit.terms) + 1}+ consumer counts calibrate it"
                    " (labkit sweep scenarios/experiments/cost-vs-consumers.toml)"
                )
            elif fit is not None and n.notna().any():
                grid = parts.logspace_around(n, pad=1.5)
                published = float(np.nanmedian(delivered / n))  # events each consumer got
                rpe = float(np.nanmedian(parts.column(part, "requests") / delivered))
                # per delivery: its requests, itself, its share of the published event and of the run
                model_y = (fit.per_request * rpe + fit.per_event + fit.per_published / grid + fit.per_run / (grid * published)) * 1000.0
                ax.plot(
                    grid, model_y, color=parts.style_color(style, i), **MODEL_STYLE, label=f"model (calibrated, R^2 {fit.r2:.2f}): {style}"
                )
        ax.set_xscale("log")
        parts.log_axis(ax.xaxis)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("consumers (pollers or subscribers, log scale)")
        ax.set_ylabel(f"{side} CPU per delivered event (ms)")
        ax.set_title(f"{side.capitalize()} CPU per event")
        ax.legend(fontsize="small")
        if uncalibrated:
            text = "\n".join(textwrap.fill(t, 70) for t in uncalibrated)
            ax.text(0.02, 0.02, text, transform=ax.transAxes, fontsize="x-small", va="bottom", wrap=True)
    fig.suptitle("CPU per event against the number of consumers (start-up excluded)")
    return fig


def snapshot_fraction(results_df: pd.DataFrame | None = None) -> Figure:
    """Share of a snapshot's updates a poller sees against lambda T (= poll interval / publish interval).

    Measured points come from a ``fraction_seen`` column when the runs polled a
    snapshot; without such runs the figure shows the model alone and says so.
    """
    fig, (ax,) = parts.new_figure(width=7.5)
    pull, push = parts.family_style("pull"), parts.family_style("push")
    measured = pd.DataFrame()
    if results_df is not None and not results_df.empty and "fraction_seen" in results_df.columns:
        measured = results_df.dropna(subset=["fraction_seen"])
    lt = parts.lambda_t_of(measured) if not measured.empty else pd.Series(dtype=float)
    grid = parts.logspace_around(lt, extra=(0.05, 20.0), pad=1.5)
    ax.plot(
        grid,
        [model.snapshot_fraction_seen(x, 1.0) for x in grid],
        color="black",
        **MODEL_STYLE,
        label="model: (1 - e^(-lambda T)) / (lambda T), Poisson updates",
    )
    ax.plot(
        grid,
        [model.snapshot_fraction_seen(x, 1.0, "constant") for x in grid],
        color="0.45",
        linestyle="-.",
        linewidth=1.4,
        label="model: min(1, 1/(lambda T)), updates every 1/lambda",
    )
    if not measured.empty:
        ax.plot(
            lt,
            parts.column(measured, "fraction_seen"),
            **parts.style_look(pull),
            linestyle="none",
            markersize=7,
            label="snapshot polling: measured",
        )
        title = "Snapshot polling misses updates"
    else:
        title = "Snapshot polling misses updates (model only: no snapshot runs)"
    ax.axhline(1.0, color=parts.style_color(push), linewidth=1.2, alpha=0.7, label="log feed or push: every update (by construction)")
    ax.set_xscale("log")
    parts.log_axis(ax.xaxis)
    ax.set_ylim(0, 1.08)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("lambda T: updates per poll interval (poll interval / publish interval, log scale)")
    ax.set_ylabel("share of updates the poller sees")
    ax.set_title(title)
    ax.legend(fontsize="small", loc="lower left")
    return fig


# -- over time, and per variant (added for the notebooks) ----------------------------------------


def latency_timeline(
    events_df: pd.DataFrame,
    results_df: pd.DataFrame | None = None,
    *,
    poll_interval_s: float | None = None,
    rtt_ms: float = 0.0,
    window_s: float | None = None,
    log: bool = False,
) -> Figure:
    """Each event's latency against the time it was created, one panel per style.

    Polling draws a sawtooth: an event created just after a poll waits almost
    T, one created just before waits almost nothing, so the mean is T/2
    (drawn dashed from the model with ``poll_interval_s``). Push stays on the
    floor. With ``results_df`` rows of a failure run, each fault episode
    (``fault.episodes``: when it began, how long the outage and the catch-up
    lasted) is shaded. Only the first run in ``events_df`` is drawn;
    ``window_s`` keeps its first seconds, so single poll periods show.
    """
    shown = parts.styles_in(events_df) if not events_df.empty else []
    fig, axes = parts.new_figure(ncols=max(len(shown), 1), width=6.0 * max(len(shown), 1), height=4.2)
    if not shown:
        parts.no_data(axes[0], "no events")
        return fig
    run = events_df["run_id"].iloc[0] if "run_id" in events_df.columns else None
    df = events_df[events_df["run_id"] == run] if run is not None else events_df
    top = 0.0
    for ax, style in zip(axes, shown):
        part = df[df["style"] == style]
        t = (part["created_ns"] - part["created_ns"].min()) / 1e9
        lat = part["latency_us"] / 1000.0
        if window_s:
            keep = t <= window_s
            t, lat = t[keep], lat[keep]
        color = parts.style_color(style)
        ax.plot(
            t,
            lat,
            marker=parts.style_marker(style),
            linestyle="none",
            markersize=4,
            alpha=0.7,
            color=color,
            label=f"{style}: one event",
        )
        if len(lat):
            ax.axhline(float(lat.mean()), color=color, linewidth=1.2, label=f"{style}: measured mean {lat.mean():.3g} ms")
            top = max(top, float(lat.max()))
        if parts.paced_by_interval(style) and poll_interval_s:
            mean = model.polling_delay_mean_s(poll_interval_s, rtt_ms / 1000) * 1000
            ax.axhline(mean, color="black", **MODEL_STYLE, label=f"model: mean T/2 + RTT = {mean:.3g} ms (T = {poll_interval_s:g} s)")
            ax.axhline(poll_interval_s * 1000 + rtt_ms, color="0.5", linestyle=":", linewidth=1.2, label="model: longest wait T + RTT")
            top = max(top, poll_interval_s * 1000 + rtt_ms)
        if results_df is not None and not results_df.empty:
            _shade_episodes(ax, style, run, results_df)
        if not ax.get_title():
            ax.set_title(style, fontsize="medium")
        ax.set_xlabel("time since the first event (s)")
        ax.set_ylabel("latency (ms" + (", log scale)" if log else ")"))
        parts.legend_below(ax, ncol=1)
    for ax in axes:
        if log:
            ax.set_yscale("log")
            parts.log_axis(ax.yaxis)
        else:
            ax.set_ylim(0, top * 1.08 if top > 0 else 1)
    fig.suptitle(f"Latency of each event over the run{f' ({run})' if run is not None else ''}")
    return fig


def _shade_episodes(ax: Axes, style: str, run: Any, results_df: pd.DataFrame) -> None:
    """Shade each fault episode of ``style`` in ``run``: the outage, then the catch-up; title the panel with the fault."""
    rows = results_df[
        (results_df["style"] == style) & ((results_df["run_id"] == run) if run is not None and "run_id" in results_df.columns else True)
    ]
    episodes = rows["fault.episodes"].iloc[0] if "fault.episodes" in rows.columns and len(rows) else None
    for i, ep in enumerate(episodes if isinstance(episodes, (list, tuple)) else []):
        start, outage = float(ep.get("at_s") or 0.0), float(ep.get("outage_s") or 0.0)
        catch = float(ep.get("catch_up_s") or 0.0)
        ax.axvspan(
            start,
            start + max(outage, 0.02),
            color="#ff7f0e",
            alpha=0.25,
            label=f"{ep.get('what', 'fault')}: outage" if i == 0 else "_nolegend_",
        )
        if catch > 0:
            ax.axvspan(start + outage, start + outage + catch, color="#ff7f0e", alpha=0.08, label="catching up" if i == 0 else "_nolegend_")
    if len(rows) and "fault.description" in rows.columns:
        ax.set_title(f"{style}: {rows['fault.description'].iloc[0]}", fontsize="medium")


def variant_bars(results_df: pd.DataFrame, *, title: str = "Delivery variants on one workload") -> Figure:
    """Delivery variants side by side: mean latency, requests and bytes per event, the model marked.

    One bar per (variant, style) row, named by ``param.variant`` when the
    runs come from an experiment's variants, coloured by style.
    """
    panels = [
        ("latency mean (ms, log scale)", cols.LATENCY_MEAN, cols.MODEL_LATENCY_MEAN, True),
        ("requests per event per consumer", "requests_per_event", cols.MODEL_REQUESTS_PER_EVENT, False),
        ("bytes per event per consumer", "bytes_per_event", None, False),
    ]
    fig, axes = parts.new_figure(ncols=len(panels), width=13.0, height=4.4)
    if results_df.empty:
        for ax in axes:
            parts.no_data(ax, "no results")
        return fig
    df = results_df.reset_index(drop=True)
    if "param.variant" in df.columns:
        one_style = df.groupby("param.variant")["style"].nunique().max() == 1
        names = df["param.variant"].astype(str) if one_style else df["param.variant"].astype(str) + " (" + df["style"].astype(str) + ")"
    else:
        names = df["style"].astype(str)
    y = np.arange(len(df))
    labelled = False
    for ax, (panel_title, column, model_column, log) in zip(axes, panels):
        values = parts.column(df, column)
        colors = [parts.style_color(str(s)) for s in df["style"]]
        ax.barh(y, values.fillna(0), color=colors, height=0.6)
        for yi, v in zip(y, values):
            if not math.isnan(v):
                ax.annotate(
                    f"{v:,.0f}" if v >= 1000 else f"{v:.3g}",
                    (v, yi),
                    xytext=(3, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize="x-small",
                )
        if model_column:
            for yi, m in zip(y, parts.column(df, model_column)):
                if not math.isnan(m) and m > 0:
                    ax.plot([m, m], [yi - 0.4, yi + 0.4], color="black", **MODEL_STYLE, label="_nolegend_" if labelled else "model")
                    labelled = True
        ax.set_yticks(y, names if ax is axes[0] else [""] * len(y))
        ax.invert_yaxis()
        ax.set_title(panel_title, fontsize="medium")
        if log:
            ax.set_xscale("log")
            parts.log_axis(ax.xaxis)
        else:
            ax.set_xlim(0, max(float(values.max()) * 1.25, 1e-9) if values.notna().any() else 1)
    handles: list[Artist] = [Patch(color=parts.style_color(s), label=s) for s in parts.styles_in(df)]
    handles += [h for h in axes[0].get_legend_handles_labels()[0] + axes[1].get_legend_handles_labels()[0] if h.get_label() == "model"][:1]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize="small", frameon=False)
    fig.suptitle(title)
    return fig
