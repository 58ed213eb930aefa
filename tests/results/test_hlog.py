"""Latency histograms in the HdrHistogram log format: one .hlog per style, read back by hdrhistogram itself."""

from __future__ import annotations

import json

import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

import labkit
from labkit.config import RunSettings, WorkloadSettings
from labkit.errors import ResultsError
from labkit.lab import pipeline
from labkit.results.hlog import latency_histogram, load_latency_log, write_latency_logs
from labkit.wire.metering import HIST_DIGITS, HIST_MAX_US, HIST_MIN_US, histogram_summary_ms


def _read_with_hdrhistogram(path) -> HdrHistogram:
    """The package's own reader, adding every interval of the log."""
    total = HdrHistogram(HIST_MIN_US, HIST_MAX_US, HIST_DIGITS)
    reader = HistogramLogReader(str(path), HdrHistogram(HIST_MIN_US, HIST_MAX_US, HIST_DIGITS))
    try:
        while (interval := reader.get_next_interval_histogram()) is not None:
            total.add(interval)
    finally:
        reader.close()
    return total


@pytest.fixture(scope="module")
def compare_run(tmp_path_factory):
    settings = RunSettings(
        workload=WorkloadSettings(arrival="poisson", rate_per_s=30, duration_s=2, seed=5),
        poll_interval_s=0.25,
        out_dir=str(tmp_path_factory.mktemp("results")),
    )
    return pipeline.run(settings)


@pytest.mark.slow
def test_a_compare_run_writes_one_hlog_per_style_matching_the_summary(compare_run):
    summary = json.loads((compare_run.results_dir / "summary.json").read_text())
    logs = sorted(p.name for p in compare_run.results_dir.glob("*.hlog"))
    assert logs == sorted(f"latency-{style}.hlog" for style in summary["styles"])
    for style, block in summary["styles"].items():
        hist = _read_with_hdrhistogram(compare_run.results_dir / f"latency-{style}.hlog")
        assert hist.get_total_count() == block["delivered"] > 0
        p99_ms = hist.get_value_at_percentile(99) / 1000
        # the same buckets: equal within the histogram's precision (3 significant digits)
        assert p99_ms == pytest.approx(block["latency_ms"]["p99"], rel=10**-HIST_DIGITS)


@pytest.mark.slow
def test_the_public_loader_reads_every_style(compare_run):
    loaded = labkit.load_latency_logs(compare_run.results_dir / "summary.json")
    assert set(loaded) == set(compare_run.summary["styles"])
    for style, hist in loaded.items():
        from_log = histogram_summary_ms(hist)
        # every quantile the log can give equals the summary's; the summary adds the events' sd besides
        assert from_log == {k: v for k, v in compare_run.summary["styles"][style]["latency_ms"].items() if k in from_log}
        assert set(from_log) >= {"p50", "p90", "p99", "max", "mean"}


def test_logs_round_trip_and_span_the_run(tmp_path):
    base = 1_800_000_000_123_456_789  # a start with a fraction of a millisecond: StartTime and BaseTime must agree
    rows = [("webhook", "c1", i, base + i * 10**7, base + i * 10**7 + (i + 1) * 1000) for i in range(500)]
    hist = latency_histogram(rows)
    (path,) = write_latency_logs(tmp_path, {"webhook": hist})
    text = path.read_text()
    assert text.startswith("#[Histogram log format version 1.2]")
    assert "#[StartTime: 1800000000.123457 " in text and "#[BaseTime: 1800000000.123457 " in text
    assert _read_with_hdrhistogram(path).get_total_count() == 500
    back = load_latency_log(path)
    assert back.get_total_count() == 500
    assert back.get_max_value() == hist.get_max_value()
    interval = text.strip().splitlines()[-1].split(",")
    # the interval lasts from the first creation (0 s) to the last delivery: 499 * 10 ms + 0.5 ms
    assert float(interval[1]) == pytest.approx(4.9905, abs=0.001)


def test_an_empty_style_still_gets_a_log(tmp_path):
    (path,) = write_latency_logs(tmp_path, {"polling": latency_histogram([])})
    assert load_latency_log(path).get_total_count() == 0


def test_a_missing_or_damaged_log_is_a_results_error(tmp_path):
    with pytest.raises(ResultsError, match="no latency logs"):
        labkit.load_latency_logs(tmp_path)
    bad = tmp_path / "latency-webhook.hlog"
    bad.write_text('"StartTimestamp"\n0.0,1.0,2.0,HISTnot-base64!!\n')
    with pytest.raises(ResultsError, match="corrupted"):
        load_latency_log(bad)
