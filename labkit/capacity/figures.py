"""The capacity curve: p99 and throughput against users, CPU on a second axis.

``capacity_curve(load_capacity(path))`` returns a ``matplotlib.figure.Figure``
built without pyplot, like ``labkit.analysis.figures``. Every point is a measured step;
the SLO is a dashed line, the step reported as the capacity is ringed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

P99_COLOR = "#d62728"
RPS_COLOR = "#1f77b4"
SERVER_CPU_COLOR = "#2ca02c"
LOADGEN_CPU_COLOR = "#7f7f7f"


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    if col not in df.columns:
        return pd.Series(np.nan, index=df.index, dtype=float)
    return pd.to_numeric(df[col], errors="coerce")


def capacity_curve(df: pd.DataFrame) -> Figure:
    """Two panels over users: p99 against the SLO; throughput with server and Locust CPU (right axis)."""
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax_p99, ax_rps = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for ax in (ax_p99, ax_rps):
        ax.grid(True, alpha=0.3)
        ax.set_xlabel("users")
    if df.empty:
        for ax in (ax_p99, ax_rps):
            ax.text(0.5, 0.5, "no steps", ha="center", va="center", transform=ax.transAxes, color="0.4")
        return fig
    runs = list(dict.fromkeys(df["run_id"])) if "run_id" in df.columns else [None]
    for i, run in enumerate(runs):
        d = (df[df["run_id"] == run] if run is not None else df).sort_values("users")
        users = _num(d, "users")
        label = f"{d['scenario'].iloc[0]}" if "scenario" in d.columns and len(runs) == 1 else str(run)
        alpha = 1.0 if i == len(runs) - 1 else 0.45
        ax_p99.plot(users, _num(d, "p99_ms"), "o-", color=P99_COLOR, alpha=alpha, label=f"p99, {label}")
        ax_rps.plot(users, _num(d, "rps"), "s-", color=RPS_COLOR, alpha=alpha, label="throughput")
        if "is_capacity" in d.columns and d["is_capacity"].any():
            cap = d[d["is_capacity"].astype(bool)]
            ax_p99.plot(_num(cap, "users"), _num(cap, "p99_ms"), "o", ms=14, mfc="none", mec="black", label="capacity")
        if "slo.p99_ms" in d.columns and pd.notna(d["slo.p99_ms"].iloc[0]):
            ax_p99.axhline(float(d["slo.p99_ms"].iloc[0]), color="black", ls="--", lw=1, label="SLO p99")
    ax_p99.set_ylabel("p99 latency (ms)")
    ax_p99.set_ylim(bottom=0)
    ax_p99.legend(fontsize="small", frameon=False)
    ax_rps.set_ylabel("throughput (requests/s)", color=RPS_COLOR)
    ax_rps.set_ylim(bottom=0)
    ax_cpu = ax_rps.twinx()
    last = df[df["run_id"] == runs[-1]] if runs[-1] is not None else df
    last = last.sort_values("users")
    ax_cpu.plot(_num(last, "users"), _num(last, "server_cpu_percent"), "^--", color=SERVER_CPU_COLOR, label="server CPU")
    ax_cpu.plot(_num(last, "users"), _num(last, "load_generator_cpu_percent"), "v:", color=LOADGEN_CPU_COLOR, label="Locust CPU")
    ax_cpu.axhline(100, color=SERVER_CPU_COLOR, lw=0.8, alpha=0.5)
    ax_cpu.set_ylabel("CPU (% of one core)")
    ax_cpu.set_ylim(
        0, max(110.0, float(np.nanmax([*_num(last, "server_cpu_percent"), *_num(last, "load_generator_cpu_percent"), 0])) * 1.1)
    )
    handles = ax_rps.get_legend_handles_labels()[0][-1:] + ax_cpu.get_legend_handles_labels()[0]
    ax_rps.legend(handles, [str(h.get_label()) for h in handles], fontsize="small", frameon=False, loc="upper left")
    title = "capacity (measured steps)"
    if "limited_by" in last.columns and pd.notna(last["limited_by"].iloc[0]):
        title += f": limited by {last['limited_by'].iloc[0]}"
    fig.suptitle(title)
    return fig
