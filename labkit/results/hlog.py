"""Per-style latency histograms in the HdrHistogram log format (``.hlog``), beside ``summary.json``.

The format is HdrHistogram's own interval log: a header, then one line per
interval holding a compressed histogram, so HdrHistogram's tools (the log
processor, HistogramLogAnalyzer, the plotters) read a run without labkit, and
two runs merge exactly by adding their histograms instead of averaging their
percentiles. A run is one interval per style: from its first event's creation
to its last delivery. Values are microseconds (the unit labkit records in);
HdrHistogram's tools assume nanoseconds unless told, so give them an output
unit ratio of 1000 for milliseconds.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader, HistogramLogWriter

from labkit.errors import ResultsError
from labkit.wire.metering import new_histogram, record_us

SUFFIX = ".hlog"
PREFIX = "latency-"
US_PER_MS = 1000.0

# (style, consumer, event_id, created_ns, received_ns): a run's event rows, as events.parquet holds them
EventRow = tuple[str, str, int, int, int]


def log_path(run_dir: Path, style: str) -> Path:
    return Path(run_dir) / f"{PREFIX}{style}{SUFFIX}"


def latency_histogram(rows: Iterable[EventRow]) -> HdrHistogram:
    """The delivery latency histogram (µs) of event rows, built as the run's summary builds it.

    Its start and end stamps (ms since the epoch) span the first creation and the last delivery.
    """
    hist = new_histogram()
    first_ns = last_ns = None
    for _, _, _, created_ns, received_ns in rows:
        record_us(hist, (received_ns - created_ns) / 1000)
        first_ns = created_ns if first_ns is None else min(first_ns, created_ns)
        last_ns = received_ns if last_ns is None else max(last_ns, received_ns)
    if first_ns is not None and last_ns is not None:
        hist.set_start_time_stamp(first_ns / 1e6)
        hist.set_end_time_stamp(max(last_ns, first_ns) / 1e6)
    return hist


def _log_text(style: str, hist: HdrHistogram) -> str:
    """One style's log: version, start and base time, a note on units, the legend, one interval."""
    start_ms = hist.get_start_time_stamp() or datetime.now(UTC).timestamp() * 1000
    end_ms = max(hist.get_end_time_stamp() or start_ms, start_ms)
    buf = io.StringIO()
    writer = HistogramLogWriter(buf)
    writer.output_log_format_version()
    writer.output_comment(f"labkit: delivery latency of the '{style}' style, values in microseconds (created -> processed)")
    started = datetime.fromtimestamp(start_ms / 1000, UTC).isoformat(sep=" ")
    # StartTime and BaseTime must print the same number: a reader skips intervals that seem to start before StartTime
    buf.write(f"#[StartTime: {start_ms / 1000:f} (seconds since epoch), {started}]\n")
    writer.output_base_time(start_ms)
    writer.output_legend()
    # the interval line as HdrHistogram writes it (the Python writer floors the max to whole units)
    payload = hist.encode().decode("ascii")
    buf.write(f"{0.0:.3f},{(end_ms - start_ms) / 1000:.3f},{hist.get_max_value() / US_PER_MS:.3f},{payload}\n")
    return buf.getvalue()


def write_latency_logs(run_dir: str | os.PathLike[str], histograms: Mapping[str, HdrHistogram]) -> list[Path]:
    """Write ``latency-<style>.hlog`` per style into ``run_dir``; the paths written."""
    paths = []
    for style, hist in histograms.items():
        path = log_path(Path(run_dir), style)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_log_text(style, hist), encoding="utf-8")
        paths.append(path)
    return paths


def load_latency_log(path: str | os.PathLike[str]) -> HdrHistogram:
    """Every interval of one ``.hlog`` file added into one histogram (µs)."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"{path}: no such latency log")
    total = new_histogram()
    reader = HistogramLogReader(str(path), new_histogram())
    try:
        while True:
            interval = reader.get_next_interval_histogram()
            if interval is None:
                break
            total.add(interval)
    except (ValueError, TypeError, OSError) as exc:
        raise ResultsError(f"{path}: corrupted latency log ({exc.__class__.__name__})") from None
    finally:
        reader.close()
    return total


def load_latency_logs(run_dir: str | os.PathLike[str]) -> dict[str, HdrHistogram]:
    """``{style: histogram (µs)}`` from a run folder's ``latency-<style>.hlog`` files."""
    folder = Path(run_dir)
    if folder.is_file():  # a summary.json: its run folder
        folder = folder.parent
    paths = sorted(folder.glob(f"{PREFIX}*{SUFFIX}"))
    if not paths:
        raise ResultsError(f"{folder}: no latency logs ({PREFIX}<style>{SUFFIX})")
    return {p.name[len(PREFIX) : -len(SUFFIX)]: load_latency_log(p) for p in paths}
