"""How many events a point needs before "measured agrees with the model" means something.

A point agrees when its measured mean latency is within a bound of the model:
10 % of the model, or 2 ms where the model is under 20 ms (where a tenth would
be lost in scheduling noise). The check is only worth making when the bound is
several standard errors of the measurement wide; otherwise a correct model
fails by chance (at 2.2 standard errors, about one point in 36) and a wrong
one passes. ``K`` = 4 standard errors makes a chance miss about 1 in 16,000.

The standard error of a mean latency is ``sd / sqrt(n)``. For a poller on a
fixed timetable the detection delay is uniform on [0, T], so ``sd = T /
sqrt(12)`` per event. An empty-poll ratio is a share of independent polls
(Poisson arrivals), so its standard error is binomial, ``sqrt(p (1 - p) /
polls)``; its bound is absolute (0.05), since 10 % of a ratio near zero would
need millions of polls.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

K = 4.0
REL_BOUND = 0.10
FLOOR_MS = 2.0
FLOOR_BELOW_MS = 20.0
RATIO_BOUND = 0.05


def latency_bound_ms(model_ms: float) -> float:
    """The agreement bound of a mean latency: 10 % of the model, or 2 ms where the model is under 20 ms."""
    if model_ms < 0:
        raise ValueError("a latency model is not negative")
    return FLOOR_MS if model_ms < FLOOR_BELOW_MS else REL_BOUND * model_ms


def uniform_sd(width: float) -> float:
    """Standard deviation of a uniform delay on [0, width] (a timetabled poll: width = T)."""
    return width / math.sqrt(12)


def sample_sd(values: Sequence[float]) -> float:
    """The sample standard deviation of measured latencies (0 for fewer than two)."""
    return statistics.stdev(values) if len(values) >= 2 else 0.0


def mean_se(sd: float, n: int) -> float:
    """Standard error of a mean of ``n`` independent samples."""
    if n <= 0:
        return math.inf
    return sd / math.sqrt(n)


def proportion_se(p: float, n: int) -> float:
    """Binomial standard error of a share ``p`` over ``n`` independent trials."""
    if not 0 <= p <= 1:
        raise ValueError("a share is between 0 and 1")
    if n <= 0:
        return math.inf
    return math.sqrt(p * (1 - p) / n)


def width_in_se(bound: float, se: float) -> float:
    """How many standard errors wide a bound is (infinite when there is no error)."""
    return math.inf if se == 0 else bound / se


def samples_needed(sd: float, bound: float, k: float = K) -> int:
    """Events whose mean has ``bound >= k * sd / sqrt(n)``: ``n = ceil((k sd / bound)^2)``."""
    if bound <= 0:
        raise ValueError("a bound is positive")
    return max(1, math.ceil((k * sd / bound) ** 2 - 1e-9))


def trials_needed(p: float, bound: float, k: float = K) -> int:
    """Polls whose empty share has ``bound >= k * sqrt(p (1 - p) / n)``."""
    if bound <= 0:
        raise ValueError("a bound is positive")
    return max(1, math.ceil(k * k * p * (1 - p) / bound**2 - 1e-9))


@dataclass(frozen=True)
class Agreement:
    """One quantity of one point: the model, its bound, the measurement's standard error, and whether it is sized."""

    quantity: str
    model: float
    bound: float
    se: float
    n: int
    k: float = K
    measured: float | None = None

    @property
    def width_se(self) -> float:
        return width_in_se(self.bound, self.se)

    @property
    def sized(self) -> bool:
        """True when the bound is at least ``k`` standard errors wide."""
        return self.width_se >= self.k

    @property
    def agrees(self) -> bool | None:
        """Measured within the bound of the model (None before a measurement)."""
        return None if self.measured is None else abs(self.measured - self.model) <= self.bound

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "width_se": self.width_se, "sized": self.sized, "agrees": self.agrees}


def latency_agreement(model_ms: float, sd_ms: float, n: int, *, measured_ms: float | None = None, k: float = K) -> Agreement:
    """A mean latency's agreement check, from the per-event standard deviation and the event count."""
    return Agreement("latency_mean_ms", model_ms, latency_bound_ms(model_ms), mean_se(sd_ms, n), n, k, measured_ms)


def ratio_agreement(p_model: float, polls: int, *, measured: float | None = None, bound: float = RATIO_BOUND, k: float = K) -> Agreement:
    """An empty-poll ratio's agreement check: binomial standard error at the model's share."""
    return Agreement("empty_poll_ratio", p_model, bound, proportion_se(p_model, polls), polls, k, measured)


def polling_point_size(
    rate_per_s: float, interval_s: float, *, model_extra_ms: float = 0.0, ratio_bound: float = RATIO_BOUND, k: float = K
) -> dict[str, Any]:
    """Events, polls and seconds a timetabled polling point needs for both of its checks to be ``k`` errors wide.

    The latency model is ``T/2 + model_extra_ms`` (leave the extra at 0 to size
    conservatively: a smaller model has a smaller bound); Poisson arrivals.
    """
    if rate_per_s <= 0 or interval_s <= 0:
        raise ValueError("rate and interval are positive")
    model_ms = interval_s * 500 + model_extra_ms
    sd_ms = uniform_sd(interval_s) * 1000
    events = samples_needed(sd_ms, latency_bound_ms(model_ms), k)
    p_empty = math.exp(-rate_per_s * interval_s)
    polls = trials_needed(p_empty, ratio_bound, k)
    duration = max(events / rate_per_s, polls * interval_s)
    return {
        "lambda_t": rate_per_s * interval_s,
        "model_latency_ms": model_ms,
        "latency_sd_ms": sd_ms,
        "latency_bound_ms": latency_bound_ms(model_ms),
        "events_needed": events,
        "empty_ratio_model": p_empty,
        "polls_needed": polls,
        "duration_s": duration,
    }
