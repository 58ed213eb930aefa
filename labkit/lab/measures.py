"""Numbers from what a failure run leaves behind: the provider's log and outbox, the consumer's records.

Everything here is a pure function of rows, so tests feed it small tables:

- lost: events in the provider's log that a consumer never recorded (the
  provider's log is the promise: anything it committed must arrive);
- catch-up: from the moment a fault ended to the moment every consumer held
  every event created before that moment (the backlog the fault built up);
- retries and the delay they added: each event's latency split by whether
  its first delivery attempt succeeded;
- counters merged over a consumer's lifetimes (a restarted process starts
  counting from zero).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labkit.wire.metering import histogram_summary_ms, new_histogram, record_us

HIST_KEYS = frozenset({"mean", "p50", "p90", "p99", "max"})
# A process (or fleet) at this share of the cores it may use ran out of CPU: Locust warns at the same 90 %.
SATURATED_SHARE = 0.9


@dataclass(frozen=True)
class Episode:
    """One fault as it happened: when it began, when it was over, and what it was."""

    what: str
    started_ns: int
    ended_ns: int | None  # None: never lifted during the run (a 410)
    detail: Mapping[str, Any]


def latency_summary(values_us: Iterable[float]) -> dict[str, float | None]:
    hist = new_histogram()
    n = 0
    for v in values_us:
        record_us(hist, v)
        n += 1
    out = histogram_summary_ms(hist)
    return {**out, "count": n}


def first_received(rows: Iterable[tuple[str, int, int]]) -> dict[tuple[str, int], int]:
    """(consumer, event_id) -> received_ns from (consumer, event_id, received_ns) rows."""
    out: dict[tuple[str, int], int] = {}
    for consumer, event_id, received in rows:
        key = (consumer, event_id)
        if key not in out or received < out[key]:
            out[key] = received
    return out


def catch_up_s(
    created: Mapping[int, int],
    received: Mapping[tuple[str, int], int],
    consumers: Sequence[str],
    at_ns: int,
    expected: Mapping[str, Container[int]] | None = None,
) -> float | None:
    """Seconds from ``at_ns`` until every consumer held every event created by ``at_ns``.

    0 when nothing was outstanding at ``at_ns``; None when some such event
    never arrived (the consumer never caught up).
    """
    backlog = [e for e, c in created.items() if c <= at_ns]
    latest = at_ns
    for consumer in consumers:
        mine = expected.get(consumer, ()) if expected is not None else None
        for event_id in backlog:
            if mine is not None and event_id not in mine:
                continue  # not this consumer's event (a per-consumer or topics audience)
            got = received.get((consumer, event_id))
            if got is None:
                return None
            latest = max(latest, got)
    return (latest - at_ns) / 1e9


def lost(
    created: Mapping[int, int],
    received: Mapping[tuple[str, int], int],
    consumers: Sequence[str],
    expected: Mapping[str, Iterable[int]] | None = None,
) -> int:
    """Events a consumer should have received and never recorded: every logged event, or its audience's share."""
    if expected is None:
        return sum(1 for c in consumers for e in created if (c, e) not in received)
    return sum(1 for c in consumers for e in expected.get(c, ()) if e in created and (c, e) not in received)


def misdelivered(received: Mapping[tuple[str, int], int], created: Mapping[int, int], expected: Mapping[str, Iterable[int]] | None) -> int:
    """Logged events a consumer recorded that were not for it (0 for a broadcast: every event is everyone's)."""
    if expected is None:
        return 0
    return sum(1 for (c, e) in received if e in created and e not in expected.get(c, ()))


def duplicates(
    repeats: Mapping[tuple[str, int], int],
    created: Mapping[int, int],
    consumers: Sequence[str],
    expected: Mapping[str, Iterable[int]] | None = None,
) -> dict[str, int]:
    """Each consumer's repeated receipts of events it should have received (``lost``'s measure, the other way).

    ``repeats``: (consumer, event_id) -> receipts after the first (``records.load_repeats``).
    A repeated event that was not the consumer's is a misdelivery, counted there, not here.
    """
    mine = None if expected is None else {c: set(ids) for c, ids in expected.items()}
    out = dict.fromkeys(consumers, 0)
    for (c, e), n in repeats.items():
        if c in out and e in created and (mine is None or e in mine.get(c, ())):
            out[c] += n
    return out


def split_latency(
    created: Mapping[int, int],
    received: Mapping[tuple[str, int], int],
    windows: Sequence[tuple[int, int]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Latency of events created inside any window vs outside every window."""
    inside: list[float] = []
    outside: list[float] = []
    for (_, event_id), got in received.items():
        made = created.get(event_id)
        if made is None:
            continue
        us = (got - made) / 1000
        (inside if any(a <= made <= b for a, b in windows) else outside).append(us)
    return latency_summary(inside), latency_summary(outside)


def retry_effect(
    created: Mapping[int, int],
    received: Mapping[tuple[str, int], int],
    attempts: Mapping[tuple[str, int], int],
) -> dict[str, Any]:
    """Latency of events delivered at the first attempt vs after retries, and the difference of means.

    ``attempts`` maps (consumer, event_id) to the attempts its delivery took.
    """
    first: list[float] = []
    retried: list[float] = []
    for key, got in received.items():
        made = created.get(key[1])
        if made is None:
            continue
        us = (got - made) / 1000
        (retried if attempts.get(key, 1) > 1 else first).append(us)
    a, b = latency_summary(first), latency_summary(retried)
    added = b["mean"] - a["mean"] if a["mean"] is not None and b["mean"] is not None else None
    return {
        "retried_events": len(retried),
        "latency_first_try_ms": a,
        "latency_retried_ms": b,
        "retry_delay_added_ms": added,
    }


def merge_counters(snapshots: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counters of several lifetimes of one consumer: numbers add up, nested dicts merge.

    A latency summary (mean/p50/...) cannot be added: the last lifetime that
    has one wins.
    """
    out: dict[str, Any] = {}
    for snap in snapshots:
        for key, value in snap.items():
            if isinstance(value, bool) or value is None:
                out.setdefault(key, value)
            elif isinstance(value, (int, float)):
                prev = out.get(key, 0)
                out[key] = (prev if isinstance(prev, (int, float)) else 0) + value
            elif isinstance(value, Mapping):
                if value and set(value) <= HIST_KEYS:
                    if value.get("mean") is not None or key not in out:
                        out[key] = dict(value)
                else:
                    out[key] = merge_counters([out.get(key) or {}, value])
            else:
                out[key] = value
    return out


def cpu_shares(
    provider_cpu_s: float,
    consumer_cpu_s: float,
    window_s: float,
    cores: Mapping[str, Any],
    fleet_processes: int | str,
    *,
    wait_s: tuple[float, float] = (0.0, 0.0),
) -> dict[str, Any]:
    """Who ran out of CPU: the provider's share of its one core and the fleet's share of the cores it could use.

    The provider is one process (one core at most). The fleet can use at most
    one core per process, and no more cores than it was given: the fleet cores
    when the provider has a core of its own, else every usable core (shared
    with the provider). A share is CPU used; a *demand* adds the time the
    process waited for a CPU (``wait_s``): on a machine busy with other work a
    process can want its whole core and get a fifth of it. A side whose demand
    reaches ``SATURATED_SHARE`` ran out of CPU; ``limited_by`` names it, the
    fleet first: when the clients ran out, what the run measured is a bound on
    the provider, not its limit.
    """
    pinned = bool(cores.get("applied"))
    usable = int(cores.get("usable_cores") or 1)
    fleet_cores = len(cores.get("fleet_cores") or ()) if pinned else usable
    procs = fleet_cores if fleet_processes == "auto" else int(fleet_processes)
    fleet_capacity = max(1, min(procs, fleet_cores))
    if window_s <= 0:
        return {"window_s": window_s, "provider_share": None, "fleet_share": None, "limited_by": None, "pinned": pinned}
    provider_share = provider_cpu_s / window_s
    fleet_share = consumer_cpu_s / (window_s * fleet_capacity)
    provider_demand = (provider_cpu_s + wait_s[0]) / window_s
    fleet_demand = (consumer_cpu_s + wait_s[1]) / (window_s * fleet_capacity)
    fleet_saturated = fleet_demand >= SATURATED_SHARE
    provider_saturated = provider_demand >= SATURATED_SHARE
    return {
        "window_s": window_s,
        "provider_share": provider_share,
        "fleet_share": fleet_share,
        "provider_wait_share": wait_s[0] / window_s,
        "fleet_wait_share": wait_s[1] / (window_s * fleet_capacity),
        "provider_demand": provider_demand,
        "fleet_demand": fleet_demand,
        "fleet_cores": fleet_capacity,
        "provider_saturated": provider_saturated,
        "fleet_saturated": fleet_saturated,
        "limited_by": "fleet" if fleet_saturated else "provider" if provider_saturated else None,
        "pinned": pinned,
        **({"placement": dict(cores)} if cores else {}),
    }


def by_consumer_window(start: Mapping[str, Any], end: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Per-consumer counters (keys ending ``_by_consumer``) over a window: end minus start, consumer by consumer."""
    out: dict[str, dict[str, int]] = {}
    for key, after in end.items():
        if not key.endswith("_by_consumer") or not isinstance(after, Mapping):
            continue
        earlier = start.get(key)
        before: Mapping[str, Any] = earlier if isinstance(earlier, Mapping) else {}
        out[key] = {c: int(v or 0) - int(before.get(c, 0) or 0) for c, v in after.items()}
    return out
