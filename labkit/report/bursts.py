"""Runs where each event reached every consumer at once: their latency includes draining that burst.

labkit's workload is one shared stream of events, and every consumer of a run
receives every event. At N consumers each event therefore leaves the provider
as N deliveries at the same moment (N webhook POSTs, N frames, N answers to
held polls), and the last of them waits for the N - 1 before it. A
requirement's ``event_rate_per_s`` is per consumer, and in most use cases
(payments per merchant, updates per user) each consumer's events are its
own, so they arrive spread out rather than together. The same deliveries per
second then meet no burst, and the measured p99 overstates what those
consumers would see.

The report says so once, naming each such run with its measured p50 and
p99 (the queue behind one event's other deliveries is in both), when that p99
is at least a quarter of the target: below that the queue cannot change the
decision. It puts no number on the spread-out case, which labkit does not
measure yet. Polling on a timetable is left out: each poller asks on its own
schedule, so the deliveries of one event are already spread over the poll
interval.
"""

from __future__ import annotations

from labkit import styles
from labkit.report.observations import Obs, fmt
from labkit.report.reasons import Case
from labkit.report.terms import LATENCY, LONG_POLLING
from labkit.results import columns as cols

MIN_CONSUMERS = 100  # below this a burst is a few deliveries, next to the network's share
SHARE_OF_TARGET = 0.25  # a p99 under a quarter of the target: its queue cannot bear on the decision


def answers_every_consumer_at_once(o: Obs) -> bool:
    """A pushed style, or long polling: each event is handed to every consumer the moment it is published."""
    info = styles.get(o.style)
    return o.variant == LONG_POLLING or (info is not None and info.direction == "push")


def burst_runs(case: Case) -> list[Obs]:
    """The runs whose every event went to at least ``MIN_CONSUMERS`` consumers at once, with a p99 near enough the target to matter."""
    floor = SHARE_OF_TARGET * case.req.target_latency_p99_ms
    return [
        o
        for o in case.obs
        if (o.consumers or 0) >= MIN_CONSUMERS
        and answers_every_consumer_at_once(o)
        and o.row.get("settings.audience") not in ("per-consumer", "topics")  # those runs spread their events
        and o.has(cols.LATENCY_P50)
        and (o.get(cols.LATENCY_P99) or 0) >= floor
    ]


def burst_reasons(case: Case) -> None:
    """One latency reason naming the runs whose latency includes the queue behind each event's other deliveries."""
    runs = burst_runs(case)
    if not runs:
        return
    measured = "; ".join(
        f"{o.variant} p50 {fmt(round(o.get(cols.LATENCY_P50) or 0))} ms, p99 {fmt(round(o.get(cols.LATENCY_P99) or 0))} ms" for o in runs
    )
    consumers = sorted({o.consumers or 0 for o in runs})
    who = fmt(consumers[0]) if len(consumers) == 1 else f"{fmt(consumers[0])} to {fmt(consumers[-1])}"
    names = _and([o.variant for o in runs])
    case.reason(
        LATENCY,
        f"Each event of the {names} runs reached all {who} consumers at once (labkit's workload is one shared stream: every "
        f"consumer receives every event), so an event's later deliveries waited behind its earlier ones, and the measured "
        f"latency includes that queue: {measured}. Your consumers' events ({fmt(case.req.event_rate_per_s)}/s each) are "
        f"probably their own and would arrive spread out, meeting no such queue, so these figures are the pessimistic side "
        f"of theirs; labkit does not measure that case yet.",
        [e for o in runs for e in (o.ev(cols.LATENCY_P50), o.ev(cols.LATENCY_P99))],
        names,
    )


def _and(items: list[str]) -> str:
    unique = list(dict.fromkeys(items))
    return unique[0] if len(unique) == 1 else ", ".join(unique[:-1]) + " and " + unique[-1]
