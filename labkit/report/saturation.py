"""Runs whose provider ran out of its one core: their latency is a queue, and the report says so.

The provider runs as one process on purpose (docs/architecture.md, Scaling),
so its event loop has one core. When a run keeps it busy for (nearly) the whole run, the
events queue inside it and the measured latency is this machine's single
provider at capacity, not the style or the network. Left unsaid, a reader
would take that queue for the style's latency at their scale. For each such
run the report states the provider's CPU share, what one provider process
served per CPU-second, how many processes the requirement's rate takes at 70 %
load, and the run that would measure the style below saturation.
"""

from __future__ import annotations

import math

from labkit.report.observations import Obs, fmt
from labkit.report.reasons import Case
from labkit.report.terms import LATENCY
from labkit.results import columns as cols

# cores busy over the whole run: the provider's event loop runs on one core (its other threads can add
# more), so past this the provider's queue, not the style, sets the latency
SATURATED = 0.8
PLANNING_LOAD = 0.7  # plan provider processes at this share of their core


def provider_cores(o: Obs) -> float | None:
    """The provider's CPU share over the run (publishing plus drain), in cores; None without the numbers."""
    cpu, duration = o.get("provider_cpu_s"), o.get("workload.duration_s")
    if cpu is None or not duration:
        return None
    return cpu / (duration + (o.get("drain_s") or 0.0))


def work_units(o: Obs) -> tuple[float | None, str]:
    """What the provider did in the run, and its name: polls answered for a pulled style, else deliveries."""
    polls = o.get("polls")
    if polls:
        return polls, "polls"
    return o.get("delivered"), "deliveries"


def saturated(case: Case) -> list[tuple[Obs, float]]:
    """The runs whose provider used at least ``SATURATED`` of its core, with that share."""
    out = []
    for o in case.obs:
        cores = provider_cores(o)
        if cores is not None and cores >= SATURATED:
            out.append((o, cores))
    return out


def saturation_reasons(case: Case) -> None:
    """A latency reason and a coverage gap for every run measured on a saturated provider."""
    req = case.req
    for o, cores in saturated(case):
        units, what = work_units(o)
        cpu = o.get("provider_cpu_s")
        if not units or not cpu:
            continue
        per_cpu = units / cpu
        if what == "polls" and o.interval_s:
            need = req.consumers / o.interval_s
        else:
            need = req.consumers * req.event_rate_per_s
        processes = max(1, math.ceil(need / (PLANNING_LOAD * per_cpu)))
        label = o.variant
        case.reason(
            LATENCY,
            f"The {label} run's provider kept {cores:.2f} cores busy for the whole run (its event loop runs on one): it was at capacity here, so "
            f"the measured p99 of {fmt(o.get(cols.LATENCY_P99))} ms includes its queue, not only the style and the network. "
            f"It served {fmt(round(per_cpu))} {what} per CPU-second; your {fmt(round(need))} {what} a second take about "
            f"{processes} provider process{'es' if processes > 1 else ''} at {PLANNING_LOAD:.0%} load (the provider is one "
            f"process by design, so more of them means the log partitioned between them).",
            [o.ev("provider_cpu_s"), o.ev("workload.duration_s"), o.ev(cols.LATENCY_P99), o.ev(what if what == "polls" else "delivered")],
            label,
        )
        option = "--max-polls-per-s" if what == "polls" else "--max-deliveries-per-s"
        case.gap(
            f"the {label} run's provider was saturated ({cores:.2f} cores busy), so its latency is a queue; a run with "
            f"fewer consumers per provider measures it below saturation",
            f"labkit decide <requirements.toml> {option} {fmt(round(PLANNING_LOAD * per_cpu))}",
            "decision",
        )


def saturation_words(o: Obs | None) -> str | None:
    """``measured on a saturated provider (0.97 cores busy)`` when ``o`` was, for the confidence line."""
    if o is None:
        return None
    cores = provider_cores(o)
    if cores is None or cores < SATURATED:
        return None
    return f"its latency was measured on a saturated provider ({cores:.2f} cores busy)"
