"""What one style's run measured (``StyleRun``) and, in a fault run, what its fault did (the fault block).

The session (``labkit.lab.session``) runs the processes and the phases; once
they are stopped it reads the provider's log and the consumers' records back
into a ``StyleRun``, which the pipeline summarises. A fault run adds the
fault block built here from the same reads: lost events consumer by consumer,
events processed twice, retries, and each episode's outage and catch-up,
judged against the fault plan's promise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labkit.lab import measures
from labkit.lab.faults import FaultLab, Injector
from labkit.lab.measures import Episode
from labkit.model.calibration import Calibration


@dataclass
class StyleRun:
    """What one style's run measured, before it is summarised."""

    style: str
    published_ids: list[int]
    publish_errors: int
    publish_lateness_ms: dict[str, float | None]
    consumers: list[str]
    drained: bool
    drain_s: float
    provider_cpu_s: float
    consumer_cpu_s: float
    consumer_stats: dict[str, Any]
    deliveries: dict[str, Any]
    delivery_rtt_s: float | None
    events: list[tuple[str, str, int, int, int]] = field(default_factory=list)
    # CPU already spent when publishing began (start-up: imports, app set-up), so
    # a cost model can fit the work of the run alone.
    provider_cpu_start_s: float = 0.0
    consumer_cpu_start_s: float = 0.0
    # A failure run's measurements of its fault: lost, duplicates, catch-up, ...
    fault: dict[str, Any] | None = None
    # Consumer counters over the workload window only: what a consumer did before the
    # first event and during the drain is an artefact of the run's edges.
    window_counters: dict[str, int] = field(default_factory=dict)
    # The provider's /stats after the drain (consumers still connected; counters of its last lifetime),
    # and its resident memory then and before the consumer started (the memory the consumers cost).
    provider_stats: dict[str, Any] = field(default_factory=dict)
    provider_rss_bytes: int | None = None
    provider_rss_base_bytes: int | None = None
    # The network profile's proxies on the consumer-provider hops: what they carried (None without a profile).
    network: dict[str, Any] | None = None
    # Wall seconds between the CPU reads at the start of publishing and after the drain (the CPU shares' denominator),
    # and where the processes were allowed to run (``labkit.servers.procs.CorePlan.describe``).
    cpu_window_s: float = 0.0
    # Seconds the provider and the consumer process(es) waited for a CPU over that window (a busy machine's share).
    cpu_wait_s: tuple[float, float] = (0.0, 0.0)
    cores: dict[str, Any] = field(default_factory=dict)
    # The machine's calibration the model takes its base from (labkit.model.calibration); None: no base.
    calibration: Calibration | None = None
    # The audience: each consumer's count of the logged events it should have received (None: a broadcast,
    # every consumer every event), deliveries of an event to a consumer it was not for, and the plan's description.
    expected: dict[str, int] | None = None
    misdelivered: int = 0
    duplicates_by_consumer: dict[str, int] | None = None  # each consumer's repeats of its own events (None: not read)
    audience: dict[str, Any] = field(default_factory=dict)
    shares: list[float] = field(default_factory=list)  # each consumer's share of the events (lambda_i / lambda)
    window_by_consumer: dict[str, dict[str, int]] = field(default_factory=dict)  # per-consumer counters over the window
    # Each companion process (``Lab.companions``) by name: its own counters, wire and CPU (also in the totals above).
    companions: dict[str, dict[str, Any]] = field(default_factory=dict)


def fault_block(
    lab: FaultLab,
    injector: Injector,
    publish_retries: int,
    created: dict[int, int],
    received: dict[tuple[str, int], int],
    counters: dict[str, Any],
    deliveries: dict[str, Any],
    expected: dict[str, set[int]] | None,
) -> dict[str, Any]:
    """The fault block of a fault run: ``created`` and ``received`` as read back from the provider's log and the records."""
    f = lab.settings.fault
    assert f is not None
    unique = len([k for k in received if k[1] in created])
    lost = measures.lost(created, received, lab.consumers, expected)
    episodes = [episode(lab, ep, created, received, expected) for ep in lab.episodes]
    catch_ups = [e["catch_up_s"] for e in episodes if e["catch_up_s"] is not None]
    windows = [(ep.started_ns, ep.ended_ns or lab.publish_end_ns) for ep in lab.episodes]
    during, outside = measures.split_latency(created, received, windows)
    attempts = lab.style.retry_attempts(lab.provider_db, lab.consumer_of)
    retry = measures.retry_effect(created, received, attempts) if attempts is not None else {}
    style_part = lab.style.fault_measures(counters, deliveries, retry)
    processed_total = int(style_part.pop("processed_total", 0))
    return {
        "kind": f.kind,
        "description": f.describe(),
        "plan": f.model_dump(mode="json"),
        "promises_no_loss": f.promises_no_loss,
        "published": len(created),
        "delivered": unique,
        "lost": lost,
        "loss_ok": lost == 0 or not f.promises_no_loss,
        # Events the consumer counted as newly processed, over all its lifetimes, beyond the
        # unique events it holds: 0 when de-duplication held. (A SIGKILLed poller's last 0.5 s
        # of counters are lost, which can only lower this figure.)
        "duplicates_processed": max(processed_total - unique, 0),
        **style_part,
        "episodes": episodes,
        "catch_up_s": max(catch_ups) if catch_ups else None,
        # None when the fault was never lifted (a 410 disables the endpoint for good).
        "outage_s": None if any(e["outage_s"] is None for e in episodes) else sum((e["outage_s"] for e in episodes), 0.0),
        "latency_during_fault_ms": during,
        "latency_outside_fault_ms": outside,
        "provider_restarts": lab.provider.lifetimes - 1,
        "consumer_restarts": lab.consumer.lifetimes - 1,
        "publish_retries": publish_retries,
        **injector.block(),
    }


def episode(
    lab: FaultLab, ep: Episode, created: dict[int, int], received: dict[tuple[str, int], int], expected: dict[str, set[int]] | None
) -> dict[str, Any]:
    """One episode of the fault: when it began on the run's time axis, how long it lasted, how long the consumers took to catch up."""
    catch_up = measures.catch_up_s(created, received, lab.consumers, ep.ended_ns, expected) if ep.ended_ns else None
    return {
        "what": ep.what,
        "at_s": (ep.started_ns - lab.t0_ns) / 1e9,
        "outage_s": (ep.ended_ns - ep.started_ns) / 1e9 if ep.ended_ns else None,
        "catch_up_s": catch_up,
        **{k: v for k, v in ep.detail.items() if not k.endswith("_ns")},
    }
