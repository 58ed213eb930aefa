"""Closed forms for push and poll, the numbers every measurement is compared with.

For a poll period T, arrivals at rate lambda and a round trip RTT (docs/architecture.md, "The model"):
the detection delay of a timetabled poller is uniform on [0, T], so its mean
is T/2 + RTT and its q-quantile q*T + RTT; a poll finds nothing with
probability e^(-lambda T) for Poisson arrivals; polling costs 1/(lambda T)
requests per event per consumer, unbatched push costs 1 (+ retries), batched
push 1/B; they cross at lambda T = 1/B.

Every function here is a model: results and figures label its outputs so.
"""

from __future__ import annotations

import math
from typing import Any

ZAPIER_POLLS = 30_000_000
ZAPIER_POLLS_WITH_NEWS = 460_000


def polling_delay_mean_s(interval_s: float, rtt_s: float = 0.0) -> float:
    """Mean delay from event to detection for a poller on a fixed timetable."""
    return interval_s / 2 + rtt_s


def polling_delay_quantile_s(q: float, interval_s: float, rtt_s: float = 0.0) -> float:
    """The q-quantile (0 <= q <= 1) of the detection delay: uniform on [0, T], plus the round trip."""
    if not 0 <= q <= 1:
        raise ValueError("q is a fraction between 0 and 1")
    return q * interval_s + rtt_s


def empty_poll_probability(rate_per_s: float, interval_s: float, arrival: str = "poisson") -> float:
    """Probability that a poll finds nothing new.

    Poisson: e^(-lambda T). Constant spacing 1/lambda: a window of length T
    holds floor or ceil of lambda T events, none with probability max(0, 1 - lambda T).
    Other processes are approximated by the Poisson form.
    """
    lt = rate_per_s * interval_s
    if arrival == "constant":
        return max(0.0, 1.0 - lt)
    return math.exp(-lt)


def polling_requests_per_event(rate_per_s: float, interval_s: float, page_limit: int | None = None) -> float:
    """Requests per event per consumer: one poll per T, plus extra pages when a poll returns more than a page."""
    lt = rate_per_s * interval_s
    pages = 1.0 if not page_limit else max(1.0, math.ceil(lt / page_limit))
    return pages / lt


def long_poll_requests_per_event(rate_per_s: float, wait_s: float) -> float:
    """A long poll ends at the next event or after ``wait_s``: E[min(X, W)] = (1 - e^(-lambda W)) / lambda."""
    if wait_s <= 0:
        raise ValueError("a long poll waits for a positive time")
    return 1.0 / (1.0 - math.exp(-rate_per_s * wait_s))


def push_requests_per_event(batch: int = 1, retries_per_event: float = 0.0) -> float:
    """Webhook requests per event per subscriber: 1/B, plus the retries."""
    return (1.0 + retries_per_event) / batch


def crossover_lambda_t(batch: int = 1) -> float:
    """lambda T at which polling and (batched) push cost the same requests per event."""
    return 1.0 / batch


def snapshot_fraction_seen(rate_per_s: float, interval_s: float, arrival: str = "poisson") -> float:
    """Fraction of a snapshot's versions a poller sees (Bozdag, Mesbah and van Deursen 2007).

    A poll sees a new version when at least one update happened since the
    last poll: (1 - e^(-lambda T)) / (lambda T) for Poisson updates,
    min(1, 1 / (lambda T)) for updates every 1/lambda.
    """
    lt = rate_per_s * interval_s
    if arrival == "constant":
        return min(1.0, 1.0 / lt)
    return (1.0 - math.exp(-lt)) / lt


def lambda_t_for_wasted_ratio(wasted: float) -> float:
    """The lambda T at which a fraction ``wasted`` of Poisson polls are empty: -ln(wasted)."""
    if not 0 < wasted < 1:
        raise ValueError("wasted is a fraction strictly between 0 and 1")
    return -math.log(wasted)


def zapier_wasted_ratio() -> float:
    """The share of polls Zapier found empty: 1 - 460,000 / 30,000,000 (about 98.5 %)."""
    return 1 - ZAPIER_POLLS_WITH_NEWS / ZAPIER_POLLS


def polling_model(
    rate_per_s: float,
    interval_s: float,
    rtt_s: float,
    *,
    arrival: str = "poisson",
    page_limit: int | None = None,
    long_poll_wait_s: float = 0.0,
) -> dict[str, Any]:
    """The model's prediction for one polling run, in the units of the summary."""
    if long_poll_wait_s > 0:
        return {
            "kind": "model",
            "lambda_t": rate_per_s * interval_s,
            # no closed form: an event is answered within about one round trip, and the
            # fleet's measured round trip includes the time each long poll was held
            "latency_mean_ms": None,
            "requests_per_event": long_poll_requests_per_event(rate_per_s, long_poll_wait_s),
            "empty_poll_ratio": math.exp(-rate_per_s * long_poll_wait_s),
            "assumes": "long polling: an event is answered within one round trip",
        }
    return {
        "kind": "model",
        "lambda_t": rate_per_s * interval_s,
        "latency_mean_ms": polling_delay_mean_s(interval_s, rtt_s) * 1000,
        "latency_p50_ms": polling_delay_quantile_s(0.5, interval_s, rtt_s) * 1000,
        "latency_p90_ms": polling_delay_quantile_s(0.9, interval_s, rtt_s) * 1000,
        "latency_p99_ms": polling_delay_quantile_s(0.99, interval_s, rtt_s) * 1000,
        "empty_poll_ratio": empty_poll_probability(rate_per_s, interval_s, arrival),
        "requests_per_event": polling_requests_per_event(rate_per_s, interval_s, page_limit),
        "assumes": f"{arrival} arrivals; delay uniform on [0, T] plus the measured round trip",
    }


def webhook_model(rtt_s: float, *, batch: int = 1, retries_per_event: float = 0.0) -> dict[str, Any]:
    """The model's prediction for one webhook run: one round trip, 1/B requests per event."""
    return {
        "kind": "model",
        "latency_mean_ms": rtt_s * 1000,
        "requests_per_event": push_requests_per_event(batch, retries_per_event),
        "crossover_lambda_t": crossover_lambda_t(batch),
        "assumes": "push on publish: one delivery round trip; retries as measured",
    }


# Bytes on the wire. A calibrated cost model (labkit.analysis.calibration) measures, per
# style, what one request costs (request line, headers and the response's
# headers, both directions) and what one event adds (its JSON in a body). The
# per-event-per-consumer bytes of each variant follow from the request counts above.


def polling_bytes_per_event(
    rate_per_s: float,
    interval_s: float,
    request_bytes: float,
    event_bytes: float,
    *,
    empty_request_bytes: float | None = None,
    arrival: str = "poisson",
) -> float:
    """Bytes per event per consumer for a poller on a fixed timetable.

    Each of the 1/(lambda T) polls per event costs ``request_bytes``; an empty
    poll costs ``empty_request_bytes`` instead when given (a 304 to a
    conditional poll carries no body); every event adds ``event_bytes`` once.
    """
    lt = rate_per_s * interval_s
    if lt <= 0:
        raise ValueError("rate and interval must be positive")
    empty = empty_poll_probability(rate_per_s, interval_s, arrival)
    empty_cost = request_bytes if empty_request_bytes is None else empty_request_bytes
    per_poll = empty * empty_cost + (1 - empty) * request_bytes
    return per_poll / lt + event_bytes


def long_poll_bytes_per_event(rate_per_s: float, wait_s: float, request_bytes: float, event_bytes: float) -> float:
    """Bytes per event per consumer for long polling: 1/(1 - e^(-lambda W)) requests per event, plus the event."""
    return long_poll_requests_per_event(rate_per_s, wait_s) * request_bytes + event_bytes


def push_bytes_per_event(
    request_bytes: float,
    event_bytes: float,
    *,
    batch: int = 1,
    retries_per_event: float = 0.0,
    thin_fetch_bytes: float = 0.0,
) -> float:
    """Bytes per event per subscriber for webhook push.

    A request carries ``batch`` events and is resent whole on a retry:
    (1 + retries) * (request_bytes / B + event_bytes). A thin event carries a
    notification only, so ``event_bytes`` is the notification's size and the
    consumer's fetch of the body costs ``thin_fetch_bytes`` once per event.
    """
    if batch < 1:
        raise ValueError("a batch holds at least one event")
    return (1.0 + retries_per_event) * (request_bytes / batch + event_bytes) + thin_fetch_bytes


def thin_push_requests_per_event(batch: int = 1, retries_per_event: float = 0.0) -> float:
    """Thin events: the notification (1/B, plus retries) and one fetch of the body per event."""
    return push_requests_per_event(batch, retries_per_event) + 1.0


def bytes_crossover_lambda_t(
    poll_request_bytes: float,
    poll_event_bytes: float,
    push_request_bytes: float,
    push_event_bytes: float,
    *,
    batch: int = 1,
) -> float:
    """lambda T at which polling and push cost the same bytes per event per consumer.

    Polling costs Rp/(lambda T) + Ep (every poll at full price), push Rw/B + Ew,
    so they cross at lambda T = Rp / (Rw/B + Ew - Ep); when push costs no more
    per event than polling's share of the events, polling never catches up (inf).
    """
    margin = push_request_bytes / batch + push_event_bytes - poll_event_bytes
    if margin <= 0:
        return math.inf
    return poll_request_bytes / margin
