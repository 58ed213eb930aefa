"""Delivery lag, publish -> receiver record, measured precisely and cheaply.

A publisher learns each event's id and ``created_ns`` from the provider's
``201``. The receiver records ``(consumer, event_id, received_ns)`` in its
SQLite store the moment it processes a webhook. ``ReceiverRecords`` reads
that store read-only (WAL: the receiver is never blocked) and incrementally,
through the primary key, from the oldest event still awaiting delivery; the
lag is the receiver's own timestamp minus the provider's, both
``time.time_ns()`` on one host, so how often the store is read does not
change the numbers.

``LagHistograms`` keeps the samples in HdrHistograms (microseconds, three
significant digits), one per second of receive time, so a capacity run can
take exact percentiles over any step; Locust's own percentiles are rounded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from labkit.consumers.records import RecordReader
from labkit.wire import jsonsafe

LAG_SCHEMA_VERSION = 1

# The bounds of labkit.wire.metering's histograms (1 µs to 1 h, 3 digits). That module imports
# httpcore, which cannot be imported after gevent's monkey-patching, so Locust processes
# use these two helpers instead.
HIST_MIN_US, HIST_MAX_US, HIST_DIGITS = 1, 3_600_000_000, 3


def new_histogram() -> HdrHistogram:
    return HdrHistogram(HIST_MIN_US, HIST_MAX_US, HIST_DIGITS)


def record_us(hist: HdrHistogram, value_us: float) -> None:
    hist.record_value(min(max(int(value_us), HIST_MIN_US), HIST_MAX_US))


@dataclass(frozen=True, slots=True)
class LagSample:
    consumer: str
    event_id: int
    lag_us: float
    received_ns: int


@dataclass(frozen=True, slots=True)
class Overdue:
    consumer: str
    event_id: int
    waited_us: float


class LagTracker:
    """Events published by this process and the consumers that have not recorded them yet."""

    def __init__(self, consumers: Sequence[str], timeout_s: float = 30.0) -> None:
        self.consumers = tuple(consumers)
        self.timeout_ns = int(timeout_s * 1e9)
        self._pending: dict[int, tuple[int, set[str]]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def published(self, event_id: int, created_ns: int) -> None:
        if self.consumers:
            self._pending[event_id] = (created_ns, set(self.consumers))

    def oldest(self) -> int | None:
        """The smallest event id still awaited (the reader starts there)."""
        return min(self._pending) if self._pending else None

    def collect(self, rows: Iterable[tuple[str, int, int]]) -> list[LagSample]:
        """Lag samples for the rows that complete a pending (event, consumer); others are ignored."""
        out = []
        for consumer, event_id, received_ns in rows:
            entry = self._pending.get(event_id)
            if entry is None or consumer not in entry[1]:
                continue  # another worker's event, or one already counted
            created_ns, waiting = entry
            waiting.discard(consumer)
            if not waiting:
                del self._pending[event_id]
            out.append(LagSample(consumer, event_id, (received_ns - created_ns) / 1000, received_ns))
        return out

    def expire(self, now_ns: int) -> list[Overdue]:
        """Give up on deliveries older than the timeout; each one is a failed delivery."""
        out: list[Overdue] = []
        for event_id, (created_ns, waiting) in list(self._pending.items()):
            if now_ns - created_ns > self.timeout_ns:
                out.extend(Overdue(c, event_id, (now_ns - created_ns) / 1000) for c in sorted(waiting))
                del self._pending[event_id]
        return out


# Read-only, incremental reads of a receiver's record store; the store's module owns its SQL.
ReceiverRecords = RecordReader


class LagHistograms:
    """Per-second HdrHistograms of delivery lag (µs), mergeable across Locust workers."""

    def __init__(self) -> None:
        self.by_second: dict[int, HdrHistogram] = {}

    def record(self, sample: LagSample) -> None:
        sec = sample.received_ns // 1_000_000_000
        hist = self.by_second.get(sec)
        if hist is None:
            hist = self.by_second[sec] = new_histogram()
        record_us(hist, sample.lag_us)

    def take_encoded(self) -> dict[str, str]:
        """Encode and forget what was recorded (a worker's delta for its next report)."""
        out = {str(sec): h.encode().decode() for sec, h in self.by_second.items()}
        self.by_second.clear()
        return out

    def merge_encoded(self, data: dict[str, str]) -> None:
        for sec, enc in data.items():
            hist = self.by_second.get(int(sec))
            if hist is None:
                hist = self.by_second[int(sec)] = new_histogram()
            hist.decode_and_add(enc.encode() if isinstance(enc, str) else enc)

    def window(self, start_s: float | None = None, end_s: float | None = None) -> HdrHistogram:
        """All samples received in seconds ``[start_s, end_s]`` merged into one histogram."""
        total = new_histogram()
        for sec, hist in self.by_second.items():
            if (start_s is None or sec >= start_s) and (end_s is None or sec <= end_s):
                total.add(hist)
        return total

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": LAG_SCHEMA_VERSION,
            "unit": "us",
            "key": "receive second (unix)",
            "seconds": {str(sec): h.encode().decode() for sec, h in sorted(self.by_second.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LagHistograms:
        if data.get("schema_version") != LAG_SCHEMA_VERSION:
            raise ValueError(f"unknown lag histogram schema_version {data.get('schema_version')!r}")
        out = cls()
        out.merge_encoded(data.get("seconds", {}))
        return out

    def write(self, path: str | os.PathLike[str]) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(jsonsafe.dumps(self.to_json()))
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> LagHistograms:
        return cls.from_json(json.loads(Path(path).read_text()))


def summary_ms(hist: HdrHistogram) -> dict[str, float | int | None]:
    """count, p50, p90, p99, p99.9 and max in milliseconds (None when empty)."""
    n = hist.get_total_count()
    if n == 0:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "p99.9": None, "max": None}
    pct = hist.get_percentile_to_value_dict([50, 90, 99, 99.9])
    return {
        "count": int(n),
        "p50": pct[50] / 1000,
        "p90": pct[90] / 1000,
        "p99": pct[99] / 1000,
        "p99.9": pct[99.9] / 1000,
        "max": hist.get_max_value() / 1000,
    }
