"""A consumer's view of itself, written to a JSON file the runner reads.

The runner lives in another process and may read at any moment, so the file
is replaced atomically (write a temporary file, then ``os.replace``): a reader
sees the previous complete file or the next one, never half of one.

Written every 0.5 s and once more at shutdown::

    {"role": "receiver" | "poller", "pid": int, "cpu_s": float,
     "wire": {"bytes_in": int, "bytes_out": int, "connections": int},
     "counters": {...},
     "histograms": {name: {"count", "sum_us", "hdr"}}}   (the latency histograms, encoded)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from hdrh.histogram import HdrHistogram

from labkit.wire.metering import new_histogram, process_cpu_s, record_us

WRITE_EVERY_S = 0.5


class Latency:
    """An HdrHistogram (µs) with a running sum, so a summary never walks every bucket.

    ``HdrHistogram.get_mean_value`` iterates over all ~23,000 buckets in pure
    Python (about 40 ms); a poller fleet summarises twice a second and cannot
    stall its event loop that long, so the mean comes from the running sum and
    the percentiles from one pass of ``get_percentile_to_value_dict``.
    """

    __slots__ = ("count", "hist", "sum_us")

    def __init__(self) -> None:
        self.hist: HdrHistogram = new_histogram()
        self.count = 0
        self.sum_us = 0.0

    def record(self, value_us: float) -> None:
        record_us(self.hist, value_us)
        self.count += 1
        self.sum_us += max(value_us, 0.0)

    def record_counts(self, counts: Mapping[int, int], sum_us: float) -> None:
        """Add values already tallied: ``counts`` maps a value in µs (within the histogram's range) to how often it occurred.

        For a fleet that receives thousands of values per batch: one ``record_value`` per distinct value.
        """
        hist = self.hist
        for value, n in counts.items():
            hist.record_value(value, n)
            self.count += n
        self.sum_us += sum_us

    def export(self) -> dict[str, Any]:
        """JSON-safe data another process merges exactly (``labkit.consumers.processes``)."""
        return {"count": self.count, "sum_us": self.sum_us, "hdr": self.hist.encode().decode("ascii")}

    def add_exported(self, part: Mapping[str, Any]) -> None:
        """Add an ``export()`` of another histogram to this one (``HdrHistogram.add``: exact)."""
        if part.get("count"):
            self.hist.add(HdrHistogram.decode(part["hdr"]))
            self.count += int(part["count"])
            self.sum_us += float(part["sum_us"])

    def summary_ms(self) -> dict[str, float | None]:
        """mean, p50, p90, p99, max in milliseconds (None when empty), as ``histogram_summary_ms``."""
        if self.count == 0:
            return {"mean": None, "p50": None, "p90": None, "p99": None, "max": None}
        pct = self.hist.get_percentile_to_value_dict([50, 90, 99])
        return {
            "mean": self.sum_us / self.count / 1000,
            "p50": pct[50] / 1000,
            "p90": pct[90] / 1000,
            "p99": pct[99] / 1000,
            "max": self.hist.get_max_value() / 1000,
        }


def write_atomic(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class StatsWriter:
    """Writes a consumer's stats file periodically and at shutdown.

    ``counters`` and ``wire`` are callables so the file always shows the
    values of the moment it is written, with no copying in between.
    """

    def __init__(
        self,
        role: str,
        path: str | None,
        counters: Callable[[], dict[str, Any]],
        wire: Callable[[], dict[str, int]],
        every_s: float = WRITE_EVERY_S,
        histograms: Callable[[], dict[str, Latency]] | None = None,
    ) -> None:
        self.role = role
        self._histograms = histograms
        self.path = path
        self._counters = counters
        self._wire = wire
        self._every_s = every_s
        self._task: asyncio.Task[None] | None = None

    def snapshot(self) -> dict[str, Any]:
        out = {
            "role": self.role,
            "pid": os.getpid(),
            "cpu_s": process_cpu_s(),
            "wire": self._wire(),
            "counters": self._counters(),
        }
        if self._histograms is not None:  # what a supervisor of several processes merges exactly
            out["histograms"] = {name: lat.export() for name, lat in self._histograms().items()}
        return out

    def _encode(self) -> bytes:
        return orjson.dumps(self.snapshot(), option=orjson.OPT_NON_STR_KEYS)

    def write(self) -> None:
        """Write the file now (a no-op without a path)."""
        if self.path:
            write_atomic(self.path, self._encode())

    def write_snapshot(self) -> None:
        """Write the counters of this very moment to ``<path>.snap`` (asked for by SIGUSR1)."""
        if self.path:
            with contextlib.suppress(OSError):
                write_atomic(self.path + ".snap", self._encode())

    def start(self) -> None:
        """Write the file at once (a sign of life the runner can wait for), then every ``every_s``."""
        if self.path and self._task is None:
            with contextlib.suppress(OSError):
                self.write()
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"{self.role}-stats")

    async def stop(self) -> None:
        """Stop the periodic writes and write the final file."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(OSError):
            self.write()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.path is not None
        while True:
            await asyncio.sleep(self._every_s)
            data = self._encode()  # the counters are read on the loop, consistent with each other
            try:
                # The file system can block for hundreds of ms under I/O load; the event loop
                # (and a fleet's timetable) must not wait for it.
                await loop.run_in_executor(None, write_atomic, self.path, data)
            except OSError:  # a full disk or a removed directory must not kill the consumer
                pass
