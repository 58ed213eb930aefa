"""Every request's latency, exactly: per-second HdrHistograms, corrected for coordinated omission.

Locust rounds its percentiles (147 ms becomes 150) and, like every closed-loop
load generator, omits the requests a user could not send while it waited for
a slow answer (coordinated omission). ``LatencyRecorder`` keeps, per second of
completion, two HdrHistograms of every request (µs, three significant
digits): the latencies as measured, and the same corrected at the scenario's
intended interval (``record_corrected_value``: a request that took 3.5
intervals also stands for the 3 requests its user could not send). It also
counts, per second, the requests that started late (their user's previous
request overran its slot) and the slots that were dropped altogether.

A recorder's ``take()`` is a delta: encoded histograms and counts since the
last take. Workers send deltas to the master, which keeps them encoded in a
``MergedLatency`` (a few hundred bytes a second, however long the run) and
sums them exactly per second when it writes:

- ``<prefix>_latency_corrected.hlog`` and ``<prefix>_latency_raw.hlog``: the
  HdrHistogram interval log format (one interval a second, values in µs,
  ``Interval_Max`` in ms), read by the usual HdrHistogram plotting tools;
- ``<prefix>_latency.json``: per-second request, late and dropped counts, the
  totals each node reported, and the correction interval.

``read_latency`` reads them back and ``LatencyLog.window`` sums any stretch of
seconds (a step's steady part). Nothing here imports Locust or httpx: it runs
under gevent on workers and in the analysis alike.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from labkit.capacity.lag import HIST_MAX_US, HIST_MIN_US, new_histogram, record_us, summary_ms
from labkit.wire import jsonsafe

LATENCY_SCHEMA_VERSION = 1
KINDS = ("corrected", "raw")
COUNTS = ("requests", "late", "dropped", "failures")


def latency_paths(prefix: str | os.PathLike[str]) -> dict[str, Path]:
    """The files a run's latency histograms are written to, by what they hold."""
    p = str(prefix)
    return {"json": Path(f"{p}_latency.json"), "corrected": Path(f"{p}_latency_corrected.hlog"), "raw": Path(f"{p}_latency_raw.hlog")}


class LatencyRecorder:
    """One process's requests: per-second raw and corrected histograms and late/dropped counts."""

    def __init__(self, interval_s: float) -> None:
        self.interval_us = max(0, int(interval_s * 1e6))  # 0: no correction
        self._hist: dict[int, tuple[HdrHistogram, HdrHistogram]] = {}
        self._counts: dict[int, list[int]] = {}
        self.totals = dict.fromkeys(COUNTS, 0)

    def _slot(self, now_s: float) -> tuple[int, list[int]]:
        sec = int(now_s)
        counts = self._counts.get(sec)
        if counts is None:
            counts = self._counts[sec] = [0] * len(COUNTS)
        return sec, counts

    def record(self, latency_ms: float, now_s: float, failed: bool = False) -> None:
        """One request that completed at ``now_s`` (unix seconds) after ``latency_ms``."""
        sec, counts = self._slot(now_s)
        pair = self._hist.get(sec)
        if pair is None:
            pair = self._hist[sec] = (new_histogram(), new_histogram())
        value = min(max(int(latency_ms * 1000), HIST_MIN_US), HIST_MAX_US)
        pair[0].record_corrected_value(value, self.interval_us)
        record_us(pair[1], value)
        counts[0] += 1
        self.totals["requests"] += 1
        if failed:
            counts[3] += 1
            self.totals["failures"] += 1

    def late(self, now_s: float, dropped: int = 0) -> None:
        """A request that starts after its slot; ``dropped`` slots its user skipped before it."""
        _, counts = self._slot(now_s)
        counts[1] += 1
        counts[2] += dropped
        self.totals["late"] += 1
        self.totals["dropped"] += dropped

    def take(self) -> dict[str, Any]:
        """Everything since the last take, encoded (a worker's report to the master), and forget it."""
        seconds: dict[str, Any] = {}
        for sec, counts in self._counts.items():
            entry: dict[str, Any] = dict(zip(COUNTS, counts))
            pair = self._hist.get(sec)
            if pair is not None:
                entry["corrected"] = pair[0].encode().decode()
                entry["raw"] = pair[1].encode().decode()
            seconds[str(sec)] = entry
        self._hist.clear()
        self._counts.clear()
        return {"interval_us": self.interval_us, "seconds": seconds}


@dataclass
class MergedLatency:
    """Deltas from every node, kept encoded, summed exactly per second when written."""

    interval_us: int = 0
    parts: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    counts: dict[int, list[int]] = field(default_factory=dict)
    nodes: dict[str, dict[str, int]] = field(default_factory=dict)

    def merge(self, delta: dict[str, Any], node: str) -> None:
        if not delta.get("seconds") and node in self.nodes:
            return
        self.interval_us = int(delta.get("interval_us") or self.interval_us)
        totals = self.nodes.setdefault(node, dict.fromkeys(COUNTS, 0))
        for key, entry in (delta.get("seconds") or {}).items():
            sec = int(key)
            counts = self.counts.setdefault(sec, [0] * len(COUNTS))
            for i, name in enumerate(COUNTS):
                n = int(entry.get(name, 0))
                counts[i] += n
                totals[name] += n
            if "corrected" in entry:
                self.parts.setdefault(sec, []).append((entry["corrected"], entry["raw"]))

    def totals(self) -> dict[str, int]:
        return {name: sum(c[i] for c in self.counts.values()) for i, name in enumerate(COUNTS)}

    def window(self, start_s: float, end_s: float) -> tuple[int, int, float | None]:
        """``(requests, failures, corrected p99 in ms)`` of the seconds in ``[start_s, end_s]`` merged so far."""
        corrected = new_histogram()
        requests = failures = 0
        for sec, counts in self.counts.items():
            if start_s <= sec <= end_s:
                requests += counts[0]
                failures += counts[3]
                for c, _ in self.parts.get(sec, ()):
                    corrected.decode_and_add(c.encode())
        return requests, failures, summary_ms(corrected)["p99"]

    def histograms(self) -> dict[int, tuple[HdrHistogram, HdrHistogram]]:
        """``{second: (corrected, raw)}``, each the exact sum of every node's histograms."""
        out = {}
        for sec, pieces in sorted(self.parts.items()):
            corrected, raw = new_histogram(), new_histogram()
            for c, r in pieces:
                corrected.decode_and_add(c.encode())
                raw.decode_and_add(r.encode())
            out[sec] = (corrected, raw)
        return out

    def write(self, prefix: str | os.PathLike[str]) -> dict[str, Path]:
        """Write the .hlog files and the counts JSON; returns their paths."""
        paths = latency_paths(prefix)
        paths["json"].parent.mkdir(parents=True, exist_ok=True)
        hists = self.histograms()
        start = min(hists) if hists else 0
        for i, kind in enumerate(KINDS):
            write_hlog(paths[kind], {sec: pair[i] for sec, pair in hists.items()}, start, kind)
        doc = {
            "schema_version": LATENCY_SCHEMA_VERSION,
            "unit": "us",
            "key": "completion second (unix)",
            "corrected_interval_s": self.interval_us / 1e6,
            "files": {kind: paths[kind].name for kind in KINDS},
            "totals": self.totals(),
            "nodes": self.nodes,
            "seconds": {str(sec): dict(zip(COUNTS, c)) for sec, c in sorted(self.counts.items())},
        }
        _atomic_write(paths["json"], jsonsafe.dumps(doc))
        return paths


def write_hlog(path: Path, by_second: dict[int, HdrHistogram], start: int, kind: str) -> None:
    """One interval line per second, relative to ``start`` (the log's StartTime and BaseTime)."""
    stamp = datetime.fromtimestamp(start, UTC).strftime("%a %b %d %H:%M:%S UTC %Y")
    lines = [
        "#[Histogram log format version 1.3]",
        f"#[labkit capacity: request latency, {kind}; values in microseconds, Interval_Max in milliseconds]",
        f"#[StartTime: {start:.3f} (seconds since epoch), {stamp}]",
        f"#[BaseTime: {start:.3f} (seconds since epoch)]",
        '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"',
    ]
    for sec, hist in sorted(by_second.items()):
        lines.append(f"{sec - start:.3f},1.000,{hist.get_max_value() / 1000:.3f},{hist.encode().decode()}")
    _atomic_write(path, "\n".join(lines) + "\n")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_hlog(path: str | os.PathLike[str]) -> dict[int, HdrHistogram]:
    """An interval log back as ``{unix second: histogram}``."""
    reader = HistogramLogReader(str(path), new_histogram())
    out: dict[int, HdrHistogram] = {}
    try:
        while True:
            hist = reader.get_next_interval_histogram()
            if hist is None:
                return out
            sec = round(hist.get_start_time_stamp() / 1000)
            if sec in out:
                out[sec].add(hist)
            else:
                out[sec] = hist
    finally:
        reader.close()


@dataclass(frozen=True)
class Window:
    """A stretch of seconds summed: exact histograms and counts."""

    corrected: HdrHistogram
    raw: HdrHistogram
    requests: int
    late: int
    dropped: int
    failures: int


@dataclass
class LatencyLog:
    """A run's latency files, read back."""

    corrected: dict[int, HdrHistogram]
    raw: dict[int, HdrHistogram]
    counts: dict[int, dict[str, int]]
    meta: dict[str, Any]

    def window(self, start_s: float | None = None, end_s: float | None = None) -> Window:
        """Seconds in ``[start_s, end_s]`` summed (None: unbounded)."""

        def inside(sec: int) -> bool:
            return (start_s is None or sec >= start_s) and (end_s is None or sec <= end_s)

        corrected, raw = new_histogram(), new_histogram()
        for sec, h in self.corrected.items():
            if inside(sec):
                corrected.add(h)
        for sec, h in self.raw.items():
            if inside(sec):
                raw.add(h)
        sums = dict.fromkeys(COUNTS, 0)
        for sec, c in self.counts.items():
            if inside(sec):
                for name in COUNTS:
                    sums[name] += int(c.get(name, 0))
        return Window(corrected, raw, sums["requests"], sums["late"], sums["dropped"], sums["failures"])


def read_latency(prefix: str | os.PathLike[str]) -> LatencyLog | None:
    """The latency files written with ``prefix``; None when the run has none."""
    paths = latency_paths(prefix)
    if not paths["json"].exists():
        return None
    meta = json.loads(paths["json"].read_text())
    if meta.get("schema_version") != LATENCY_SCHEMA_VERSION:
        raise ValueError(f"{paths['json']}: unknown latency schema_version {meta.get('schema_version')!r}")
    counts = {int(k): v for k, v in (meta.get("seconds") or {}).items()}
    return LatencyLog(read_hlog(paths["corrected"]), read_hlog(paths["raw"]), counts, meta)


def p99_ms(hist: HdrHistogram) -> float | None:
    return summary_ms(hist)["p99"]
