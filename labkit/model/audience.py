"""The audience in the closed forms: per-consumer rates, empty polls, requests and fan-out per event.

Consumer i receives events at lambda_i = lambda x share_i, where the shares
come from the audience (``labkit.lab.workload.AudiencePlan``): 1 each for a
broadcast, a Zipf or uniform split summing to 1 for per-consumer, and the
sum of the shares of its topics for topics. Then:

- a timetabled poll of consumer i finds nothing with probability e^(-lambda_i T);
  the run's empty-poll ratio is their mean over consumers (every consumer
  polls equally often);
- polling costs N/T requests per second for sum(lambda_i) deliveries per
  second: N / (T sum(lambda_i)) requests per delivered event;
- a long poll of consumer i returns at its next event or after W: it costs
  lambda_i / (1 - e^(-lambda_i W)) requests per second;
- push sends each event to its receivers: sum(share_i) deliveries (webhook
  POSTs, stream frames) per published event: N for a broadcast, 1 for
  per-consumer, the mean subscribers of a topic for topics.

Every function here is a model: results label its outputs so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

DECILE = 0.1


def spread(values: Sequence[float]) -> dict[str, float] | None:
    """min, median and max of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    return {"min": ordered[0], "median": ordered[len(ordered) // 2], "max": ordered[-1]}


def deciles(shares: Sequence[float]) -> tuple[list[int], list[int]]:
    """Indexes of the heaviest and the lightest tenth of consumers by share (at least one each)."""
    n = len(shares)
    k = max(1, math.ceil(n * DECILE))
    order = sorted(range(n), key=lambda i: (-shares[i], i))
    return order[:k], order[-k:]


def empty_poll_ratio(rates: Sequence[float], interval_s: float, long_poll_wait_s: float = 0.0) -> float | None:
    """Mean over consumers of the chance a poll finds nothing: e^(-lambda_i T), or e^(-lambda_i W) for a long poll."""
    if not rates:
        return None
    wait = long_poll_wait_s if long_poll_wait_s > 0 else interval_s
    return sum(math.exp(-r * wait) for r in rates) / len(rates)


def poll_requests_per_second(rate: float, interval_s: float, long_poll_wait_s: float = 0.0) -> float:
    """One consumer's requests per second: 1/T on a timetable, lambda / (1 - e^(-lambda W)) for a long poll."""
    if long_poll_wait_s <= 0:
        return 1.0 / interval_s
    if rate <= 0:
        return 1.0 / long_poll_wait_s
    return rate / (1.0 - math.exp(-rate * long_poll_wait_s))


def audience_model(
    shares: Sequence[float], rate_per_s: float, *, pulled: bool, interval_s: float, long_poll_wait_s: float = 0.0
) -> dict[str, Any]:
    """The audience's model block for one style's run at the realised publish rate (labelled a model)."""
    rates = [rate_per_s * s for s in shares]
    deliveries_per_s = sum(rates)
    heavy, light = deciles(shares)
    out: dict[str, Any] = {
        "kind": "model",
        "lambda_per_consumer_per_s": spread(rates),
        "deliveries_per_event": sum(shares),
        "deliveries_per_s": deliveries_per_s,
    }
    if not pulled:
        out["fanout_per_event"] = sum(shares)
        return out
    polls = [poll_requests_per_second(r, interval_s, long_poll_wait_s) for r in rates]
    out["empty_poll_ratio"] = empty_poll_ratio(rates, interval_s, long_poll_wait_s)
    out["requests_per_event"] = sum(polls) / deliveries_per_s if deliveries_per_s > 0 else None
    out["heaviest_decile"] = {"empty_poll_ratio": empty_poll_ratio([rates[i] for i in heavy], interval_s, long_poll_wait_s)}
    out["lightest_decile"] = {"empty_poll_ratio": empty_poll_ratio([rates[i] for i in light], interval_s, long_poll_wait_s)}
    return out
