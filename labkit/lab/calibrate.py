"""Measure this machine's loopback costs per style, once: the base of every model (``labkit.model.calibration``).

Each registered style runs once on loopback through the same session a real
run uses (provider, consumer, seeded workload), short and at a moderate rate,
and says which of its costs the run measured (``Style.calibration_costs``): the
webhook's delivery and attempt, the poller's round trip, a stream's frame and
write cost. The result is cached per machine fingerprint and labkit version;
``calibration_for_run`` is what the pipeline calls before a run (the cache, an
override from ``LABKIT_CALIBRATION``, or a new measurement on first use, or
when the cache lacks a cost a style declares: it predates that cost).

Cheap by design: about 2.5 s of events per run, one consumer (a style whose
cost needs a fan-out asks for more, or for a second run), no network profile,
no TLS; the whole calibration takes well under a minute.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from labkit._version import __version__
from labkit.config import RunSettings, WorkloadSettings
from labkit.lab.session import Progress, Session, no_progress, raise_if_cancelled
from labkit.lab.workload import build_workload
from labkit.model import calibration as cal
from labkit.styles.base import unit, units

PHASE = "calibrating this machine"
RATE_PER_S = 50.0
DURATION_S = 2.5
POLL_INTERVAL_S = 0.1  # lambda T = 5: nearly every poll carries events, as the polls an event waits for do
SEED = 1


def calibration_settings() -> RunSettings:
    """The loopback runs a calibration makes: every style, one consumer each, a short Poisson workload."""
    wl = WorkloadSettings(arrival="poisson", rate_per_s=RATE_PER_S, duration_s=DURATION_S, seed=SEED)
    return RunSettings(workload=wl, pollers=1, subscribers=1, poll_interval_s=POLL_INTERVAL_S, drain_timeout_s=20)


def calibration_plan(settings: RunSettings) -> dict[str, tuple[int, ...]]:
    """The styles a calibration at ``settings`` measures, each with the consumers of each of its runs.

    The one place the runs are decided: ``ameasure`` makes exactly these and
    records exactly these (``measured_with``), so the record cannot drift from what ran.
    """
    return {u.info.name: u.calibration_runs() for u in units() if u.calibrates() and u.refuse(settings) is None}


async def ameasure(progress: Progress = no_progress, phase: str = PHASE) -> cal.Calibration:
    """Run every style that accepts the calibration's settings on loopback (each run it asks for) and collect their costs."""
    base = calibration_settings()
    plan = calibration_plan(base)
    costs: dict[str, dict[str, float]] = {}
    work = Path(tempfile.mkdtemp(prefix="labkit-calibrate-"))
    try:
        for i, (name, runs) in enumerate(plan.items()):
            progress(phase, i, len(plan))
            style = unit(name)
            measured: dict[str, float] = {}
            for n in runs:
                settings = base.model_copy(update={"styles": (name,), "pollers": n, "subscribers": n})
                run = await Session(style, settings, build_workload(settings.workload), work).arun()
                raise_if_cancelled()
                measured.update(style.calibration_costs(run, settings))
            if measured:
                costs[name] = measured
        progress(phase, len(plan), len(plan))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    fp = cal.fingerprint()
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return cal.Calibration(
        id=cal.new_id(costs, fp, created),
        fingerprint=fp,
        labkit_version=__version__,
        created=created,
        costs=costs,
        measured_with=_measured_with(base, plan),
    )


def _measured_with(settings: RunSettings, plan: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """How the calibration was measured (``plan``: the runs it made), and how busy the machine was then (a busy machine measures a larger base)."""
    wl = settings.workload
    return {
        "load_average": os.getloadavg()[0],
        "rate_per_s": wl.rate_per_s,
        "duration_s": wl.duration_s,
        "arrival": wl.arrival,
        "poll_interval_s": settings.poll_interval_s,
        # Both keys stay (the file's schema_version 1 only ever gains keys). ``consumers`` is the first (base)
        # run's, as it was when each style made one run; ``consumers_per_run`` every run's (the webhook's
        # fan-out run beside its single delivery's).
        "consumers": {name: runs[0] for name, runs in plan.items() if runs},
        "consumers_per_run": {name: list(runs) for name, runs in plan.items()},
        "network": "loopback",
        "tls": False,
        "webhook_connection": settings.webhook_connection,
    }


def missing_costs(calibration: cal.Calibration) -> list[str]:
    """The costs the styles declare (``Style.calibration_cost_names``) that ``calibration`` lacks, as ``style cost``.

    A calibration made before a style measured a cost (an older labkit of the
    same version, a cache from before the cost existed) is stale: its models
    would leave that cost's term out.
    """
    settings = calibration_settings()
    return [
        f"{u.info.name} {name}"
        for u in units()
        if u.calibrates() and u.refuse(settings) is None
        for name in u.calibration_cost_names()
        if calibration.cost(u.info.name, name) is None
    ]


async def arecalibrate(progress: Progress = no_progress, phase: str = PHASE) -> tuple[cal.Calibration, Path]:
    """Measure again and replace this machine's cached calibration; the calibration and its file."""
    measured = await ameasure(progress, phase)
    path = cal.save(measured)
    return cal.Calibration(**{**measured.__dict__, "path": str(path)}), path


async def calibration_for_run(progress: Progress = no_progress) -> cal.Calibration | None:
    """The calibration a run's models use: the override, the cache, or (first use) a new measurement, cached."""
    overridden, chosen = cal.override()
    if overridden:
        return chosen
    cached = cal.cached()
    phase = PHASE
    if cached is not None:
        missing = missing_costs(cached)
        if not missing:
            return cached
        phase = f"{PHASE} again (the cached calibration lacks {', '.join(missing)})"
    measured, _ = await arecalibrate(progress, phase)
    return measured
