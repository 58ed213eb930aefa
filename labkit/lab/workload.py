"""Seeded arrival processes: when each event is published, and what it carries.

The same ``WorkloadSettings`` always give the same arrival offsets and the
same payload bytes, so each delivery style sees an identical stream.
"""

from __future__ import annotations

import csv
import math
import random
import string
from dataclasses import dataclass
from pathlib import Path

from labkit.config import WorkloadSettings
from labkit.errors import ConfigError

_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Workload:
    """Arrival offsets (seconds from the start) and a payload for each event."""

    settings: WorkloadSettings
    offsets_s: tuple[float, ...]
    payloads: tuple[dict[str, object], ...]

    def __len__(self) -> int:
        return len(self.offsets_s)

    @property
    def span_s(self) -> float:
        return self.offsets_s[-1] if self.offsets_s else 0.0


def constant_arrivals(rate: float, duration: float) -> list[float]:
    n = int(math.floor(rate * duration + 1e-9))
    return [k / rate for k in range(n)]


def poisson_arrivals(rate: float, duration: float, rng: random.Random) -> list[float]:
    out: list[float] = []
    t = rng.expovariate(rate)
    while t < duration:
        out.append(t)
        t += rng.expovariate(rate)
    return out


def bursty_arrivals(rate: float, duration: float, on_s: float, off_s: float, rng: random.Random) -> list[float]:
    """On/off: Poisson bursts during 'on' windows, silence during 'off'; the mean rate stays ``rate``."""
    period = on_s + off_s
    rate_on = rate * period / on_s
    out: list[float] = []
    start = 0.0
    while start < duration:
        t = start + rng.expovariate(rate_on)
        end = min(start + on_s, duration)
        while t < end:
            out.append(t)
            t += rng.expovariate(rate_on)
        start += period
    return out


def trace_arrivals(path: str, duration: float) -> list[float]:
    """Timestamps (seconds) from a CSV: the first numeric column; shifted to start at 0."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"workload.trace_path: no such file {path}")
    times: list[float] = []
    with p.open(newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
                continue
            try:
                times.append(float(row[0]))
            except ValueError:
                if lineno == 1:
                    continue  # a header line
                raise ConfigError(f"{path}:{lineno}: not a timestamp: {row[0]!r}") from None
    if not times:
        raise ConfigError(f"{path}: holds no timestamps")
    times.sort()
    t0 = times[0]
    return [t - t0 for t in times if t - t0 < duration]


def make_payload(index: int, size: int, rng: random.Random) -> dict[str, object]:
    """A JSON object whose compact encoding is ``size`` bytes (for sizes >= 32)."""
    head = {"seq": index, "pad": ""}
    overhead = len(f'{{"seq":{index},"pad":""}}')
    head["pad"] = "".join(rng.choices(_ALPHABET, k=max(0, size - overhead)))
    return head


def build_workload(settings: WorkloadSettings) -> Workload:
    rng = random.Random(settings.seed)
    if settings.arrival == "constant":
        offsets = constant_arrivals(settings.rate_per_s, settings.duration_s)
    elif settings.arrival == "poisson":
        offsets = poisson_arrivals(settings.rate_per_s, settings.duration_s, rng)
    elif settings.arrival == "bursty":
        offsets = bursty_arrivals(settings.rate_per_s, settings.duration_s, settings.burst_on_s, settings.burst_off_s, rng)
    else:
        assert settings.trace_path is not None
        offsets = trace_arrivals(settings.trace_path, settings.duration_s)
    if len(offsets) > settings.max_events:
        raise ConfigError(f"workload: {len(offsets)} events exceed max_events={settings.max_events}; lower the rate or duration")
    payload_rng = random.Random(settings.seed + 1)
    payloads = tuple(make_payload(i, settings.payload_bytes, payload_rng) for i in range(len(offsets)))
    return Workload(settings=settings, offsets_s=tuple(offsets), payloads=payloads)
