"""Held streams beside webhooks and long polling: the numbers the decision weighs, as a table and a figure.

``stream_table`` takes the newest run in a results table that measured a held
stream (a style the registry marks as push without a public endpoint) and gives
one row per style of that run: latency p99, bytes per event, provider CPU per
delivered event, provider memory per held connection (RSS above the same run's
provider that held none, divided by the connections), reconnects, backpressure
drops and lost events. ``streams_figure`` draws it in the registry's colours.
Both are used by the report and by notebook 07.
"""

from __future__ import annotations

import math

import pandas as pd
from matplotlib.figure import Figure

from labkit.analysis import plotting as parts
from labkit.errors import ResultsError
from labkit.report.observations import is_stream, observations
from labkit.report.streams import StreamView
from labkit.results import columns as cols

COLUMNS = (
    "run_id",
    "style",
    "variant",
    "consumers",
    "latency_p99_ms",
    "bytes_per_event",
    "provider_cpu_ms_per_event",
    "provider_rss_kb_per_connection",
    "reconnects",
    "dropped_backpressure",
    "lost",
)
PANELS = (
    ("latency p99 (ms)", "latency_p99_ms", True),
    ("bytes per event per consumer", "bytes_per_event", False),
    ("provider CPU per delivered event (ms)", "provider_cpu_ms_per_event", False),
    ("provider memory per held connection (KB)", "provider_rss_kb_per_connection", False),
    ("reconnects + backpressure drops", "churn", False),
)


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def stream_table(results_df: pd.DataFrame, *, streams_only: bool = True) -> pd.DataFrame:
    """One row per style of the newest run that measured a held stream; ResultsError when no run did.

    ``streams_only=False`` falls back to the newest run of any style (a notebook before any stream run).
    """
    obs = observations(results_df)
    runs = sorted({o.run_id for o in obs if is_stream(o.style)}) or ([] if streams_only else sorted({o.run_id for o in obs}))
    if not runs:
        raise ResultsError("no run measured a held stream (labkit compare --styles ...,sse,websocket)")
    run = [o for o in obs if o.run_id == runs[-1]]
    quiet = [o for o in run if not is_stream(o.style) and o.has("provider_rss_mb")]
    base = min(quiet, key=lambda o: (o.get("provider_rss_mb") or 0.0, o.style)) if quiet else None
    rows = []
    for o in run:
        view = StreamView(o, base)
        rows.append(
            {
                "run_id": o.run_id,
                "style": o.style,
                "variant": o.variant,
                "consumers": o.consumers,
                "latency_p99_ms": _nan(o.get(cols.LATENCY_P99)),
                "bytes_per_event": _nan(o.get("bytes_per_event")),
                "provider_cpu_ms_per_event": _nan(view.cpu_ms_per_event),
                "provider_rss_kb_per_connection": math.nan if o is base else _nan(view.rss_kb_per_connection),
                "reconnects": _nan(o.get("reconnects")),
                "dropped_backpressure": _nan(o.get("dropped_backpressure")),
                "lost": _nan(o.get("lost")),
            }
        )
    order = {s: i for i, s in enumerate(parts.styles_in(pd.DataFrame(rows)))}
    return pd.DataFrame(sorted(rows, key=lambda r: order[str(r["style"])]), columns=list(COLUMNS))


def streams_figure(results_df: pd.DataFrame, *, streams_only: bool = True) -> Figure:
    """Bars per style of one stream run: latency, bytes, provider CPU and memory per connection, churn."""
    table = stream_table(results_df, streams_only=streams_only)
    table = table.assign(churn=table["reconnects"].fillna(0) + table["dropped_backpressure"].fillna(0))
    table.loc[table["reconnects"].isna() & table["dropped_backpressure"].isna(), "churn"] = math.nan
    fig, axes = parts.new_figure(ncols=len(PANELS), width=16.0, height=4.2)
    names = list(table["style"])
    for ax, (title, column, log) in zip(axes, PANELS, strict=True):
        for i, style in enumerate(names):
            value = float(table[column].iloc[i])
            if math.isnan(value):
                continue
            ax.bar(i, value, color=parts.style_color(style, i), width=0.6, label=style)
            ax.annotate(f"{value:.3g}", (i, value), ha="center", va="bottom", fontsize="small", xytext=(0, 3), textcoords="offset points")
        ax.set_xticks(range(len(names)), list(table["variant"]), rotation=20, ha="right")
        ax.set_title(title, fontsize="medium")
        if log and (table[column] > 0).any():
            ax.set_yscale("log")
            parts.log_axis(ax.yaxis)
        elif not table[column].notna().any():
            parts.no_data(ax, "not measured")
    run, consumers = table["run_id"].iloc[0], table["consumers"].dropna()
    fig.suptitle(
        f"Held streams against webhooks and long polling, run {run}"
        + (f" ({int(consumers.max()):,} consumers per style)" if len(consumers) else ""),
        fontsize="large",
    )
    return fig
