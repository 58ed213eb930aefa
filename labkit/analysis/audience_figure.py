"""The audience experiment's figure: latency of each style under each audience, all consumers and the two extreme tenths.

One panel per style (in the registry's order and colours); along the x axis
the audiences of the results (broadcast, per-consumer uniform or skewed,
topics), each with the measured p50 and p99 of every delivery as bars and,
where the run had an audience, the p99 of its heaviest and lightest tenth of
consumers as markers. Everything drawn is measured.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from labkit import styles
from labkit.analysis.plotting import new_figure, style_color
from labkit.results import columns as cols

ORDER = {"broadcast": 0, "per-consumer": 1, "topics": 2}


def audience_label(row: dict[str, Any]) -> str:
    """A short name of a run's audience: ``broadcast``, ``per-consumer zipf:1.1``, ``topics 20/2``."""
    kind = row.get("settings.audience")
    if not isinstance(kind, str):
        return "broadcast"
    if kind == "per-consumer":
        return f"per-consumer {row.get('settings.consumer_skew') or 'uniform'}"
    if kind == "topics":
        return f"topics {_int(row.get('settings.topics'))}/{_int(row.get('settings.subscriptions'))}"
    return kind


def _int(value: Any) -> str:
    try:
        return str(int(value))
    except (TypeError, ValueError):
        return "?"


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def audience_figure(results: pd.DataFrame) -> Figure:
    """Latency p50/p99 per audience, a panel per style, with the heaviest and lightest tenth's p99 (measured)."""
    rows = results.to_dict("records")
    present = {str(r.get("style")) for r in rows}
    names = [s.name for s in styles.all_styles() if s.name in present] + sorted(present - set(styles.names()))
    labels = sorted({audience_label(r) for r in rows}, key=lambda a: (ORDER.get(a.split(" ")[0], 9), a))
    fig, axes = new_figure(ncols=max(len(names), 1), width=3.4 * max(len(names), 1), height=4.6)
    x = np.arange(len(labels))
    for i, (ax, name) in enumerate(zip(axes, names, strict=False)):
        by = {audience_label(r): r for r in rows if r.get("style") == name}
        p50 = [_num(by.get(a, {}).get("latency_ms.p50")) for a in labels]
        p99 = [_num(by.get(a, {}).get(cols.LATENCY_P99)) for a in labels]
        colour = style_color(name, i)
        ax.bar(x - 0.2, p50, width=0.4, color=colour, alpha=0.45, label="p50, every delivery")
        ax.bar(x + 0.2, p99, width=0.4, color=colour, label="p99, every delivery")
        heavy = [_num(by.get(a, {}).get("audience.heaviest_decile.latency_ms.p99")) for a in labels]
        light = [_num(by.get(a, {}).get("audience.lightest_decile.latency_ms.p99")) for a in labels]
        ax.plot(x + 0.2, heavy, "v", color="black", label="p99, heaviest 10 % of consumers")
        ax.plot(x + 0.2, light, "^", color="grey", label="p99, lightest 10 % of consumers")
        info = styles.get(name)
        ax.set_title(info.label if info is not None else name)
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("latency (ms), measured" if i == 0 else "")
    if len(axes):  # one legend for every panel, under them (it would hide a panel's bars)
        handles, names_ = axes[0].get_legend_handles_labels()
        fig.legend(handles, names_, loc="outside lower center", ncols=4, fontsize=8)
    fig.suptitle("Who receives which event: latency by audience, the same deliveries per second", fontsize=10)
    return fig
