"""The decision policy, stated once: the planner (``labkit.runs.decision_runs``) and the report use these.

These are choices, not measurements, and the report says so where it uses them:

- ``HEADROOM``: poll at 80 % of the interval the latency target allows, so a
  poller that is a little late still meets the target;
- ``POLL_FLOOR_S``: polling faster than every 10 ms is a busy loop, not an
  integration, so a target that needs it leaves polling no interval;
- the interval rule: a timetabled poller's p99 delay is 0.99 T + RTT, so the
  target allows T_target = (p99 target - RTT) / 0.99, and we poll at
  ``HEADROOM`` x T_target, rounded to two significant digits, at most an hour;
- ``LOAD_TARGET``: a provider process is planned at 70 % of one core, so the
  processes a requirement needs are CPU per second / 0.7, rounded up;
- ``TIE_SE``: two measured numbers closer than two standard errors of their
  difference are a tie, and the report names what would separate them;
- ``RUN_NOISE``: a cost measured in one run (CPU per event, bytes per event)
  carries at least this relative uncertainty on a shared machine, besides its
  counting error; it is a stated allowance, not a measured spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HEADROOM = 0.8
POLL_FLOOR_S = 0.01
MAX_POLL_INTERVAL_S = 3600.0
P99_FRACTION = 0.99
LONG_POLL_WAIT_S = 30.0
RECONCILE_S = 300.0  # a reconciling poller only has to catch what push gave up on
CLEAR_MARGIN = 3.0  # lambda T this many times the crossover: polling clearly cheaper
LOAD_TARGET = 0.7
TIE_SE = 2.0
RUN_NOISE = 0.1
SECONDS_PER_MONTH = 30 * 24 * 3600


def round_sig(x: float, digits: int = 2) -> float:
    """``x`` to ``digits`` significant digits (zero and negatives unchanged)."""
    if x <= 0:
        return x
    return round(x, digits - 1 - int(math.floor(math.log10(x))))


@dataclass(frozen=True)
class Interval:
    """The poll interval a latency target allows at a round trip."""

    t_target_s: float  # the longest T whose p99 delay still meets the target
    t_rec_s: float | None  # HEADROOM x t_target, rounded; None when below the floor

    @property
    def possible(self) -> bool:
        return self.t_rec_s is not None


def poll_interval(target_p99_ms: float, rtt_ms: float) -> Interval:
    """T = HEADROOM x (p99 - RTT) / 0.99, two significant digits, within [POLL_FLOOR_S, an hour]; None below the floor."""
    t_target = (target_p99_ms - rtt_ms) / P99_FRACTION / 1000
    if HEADROOM * t_target < POLL_FLOOR_S:
        return Interval(t_target, None)
    return Interval(t_target, round_sig(min(HEADROOM * t_target, MAX_POLL_INTERVAL_S), 2))


def processes_needed(cpu_s_per_event: float, events_per_s: float) -> int:
    """Provider processes for ``events_per_s`` deliveries at ``cpu_s_per_event`` each, each at LOAD_TARGET of a core."""
    busy = cpu_s_per_event * events_per_s
    return max(1, math.ceil(busy / LOAD_TARGET - 1e-9))


def gb_per_month(bytes_per_event: float, rate_per_s: float, consumers: int) -> float:
    """Bytes per event and consumer, for every consumer at ``rate_per_s``, over a 30-day month, in GB."""
    return bytes_per_event * rate_per_s * SECONDS_PER_MONTH * consumers / 1e9


def tie(a: float, se_a: float, b: float, se_b: float) -> bool:
    """True when ``a`` and ``b`` differ by less than TIE_SE standard errors of their difference."""
    return abs(a - b) <= TIE_SE * math.hypot(se_a, se_b)
