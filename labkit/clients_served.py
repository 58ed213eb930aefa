"""The clients-served table: per style, the most consumers one provider served within a latency bound.

Reads a ``labkit sweep`` table of ``scenarios/experiments/clients-served.toml``
(one row per point and style) and answers, per variant (polling, long polling,
SSE, WebSocket): the largest consumer count whose p99 latency stayed within L
with nothing lost and the drain complete, and, at every step, the provider's
CPU for the workload (start-up excluded), its RSS and the bytes per event.
A step counts as served only if every smaller step was served too.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

DEFAULT_BOUND_MS = 1000.0


def _variant(row: pd.Series) -> str:
    value = row.get("param.variant")
    return str(value) if isinstance(value, str) and value else str(row["style"])


def steps(table: pd.DataFrame, bound_ms: float = DEFAULT_BOUND_MS) -> pd.DataFrame:
    """One row per (variant, consumers): p99, lost, whether it was served within ``bound_ms``, CPU, RSS, bytes."""
    if table.empty:
        return pd.DataFrame()
    df = table.copy()
    df["variant"] = df.apply(_variant, axis=1)
    df["provider_work_cpu_s"] = df["provider_cpu_s"] - df.get("provider_cpu_start_s", 0.0)
    df["served"] = (df["latency_ms.p99"] <= bound_ms) & (df["lost"] == 0) & df["drained"].astype(bool)
    cols = ["variant", "consumers", "latency_ms.p99", "lost", "served", "provider_work_cpu_s", "provider_rss_mb", "bytes_per_event"]
    return df[[c for c in cols if c in df.columns]].sort_values(["variant", "consumers"]).reset_index(drop=True)


def most_served(table: pd.DataFrame, bound_ms: float = DEFAULT_BOUND_MS) -> dict[str, Any]:
    """Variant -> the most consumers served within ``bound_ms`` (every smaller step served too), or 0."""
    out: dict[str, Any] = {}
    for variant, rows in steps(table, bound_ms).groupby("variant", sort=False):
        best = 0
        for _, row in rows.sort_values("consumers").iterrows():
            if not row["served"]:
                break
            best = int(row["consumers"])
        out[str(variant)] = best
    return out
