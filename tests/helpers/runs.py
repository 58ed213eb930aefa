"""A style's run as the session returns it, without running anything: for the summary tests of the styles."""

from __future__ import annotations

from typing import Any

from labkit.lab.outcome import StyleRun


def style_run(
    style: str,
    counters: dict[str, Any],
    window: dict[str, int],
    *,
    consumer: str = "c0",
    events: int = 100,
    consumer_cpu_s: float = 1.0,
    wire: dict[str, int] | None = None,
    **extra: Any,
) -> StyleRun:
    """A drained run of ``style`` in which one consumer received each of ``events`` events once, 1 ms after it was made.

    ``counters`` are the consumer's counters over the whole run, ``window`` over the
    workload window; every delivery took one attempt. ``extra`` sets any other
    ``StyleRun`` field (a hybrid's ``companions``, say).
    """
    return StyleRun(
        style=style,
        published_ids=list(range(1, events + 1)),
        publish_errors=0,
        publish_lateness_ms={},
        consumers=[consumer],
        drained=True,
        drain_s=0.1,
        provider_cpu_s=1.0,
        consumer_cpu_s=consumer_cpu_s,
        consumer_stats={"counters": counters, "wire": wire or {"bytes_in": 1000, "bytes_out": 500}},
        deliveries={"attempts": events, "retries": 0, "deliveries": events},
        delivery_rtt_s=0.002,
        events=[(style, consumer, i, 0, 1_000_000) for i in range(1, events + 1)],
        window_counters=window,
        **extra,
    )
