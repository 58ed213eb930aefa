"""Issue 24, item 10: the compare table of four styles fits 80 columns and cuts no number."""

from __future__ import annotations

import io
import re

from rich.console import Console

from labkit import styles
from labkit.analysis.summary_table import ROWS, format_cell, render_summary


def _summary(names: list[str]) -> dict:
    block = {
        "published": 1_234_567, "delivered": 1_234_567, "lost": 0, "duplicates": 12_345,
        "latency_ms": {"mean": 1234.5678, "p50": 987.65, "p99": 45_678.9, "max": 123_456.7},
        "requests": 98_765_432, "requests_per_event": 12.3456, "empty_poll_ratio": 0.987,
        "bytes_total": 9_876_543_210, "bytes_per_event": 1_234.5, "provider_cpu_s": 123.45, "consumer_cpu_s": 67.89,
        "model": {"latency_mean_ms": 1500.25, "latency_p50_ms": 1000.5, "latency_p99_ms": 44_000.0, "requests_per_event": 11.5, "empty_poll_ratio": 0.95},
    }  # fmt: skip
    wl = {"events": 1_234_567, "arrival": "poisson", "rate_per_s": 20.0, "duration_s": 60.0, "payload_bytes": 256, "lambda_t": 0.5}
    return {"run_id": "r", "results_dir": "results/r", "workload": wl, "styles": {n: block for n in names}}


def _render(summary: dict, width: int) -> str:
    out = io.StringIO()
    render_summary(summary, Console(file=out, width=width, color_system=None, legacy_windows=False))
    return out.getvalue()


def test_four_styles_fit_80_columns_with_every_number_whole() -> None:
    names = [info.name for info in styles.all_styles()][:4]
    assert len(names) == 4
    summary = _summary(names)
    text = _render(summary, 80)
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "…" not in text, text
    for name in names:
        assert name in text
    cells = {format_cell(v) for v in (1_234_567, 12_345, 98_765_432, 12.3456, 9_876_543_210, 45_678.9, 44_000.0)}
    flat = re.sub(r"\s+", " ", text)
    for cell in cells:
        assert cell in flat, (cell, text)
    for label, _, _ in ROWS:
        assert label in text


def test_a_wide_console_keeps_one_table() -> None:
    names = [info.name for info in styles.all_styles()][:4]
    text = _render(_summary(names), 250)
    assert text.count("events published") == 1
