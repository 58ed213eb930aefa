"""The audience figure draws each style's measured latency per audience, with the extreme tenths."""

import pandas as pd

from labkit import styles
from labkit.analysis.audience_figure import audience_figure, audience_label


def test_one_panel_per_style_and_a_bar_pair_per_audience(tmp_path):
    name = styles.names()[0]
    rows = [
        {"style": name, "settings.audience": "broadcast", "latency_ms.p50": 400.0, "latency_ms.p99": 1300.0},
        {
            "style": name,
            "settings.audience": "per-consumer",
            "settings.consumer_skew": "zipf:1.1",
            "latency_ms.p50": 5.0,
            "latency_ms.p99": 40.0,
            "audience.heaviest_decile.latency_ms.p99": 45.0,
            "audience.lightest_decile.latency_ms.p99": 20.0,
        },
        {"style": name, "settings.audience": "topics", "settings.topics": 20.0, "settings.subscriptions": 2.0, "latency_ms.p99": 90.0},
    ]
    assert [audience_label(r) for r in rows] == ["broadcast", "per-consumer zipf:1.1", "topics 20/2"]
    fig = audience_figure(pd.DataFrame(rows))
    (ax,) = fig.axes
    assert len(ax.patches) == 6  # p50 and p99 for each of three audiences
    assert [t.get_text() for t in ax.get_xticklabels()] == ["broadcast", "per-consumer zipf:1.1", "topics 20/2"]
    fig.savefig(tmp_path / "a.png")
    assert (tmp_path / "a.png").stat().st_size > 0
