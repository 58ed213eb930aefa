"""The clients-served table: the most consumers within L stops at the first step that missed it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from labkit.clients_served import most_served, steps
from labkit.experiments import load_experiment

REPO = Path(__file__).resolve().parents[2]


def _row(variant: str, style: str, consumers: int, p99: float, lost: int = 0) -> dict:
    return {
        "param.variant": variant,
        "style": style,
        "consumers": consumers,
        "latency_ms.p99": p99,
        "lost": lost,
        "drained": True,
        "provider_cpu_s": 3.0,
        "provider_cpu_start_s": 1.0,
        "provider_rss_mb": 60.0 + consumers / 100,
        "bytes_per_event": 400.0,
    }


def test_most_served_is_the_last_step_before_the_first_miss() -> None:
    table = pd.DataFrame(
        [
            _row("polling", "polling", 100, 900),
            _row("polling", "polling", 300, 1400),
            _row("polling", "polling", 1000, 950),  # served again, but a smaller step missed: not counted
            _row("sse", "sse", 100, 40),
            _row("sse", "sse", 300, 90),
            _row("sse", "sse", 1000, 300, lost=2),
            _row("websocket", "websocket", 100, 1200),
        ]
    )
    assert most_served(table) == {"polling": 100, "sse": 300, "websocket": 0}
    s = steps(table)
    assert list(s.columns[:5]) == ["variant", "consumers", "latency_ms.p99", "lost", "served"]
    assert (s["provider_work_cpu_s"] == 2.0).all()


def test_the_shipped_experiment_runs_four_styles_on_growing_consumers() -> None:
    exp = load_experiment(REPO / "scenarios" / "experiments" / "clients-served.toml")
    variants = {p.params["variant"] for p in exp.points}
    assert variants == {"polling", "long-polling", "sse", "websocket"}
    assert sorted({p.settings.pollers for p in exp.points}) == [100, 300, 1000, 3000, 10000]
    polling = [p.settings for p in exp.points if p.params["variant"] == "polling"]
    # T = (L - RTT budget) / 0.99 with L = 1 s: a timetabled poller's p99 delay is 0.99 T + RTT
    assert all(0.99 * s.poll_interval_s + 0.1 <= 1.0 for s in polling)
