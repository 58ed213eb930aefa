"""What the audience did to each consumer: the heaviest and lightest tenth, and the spread over consumers.

A run-wide p99 hides a skewed audience: a few large tenants get most events
and a long tail almost none. This block puts, beside the run-wide figures,
the latency and empty-poll ratio of the heaviest and the lightest decile of
consumers (ranked by their share of the events, the plan's, not the draw's),
deliveries and polls per consumer (min, median, max), and loss counted
consumer by consumer against what each should have received, with the
model's figures (``labkit.model.audience``) beside them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from labkit.config import RunSettings, receivers_per_event
from labkit.model.audience import audience_model, deciles, spread
from labkit.wire.metering import histogram_summary_ms, new_histogram, record_us


def _latency(rows: Sequence[tuple[int, int]]) -> dict[str, Any]:
    hist = new_histogram()
    for created, got in rows:
        record_us(hist, (got - created) / 1000)
    summary = histogram_summary_ms(hist)
    return {"p50": summary.get("p50"), "p99": summary.get("p99"), "count": len(rows)}


def _decile(
    names: Sequence[str], latencies: Mapping[str, list[tuple[int, int]]], polls: Mapping[str, int], empty: Mapping[str, int]
) -> dict[str, Any]:
    rows = [r for c in names for r in latencies.get(c, ())]
    out: dict[str, Any] = {"consumers": len(names), "latency_ms": _latency(rows)}
    if polls:
        n = sum(polls.get(c, 0) for c in names)
        out["polls"] = n
        out["empty_poll_ratio"] = sum(empty.get(c, 0) for c in names) / n if n else None
    return out


def audience_block(run: Any, rate_per_s: float, *, pulled: bool, interval_s: float, long_poll_wait_s: float) -> dict[str, Any]:
    """The per-consumer figures of one style's run (``run`` is a ``StyleRun``), and the audience's model beside them."""
    consumers: list[str] = list(run.consumers)
    shares: list[float] = list(run.shares) or [1.0] * len(consumers)
    latencies: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for _, consumer, _, created, got in run.events:
        latencies[consumer].append((created, got))
    delivered = Counter({c: len(v) for c, v in latencies.items()})
    polls = run.window_by_consumer.get("polls_by_consumer", {})
    empty = run.window_by_consumer.get("empty_polls_by_consumer", {})
    heavy, light = deciles(shares) if len(shares) == len(consumers) else ([], [])
    expected = run.expected or {}
    lost = {c: max(expected[c] - delivered.get(c, 0), 0) for c in consumers if c in expected}
    out: dict[str, Any] = {
        "heaviest_decile": _decile([consumers[i] for i in heavy], latencies, polls, empty),
        "lightest_decile": _decile([consumers[i] for i in light], latencies, polls, empty),
        "deliveries_per_consumer": spread([delivered.get(c, 0) for c in consumers]),
        "consumers_with_loss": sum(1 for n in lost.values() if n),
        "most_lost_by_one_consumer": max(lost.values(), default=0),
    }
    repeated: dict[str, int] | None = getattr(run, "duplicates_by_consumer", None)
    if repeated is not None:
        out["consumers_with_duplicates"] = sum(1 for n in repeated.values() if n)
        out["most_duplicates_by_one_consumer"] = max(repeated.values(), default=0)
    if polls:
        out["polls_per_consumer"] = spread([polls.get(c, 0) for c in consumers])
        total = sum(polls.values())
        out["empty_poll_ratio"] = sum(empty.values()) / total if total else None
    model = audience_model(shares, rate_per_s, pulled=pulled, interval_s=interval_s, long_poll_wait_s=long_poll_wait_s)
    if pulled:
        for side in ("heaviest_decile", "lightest_decile"):
            out[side]["model_empty_poll_ratio"] = model[side]["empty_poll_ratio"]
    out["model"] = model
    return out


def audience_summary(run: Any, settings: RunSettings, rate_per_s: float, expected: int, *, pulled: bool) -> dict[str, Any]:
    """The style block's ``audience``: the plan, what was expected and misdelivered, and (not a broadcast) the per-consumer figures."""
    out: dict[str, Any] = {**run.audience, "expected_deliveries": expected, "misdelivered": run.misdelivered}
    if run.expected is None:
        return out
    out.update(
        audience_block(run, rate_per_s, pulled=pulled, interval_s=settings.poll_interval_s, long_poll_wait_s=settings.long_poll_wait_s)
    )
    # what each consumer receives on average (a requirement's event_rate_per_s), at the nominal publish rate
    n = max(len(run.consumers), 1)
    out["rate_per_consumer_per_s"] = (
        settings.workload.rate_per_s * receivers_per_event(settings.audience, n, settings.topics, settings.subscriptions) / n
    )
    return out
