"""What a run costs on this machine beyond its publishing: start-up, warm-up, drain and the report, measured and cached.

``labkit decide --max-minutes M`` sizes each run's publishing so that the whole
command ends near M minutes. For that it needs, per candidate (a style, or
long polling):

- ``startup_s``: from the command starting the run to the first publish and
  from the last delivery to the run's files written (servers started,
  consumers subscribed or connected, the summary and events written), fitted
  as ``fixed_s + per_consumer_s x consumers`` from the runs made here;
- the drain: a timetabled poller waits for its last poll (one interval); a
  push waits for the deliveries its provider has not sent yet, from the
  deliveries per second one provider sustained in the runs made here;
- ``report_s``: writing the report (figures included).

The first ``labkit decide`` on a machine probes each candidate it has not
measured yet with a short run (one consumer, a few seconds of events) and
every run it makes adds an observation, so the model follows the machine. The
cache is per machine (``labkit.model.calibration.fingerprint``), in the user's
cache folder, never under results/. Until a candidate is measured its figures
are stated defaults, and ``source`` says so.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from labkit.config import RunSettings
from labkit.model.calibration import cache_dir, fingerprint, fingerprint_id
from labkit.wire import jsonsafe

DEFAULT_FIXED_S = 10.0
DEFAULT_PER_CONSUMER_S = 0.005
DEFAULT_REPORT_S = 8.0  # the report took 3-5 s in each decide measured here (2026-12-07); 20 s left a first use at 0.88 M
# Deliveries per second one provider sustains, a stated default until a run here falls behind: the rate the planner
# caps a push run at (``MachineLimits.max_deliveries_per_s``), so a run at its cap is predicted to keep up. A lower
# default (500) predicted every run at the cap to publish for twice its time: the public live feed at --max-minutes 3
# planned 52-80 s for runs that took 29-47 s and ended at 0.74 M.
DEFAULT_THROUGHPUT_PER_S = 1000.0
MAX_SAMPLES = 12
# The cache's version: a cache of another version keeps its report time and measures every candidate again. Version 2:
# runs before it counted the run's own publisher falling behind the timetable as start-up (httpx's pool at 1,000
# events/s over TLS, fixed in labkit.lab.session): a webhook run of 714 subscribers "started" in 382 s where it
# starts in 15 s now, so those samples would cap every later run. Version 3: runs before it waited 5 s at each TLS
# server's stop and subscribed webhooks one at a time (a webhook run of 2,000 over TLS: 41.8 s of start-up, now 10.3 s);
# a decide with both in its cache over-predicted the webhook by 31 s, and its correction, applied to every candidate,
# gave polling 393 s of publishing and left the last runs too little to start 2,000 consumers.
CACHE_VERSION = 3
PROBE_RATE_PER_S = 2.0
# A run whose publishing (the session's window less the drain) outlasted its timetable by more than this fell behind
# it: the time is publishing, not start-up.
PUBLISH_BEHIND_S = 2.0
PROBE_DURATION_S = 3.0


@dataclass(frozen=True)
class RunCost:
    """One candidate's cost beyond publishing, from the runs made on this machine."""

    samples: tuple[tuple[int, float], ...] = ()  # (consumers, start-up seconds)
    throughput_per_s: float | None = None  # the most deliveries per second a run of it sustained here

    @property
    def measured(self) -> bool:
        return bool(self.samples)

    def fit(self) -> tuple[float, float]:
        """(fixed_s, per_consumer_s): least squares over the samples when they span consumer counts, else their mean.

        Least squares on purpose, not a fit robust to the slow runs: a slow run is
        the signal. Over-predicting costs only time the feedback (``labkit.runs.budget``)
        hands to the later runs; under-predicting starts more consumers than the budget
        holds. (Runs of 250 and 714 consumers once looked superlinear here, 40-58 s and
        382 s: that was the run's publisher falling behind at 1,000 events/s, counted as
        start-up; measured since, over the cross-region proxy with TLS, start-up is about
        linear up to 2,000 consumers: see docs/decide.md.)
        """
        if not self.samples:
            return DEFAULT_FIXED_S, DEFAULT_PER_CONSUMER_S
        xs = [float(n) for n, _ in self.samples]
        ys = [s for _, s in self.samples]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mx) ** 2 for x in xs)
        if var == 0:
            return max(my - DEFAULT_PER_CONSUMER_S * mx, 0.0), DEFAULT_PER_CONSUMER_S
        slope = max(sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var, 0.0)
        return max(my - slope * mx, 0.0), slope

    @property
    def most_consumers(self) -> int:
        """The most consumers a run of this candidate started here (0 before any run)."""
        return max((n for n, _ in self.samples), default=0)

    def startup_s(self, consumers: int) -> float:
        """Between measured consumer counts, interpolated (the medians there, not the line); beyond them, the fit's slope."""
        fixed, per = self.fit()
        if len({n for n, _ in self.samples}) < 2:
            return fixed + per * consumers
        by_n: dict[int, list[float]] = {}
        for n, sec in self.samples:
            by_n.setdefault(n, []).append(sec)
        points = sorted((n, _median(v)) for n, v in by_n.items())
        if consumers <= points[0][0]:
            return points[0][1]
        for (n0, s0), (n1, s1) in zip(points, points[1:], strict=False):
            if consumers <= n1:
                return s0 + (s1 - s0) * (consumers - n0) / (n1 - n0)
        n_last, s_last = points[-1]
        return s_last + per * (consumers - n_last)


def _median(xs: list[float]) -> float:
    ys = sorted(xs)
    mid = len(ys) // 2
    return ys[mid] if len(ys) % 2 else (ys[mid - 1] + ys[mid]) / 2


@dataclass(frozen=True)
class Overhead:
    """Every candidate's ``RunCost`` and the report's time, for this machine."""

    runs: dict[str, RunCost] = field(default_factory=dict)
    report_s: float | None = None
    # This command's own correction, never cached: how much longer (or shorter) than predicted the runs made so far
    # took, added to each later run's start-up. The machine's load moves every candidate alike, so one run's error
    # informs the others'.
    bias_s: float = 0.0

    def startup_s(self, label: str, consumers: int) -> float:
        """A candidate's predicted start-up (and wind-down) with this command's correction."""
        return max(self.cost(label).startup_s(consumers) + self.bias_s, 0.0)

    def cost(self, label: str) -> RunCost:
        return self.runs.get(label, RunCost())

    def run_s(self, label: str, consumers: int, duration_s: float, deliveries_per_s: float, drain_interval_s: float) -> float:
        """The predicted wall time of one run: start-up, publishing, drain (an interval, or the push backlog)."""
        return self.startup_s(label, consumers) + duration_s * self.slope(label, deliveries_per_s) + drain_interval_s

    def slope(self, label: str, deliveries_per_s: float) -> float:
        """Seconds of wall time per second of publishing: 1, or more when the provider cannot keep up with the pushes."""
        thr = self.cost(label).throughput_per_s or DEFAULT_THROUGHPUT_PER_S
        return max(1.0, deliveries_per_s / thr) if deliveries_per_s > 0 else 1.0

    @property
    def report_seconds(self) -> float:
        return self.report_s if self.report_s is not None else DEFAULT_REPORT_S

    def source(self, label: str) -> str:
        c = self.cost(label)
        if not c.measured:
            return f"{label}: stated defaults ({DEFAULT_FIXED_S:g} s + {DEFAULT_PER_CONSUMER_S:g} s per consumer), not measured here yet"
        fixed, per = c.fit()
        return f"{label}: {fixed:.1f} s + {per * 1000:.2f} ms per consumer, from {len(c.samples)} run(s) on this machine"

    def with_run(self, label: str, consumers: int, startup_s: float, throughput_per_s: float | None) -> Overhead:
        c = self.cost(label)
        samples = (*c.samples, (int(consumers), round(max(startup_s, 0.0), 3)))[-MAX_SAMPLES:]
        thr = max(x for x in (c.throughput_per_s, throughput_per_s) if x is not None) if (c.throughput_per_s or throughput_per_s) else None
        return replace(self, runs={**self.runs, label: RunCost(samples, thr)})

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": CACHE_VERSION,
            "fingerprint": fingerprint(),
            "report_s": self.report_s,
            "runs": {k: asdict(v) for k, v in sorted(self.runs.items())},
        }


def key(label: str, network: str, tls: bool) -> str:
    """The cache's key for a candidate: start-up differs with the network profile's proxy and with TLS handshakes."""
    return f"{label} | {network} | {'tls' if tls else 'plain'}"


def key_of(label: str, settings: RunSettings) -> str:
    return key(label, settings.network.name if settings.network is not None else "loopback", settings.tls)


def cache_path() -> Path:
    return cache_dir() / f"decide-overhead-{fingerprint_id(fingerprint())}.json"


def load() -> Overhead:
    """This machine's cached overhead, or an empty one (every figure a stated default); a damaged cache is measured again.

    A cache of another ``CACHE_VERSION`` keeps only the report's time: its runs are measured again.
    """
    try:
        data = json.loads(cache_path().read_text())
        current = data.get("version") == CACHE_VERSION
        runs = {
            str(k): RunCost(tuple((int(n), float(s)) for n, s in v.get("samples", [])), v.get("throughput_per_s"))
            for k, v in ((data.get("runs") or {}) if current else {}).items()
        }
        report = data.get("report_s")
        return Overhead(runs, float(report) if report is not None else None)
    except (OSError, ValueError, TypeError, AttributeError):
        return Overhead()


def save(ov: Overhead) -> None:
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(jsonsafe.dumps(ov.as_dict(), indent=2, sort_keys=True))
    os.replace(tmp, path)


def workload_of(summary: dict[str, Any]) -> tuple[float, list[dict[str, Any]]]:
    """A finished run's workload duration (s) and its styles' blocks, from its summary."""
    duration = float((summary.get("workload") or {}).get("duration_s") or 0.0)
    return duration, [b for b in (summary.get("styles") or {}).values() if isinstance(b, dict)]


def split(elapsed_s: float, summary: dict[str, Any]) -> tuple[float, float, float]:
    """A finished run's wall time as (start-up and wind-down, publishing, drain), from its summary.

    Publishing follows the timetable, so it takes the workload's duration, or
    longer when the publisher fell behind it: the session's window (``cpu.window_s``,
    from the first publish to the end of the drain) less the drain. The drain is
    what the session measured; the rest is starting the servers and consumers,
    stopping them and writing the files. (A publisher that fell behind was once
    counted as start-up here: 222 s of a webhook run of 714 subscribers.)
    """
    duration, blocks = workload_of(summary)
    drain = max((float(b.get("drain_s") or 0.0) for b in blocks), default=0.0)
    window = max((float((b.get("cpu") or {}).get("window_s") or 0.0) for b in blocks), default=0.0)
    behind = window - drain - duration  # the window also holds the start delay and the counters' reads: under a second
    publishing = min(window - drain, max(elapsed_s - drain, duration)) if behind > PUBLISH_BEHIND_S else duration
    return elapsed_s - publishing - drain, publishing, drain


def observe(ov: Overhead, label: str, consumers: int, elapsed_s: float, summary: dict[str, Any]) -> Overhead:
    """``ov`` with one finished run added: start-up = elapsed - publishing - drain, and the deliveries per second it sustained."""
    startup, publishing, drain = split(elapsed_s, summary)
    duration, blocks = workload_of(summary)
    delivered = sum(float(b.get("delivered") or 0.0) for b in blocks)
    busy = publishing + drain
    # only a run whose provider fell behind (a drain of its own) says how many deliveries per second it sustains
    saturated = drain > max(1.0, 0.05 * duration) and delivered > 0
    return ov.with_run(label, consumers, startup, delivered / busy if saturated else None)


def probe(ov: Overhead, points: list[tuple[str, RunSettings]], log: Callable[[str], None]) -> Overhead:
    """Measure each (label, settings) not measured yet with a short run (one consumer, a few seconds); the result is cached."""
    from labkit.lab import pipeline

    for label, settings in points:
        k = key_of(label, settings)
        if ov.cost(k).measured:
            continue
        data = settings.model_dump()
        data["workload"] = {**data["workload"], "rate_per_s": PROBE_RATE_PER_S, "duration_s": PROBE_DURATION_S}
        data.update(pollers=1, subscribers=1, poll_interval_s=min(settings.poll_interval_s, 0.5), drain_timeout_s=30.0)
        with tempfile.TemporaryDirectory(prefix="labkit-probe-") as tmp:
            data["out_dir"] = tmp
            small = RunSettings.model_validate(data)
            log(f"{label}: measuring start-up and drain on this machine (once; cached)")
            started = time.monotonic()
            result = pipeline.run(small, results_dir=Path(tmp) / "probe")
            ov = observe(ov, k, 1, time.monotonic() - started, result.summary)
        save(ov)
    return ov
