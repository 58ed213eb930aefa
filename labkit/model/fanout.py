"""The fan-out's queue: one event sent to F receivers, one after another, in every push style's model.

A provider that pushes an event to F receivers (webhook deliveries, stream
frames) reaches them one after another: with a spacing ``c`` between two
receivers the k-th waits k c, so the wait is uniform on [0, (F-1) c]: mean
(F-1) c / 2, q-quantile q (F-1) c. The spacing is the provider's own time per
receiver, measured on loopback by the calibration (``labkit.model.calibration``):
a stream's write cost per frame, a webhook dispatcher's spacing between the
deliveries of one event. A dispatcher that holds at most ``concurrency``
deliveries in flight cannot start them faster than one per ``attempt /
concurrency`` either (each holds its slot for a whole attempt, network round
trip included): across a real network that bound, not the loopback spacing,
sets the queue (2,000 receivers at 65 ms with 64 in flight take about 2 s).

Every function here is a model; results and figures label its outputs so.
"""

from __future__ import annotations

from collections.abc import Iterable


def fanout_queueing_s(receivers: float, spacing_s: float, q: float | None = None) -> float:
    """Wait for the provider to reach a receiver in a fan-out of ``receivers``: mean, or the q-quantile.

    ``spacing_s`` is the provider's time per receiver (a stream's calibrated
    write cost, a webhook's dispatch spacing). A mean fan-out (topics: a topic's
    mean subscribers) may be fractional: the mean wait is linear in it.
    """
    if receivers < 1 or spacing_s < 0:
        raise ValueError("a fan-out has at least one receiver and a non-negative spacing")
    span = (receivers - 1) * spacing_s
    if q is None:
        return span / 2
    if not 0 <= q <= 1:
        raise ValueError("q is a fraction between 0 and 1")
    return q * span


def dispatch_spacing_s(dispatch_cost_s: float, attempt_s: float, concurrency: int) -> float:
    """A dispatcher's spacing between two deliveries of one event: its loopback cost, or the concurrency bound.

    ``dispatch_cost_s`` is the calibrated loopback spacing; ``attempt_s`` how long
    one delivery holds its slot through the network; at most ``concurrency`` are
    in flight, so they start no faster than one per ``attempt_s / concurrency``.
    """
    if concurrency < 1:
        raise ValueError("a dispatcher holds at least one delivery in flight")
    return max(dispatch_cost_s, attempt_s / concurrency)


def spacing_from_records(records: Iterable[tuple[int, int]], receivers: int) -> float | None:
    """The median over events of their deliveries' spacing: (last - first) / (receivers - 1), in seconds.

    ``records`` are (event id, time recorded in ns), one per delivery; only events
    that reached all ``receivers`` count (an event cut short would look faster).
    None when no event did, or with fewer than two receivers (no spacing to see).
    """
    if receivers < 2:
        return None
    times: dict[int, list[int]] = {}
    for event_id, recorded_ns in records:
        times.setdefault(event_id, []).append(recorded_ns)
    spans = sorted((max(t) - min(t)) / 1e9 / (receivers - 1) for t in times.values() if len(t) == receivers)
    if not spans:
        return None
    mid = len(spans) // 2
    return spans[mid] if len(spans) % 2 else (spans[mid - 1] + spans[mid]) / 2
