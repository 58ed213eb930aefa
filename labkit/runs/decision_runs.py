"""The runs a decision needs: from a requirements file to measured points, resumably.

``plan_decision(req)`` is pure: it turns the requirements into one run per
candidate style (every registered style the requirements allow) at the
requirement's operating point (its consumers, event rate, network profile and
TLS, and for a polling style the interval the latency target allows), scaled
down only where this machine cannot hold the point, with every scale-down
stated in words. ``run_decision`` runs the points not already done under
``OUT/decide/<name>/`` (the layout of a sweep: one folder per point, each
with a summary.json naming its point), so a stopped ``labkit decide`` picks
up where it stopped.

The machine's limits are ``MachineLimits``: how many consumers one fleet or
receiver process holds, the request rates one provider serves here, how many
deliveries one run may record, and the time the whole command may take.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit import styles
from labkit.config import MAX_WORKLOAD_RATE_PER_S, MIN_POLL_INTERVAL_S, RunSettings
from labkit.config.network import network_from
from labkit.errors import ConfigError
from labkit.report.policy import LONG_POLL_WAIT_S, POLL_FLOOR_S, poll_interval
from labkit.report.requirements import Requirements
from labkit.runs.campaign import Log, Point, Progress, point_id, run_points

DECIDE_DIR = "decide"
EXPERIMENT = "decide"


def _quiet(*_: Any) -> None:
    return None


@dataclass(frozen=True)
class MachineLimits:
    """What this machine holds; the plan scales a point down to these, and says so.

    The defaults are what a 2-core machine shared with other work holds: one
    poller fleet process and one receiver process each serve up to 10,000
    consumers; one provider answers about ``max_polls_per_s`` polls and pushes
    about ``max_deliveries_per_s`` deliveries a second (2,000 polls/s tripled
    polling's p50 here; one provider process pushed about 700 deliveries per
    CPU-second, so 1,000/s lets 2,000 subscribers at 0.5 events/s run, and
    their latency includes the fan-out queue); a run records at most
    ``max_deliveries`` (event, consumer) deliveries so that it drains in time.
    """

    max_consumers: int = 10_000
    max_polls_per_s: float = 1_000.0
    max_deliveries_per_s: float = 1_000.0
    max_deliveries: int = 40_000
    drain_deliveries_per_s: float = 300.0  # a loaded provider here pushes about this many: the drain waits for them
    target_events: int = 200
    min_events: int = 20
    run_overhead_s: float = 60.0  # start the servers, subscribe, drain, write
    minutes: float = 13.0
    polls_per_run: int = 10  # a pulled style's run holds at least this many intervals


@dataclass(frozen=True)
class DecisionPoint:
    """One run the decision needs: one style, its settings, and how it differs from the operating point."""

    style: str
    settings: RunSettings
    point_id: str
    consumers_wanted: int
    scale_notes: tuple[str, ...] = ()
    variant: str = ""  # a named variant of the style (``long-polling``), else the style's name

    @property
    def label(self) -> str:
        return self.variant or self.style

    @property
    def run_id(self) -> str:
        return self.point.run_id

    @property
    def point(self) -> Point:
        """The campaign's point: the same loop, ids and layout as a sweep's."""
        return Point(EXPERIMENT, self.params, self.settings, self.point_id, name=f"{self.label}-{self.settings_consumers}c")

    @property
    def settings_consumers(self) -> int:
        return consumers_of(self.style, self.settings)

    @property
    def at_operating_point(self) -> bool:
        return not self.scale_notes

    @property
    def params(self) -> dict[str, Any]:
        s = self.settings
        return {
            "style": self.style,
            "variant": self.label,
            "consumers": self.settings_consumers,
            "consumers_wanted": self.consumers_wanted,
            "rate_per_s": s.workload.rate_per_s,
            "duration_s": s.workload.duration_s,
            "poll_interval_s": s.poll_interval_s,
            "long_poll_wait_s": s.long_poll_wait_s,
            "network": s.network.name if s.network is not None else "loopback",
            "tls": s.tls,
            "scale_notes": list(self.scale_notes),
        }


@dataclass(frozen=True)
class DecisionPlan:
    """The points of one decision and where their results go."""

    name: str
    results_dir: Path
    points: tuple[DecisionPoint, ...]
    skipped_styles: tuple[tuple[str, str], ...] = ()

    @property
    def estimated_s(self) -> float:
        return sum(p.settings.workload.duration_s for p in self.points)


def slug(name: str) -> str:
    """A folder name from a requirements name: lower case, dashes, nothing a path could misread."""
    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return s[:60].strip("-") or "requirements"


def consumers_of(style: str, settings: RunSettings) -> int:
    """How many consumers a run of ``style`` holds: subscribers for a style that pushes to an endpoint, else the fleet's size."""
    info = styles.get(style)
    return settings.subscribers if info is not None and info.needs_public_endpoint else settings.pollers


def poll_interval_for(req: Requirements) -> float:
    """The interval the report would poll at: 80 % of (p99 target - RTT) / 0.99, at least 10 ms."""
    interval = poll_interval(req.target_latency_p99_ms, req.network_profile.rtt_ms)
    return max(interval.t_rec_s or POLL_FLOOR_S, MIN_POLL_INTERVAL_S)


def candidate_styles(req: Requirements) -> tuple[list[str], list[tuple[str, str]]]:
    """The registered styles the requirements allow, and (style, why not) for the others."""
    allowed, refused = [], []
    for info in styles.all_styles():
        if info.needs_public_endpoint and not req.consumers_can_expose_https:
            refused.append((info.name, "the consumers cannot expose a public HTTPS endpoint"))
        else:
            allowed.append(info.name)
    return allowed, refused


def _consumer_cap(pull: bool, who: str, req: Requirements, interval_s: float, limits: MachineLimits) -> tuple[int, list[str]]:
    """The consumers one run holds here (polled on a timetable when ``pull``; ``who`` holds them), and the sentence for each cap."""
    want = req.consumers
    n, notes = want, []
    if n > limits.max_consumers:
        n = limits.max_consumers
        notes.append(f"{n:,} of {want:,} consumers: one {who} process holds at most {limits.max_consumers:,}")
    by_events = max(1, limits.max_deliveries // limits.min_events)
    if n > by_events:
        # a run must still carry its minimum of events to every consumer within the delivery cap
        notes.append(
            f"{by_events:,} of {want:,} consumers: {limits.min_events} events each within {limits.max_deliveries:,} deliveries per run"
        )
        n = by_events
    if pull:
        by_rate = max(1, int(limits.max_polls_per_s * interval_s))
        if n > by_rate:
            notes.append(
                f"{by_rate:,} of {want:,} pollers: {want:,} polling every {interval_s:g} s is {want / interval_s:,.0f} polls/s, "
                f"over the {limits.max_polls_per_s:,.0f} polls/s one provider serves here; each poller's latency does not "
                f"depend on how many others poll while the provider keeps up"
            )
            n = by_rate
    else:
        by_rate = max(1, int(limits.max_deliveries_per_s / req.event_rate_per_s))
        if n > by_rate:
            notes.append(
                f"{by_rate:,} of {want:,} subscribers: {want:,} x {req.event_rate_per_s:g} events/s is "
                f"{want * req.event_rate_per_s:,.0f} deliveries/s, over the {limits.max_deliveries_per_s:,.0f} one provider pushes here"
            )
            n = by_rate
    return n, notes


def _duration(req: Requirements, consumers: int, budget_s: float, limits: MachineLimits) -> tuple[float, list[str]]:
    """Seconds of publishing: enough for ``target_events``, within the delivery cap and the time budget."""
    rate = req.event_rate_per_s
    want = limits.target_events / rate
    d, notes = want, []
    by_deliveries = limits.max_deliveries / (rate * consumers)
    if d > by_deliveries:
        d = by_deliveries
        notes.append(f"{limits.max_deliveries:,} deliveries per run at most")
    if d > budget_s:
        d = budget_s
        notes.append(f"a time budget of {budget_s:.0f} s per run so the command ends within {limits.minutes:g} minutes")
    d = max(d, min(want, limits.min_events / rate, budget_s))  # a few events at least, within the time budget
    d = round(max(d, 1.0), 1)
    if notes:
        events = rate * d
        return d, [f"{d:g} s of events (about {events:,.0f} events, not {limits.target_events:,}): " + "; ".join(notes)]
    return d, []


def _drain_timeout(pull: bool, interval_s: float, deliveries: float, limits: MachineLimits) -> float:
    """Long enough for the last poll to come round, or for a push backlog to drain on a loaded machine."""
    wait = 3 * interval_s if pull else deliveries / limits.drain_deliveries_per_s
    return float(min(max(30.0, wait), 3600.0))


def _point(
    style: str, req: Requirements, out: Path | str, budget_s: float, limits: MachineLimits, seed: int, long_poll_wait_s: float = 0.0
) -> DecisionPoint:
    """One run of ``style`` at the operating point, scaled down to ``limits``; a long poll when ``long_poll_wait_s`` > 0."""
    info = styles.get(style)
    pull = info is not None and info.direction == "pull"
    receives = info is not None and info.needs_public_endpoint
    interval = poll_interval_for(req)
    t, notes = interval, []
    # a held poll is answered by each event, like a push: cap it by deliveries, not by the poll rate
    timetabled = pull and long_poll_wait_s <= 0
    who = "receiver" if receives else "poller fleet" if pull else "stream fleet"
    consumers, cnotes = _consumer_cap(timetabled, who, req, t, limits)
    duration, dnotes = _duration(req, consumers, budget_s, limits)
    if timetabled and t * limits.polls_per_run > duration:
        t = max(round(duration / limits.polls_per_run, 3), MIN_POLL_INTERVAL_S)
        notes.append(
            f"polled every {t:g} s, not the {interval:g} s the target allows: a run of {duration:g} s holds "
            f"{limits.polls_per_run} polls of it at least; latency at {interval:g} s is projected (T/2 + RTT)"
        )
        consumers, cnotes = _consumer_cap(timetabled, who, req, t, limits)
        duration, dnotes = _duration(req, consumers, budget_s, limits)
    notes += cnotes
    data: dict[str, Any] = {
        "workload": {"rate_per_s": req.event_rate_per_s, "duration_s": duration, "arrival": "poisson", "seed": seed},
        "styles": (style,),
        "poll_interval_s": t,
        "long_poll_wait_s": long_poll_wait_s,
        "drain_timeout_s": _drain_timeout(timetabled, t, req.event_rate_per_s * duration * consumers, limits),
        # a webhook's consumers are subscriptions; a poller's or a stream's are the fleet's pollers/streams
        "pollers": 1 if receives else consumers,
        "subscribers": consumers if receives else 1,
        "network": network_from(req.network) if req.network is not None else None,
        "tls": req.tls,
        "out_dir": str(Path(out)),
        "experiment": EXPERIMENT,
    }
    settings = RunSettings.model_validate(data)
    # the held-request variant's name as the registry declares it, its spaces as dashes in point labels
    variant = next(v.name for _, v in styles.variants() if v.holds_request).replace(" ", "-") if long_poll_wait_s > 0 else ""
    return DecisionPoint(style, settings, point_id(settings), req.consumers, tuple(notes + dnotes), variant)


def long_polling_wanted(req: Requirements, allowed: list[str]) -> str | None:
    """The pulled style to long-poll with, when the consumers cannot take a push: long polling is then their fallback."""
    if req.consumers_can_expose_https:
        return None
    return next((s for s in allowed if (info := styles.get(s)) is not None and info.direction == "pull"), None)


def plan_decision(req: Requirements, out: Path | str = "results", *, limits: MachineLimits | None = None, seed: int = 1) -> DecisionPlan:
    """The runs the decision on ``req`` needs (pure: nothing runs, nothing is written).

    One run per candidate style, plus long polling where the consumers cannot
    take a push (the report weighs held streams against it).
    """
    limits = limits or MachineLimits()
    if req.event_rate_per_s > MAX_WORKLOAD_RATE_PER_S:
        raise ConfigError(
            f"event_rate_per_s = {req.event_rate_per_s:g}: a decision runs its workload at that rate and one run publishes "
            f"at most {MAX_WORKLOAD_RATE_PER_S:,} events/s; state at most {MAX_WORKLOAD_RATE_PER_S} "
            "(labkit report --requirements, which runs nothing, accepts more)"
        )
    allowed, refused = candidate_styles(req)
    if not allowed:
        raise ConfigError("requirements: no registered delivery style suits them")
    long_poller = long_polling_wanted(req, allowed)
    runs = len(allowed) + (1 if long_poller else 0)
    budget_s = max(limits.minutes * 60 / runs - limits.run_overhead_s, 10.0)
    points = [_point(style, req, out, budget_s, limits, seed) for style in allowed]
    if long_poller is not None:
        points.append(_point(long_poller, req, out, budget_s, limits, seed, long_poll_wait_s=LONG_POLL_WAIT_S))
    name = slug(req.name)
    return DecisionPlan(name=name, results_dir=Path(out) / DECIDE_DIR / name, points=tuple(points), skipped_styles=tuple(refused))


@dataclass(frozen=True)
class DecisionOutcome:
    """A point of the plan and what ``run_decision`` did with it."""

    point: DecisionPoint
    results_dir: Path
    skipped: bool


def run_decision(plan: DecisionPlan, *, force: bool = False, progress: Progress = _quiet, log: Log = _quiet) -> list[DecisionOutcome]:
    """Run every point of ``plan`` not already under its results folder (all of them with ``force``)."""
    by_id = {p.point_id: p for p in plan.points}
    outcomes = run_points(
        [p.point for p in plan.points],
        plan.results_dir,
        phase="decide: runs",
        describe=lambda pt: _describe(by_id[pt.point_id]),
        force=force,
        progress=progress,
        log=log,
    )
    return [DecisionOutcome(by_id[o.point.point_id], o.results_dir, o.skipped) for o in outcomes]


def _describe(point: DecisionPoint) -> str:
    return f"{point.label} x {point.settings_consumers:,} consumers, {point.settings.workload.duration_s:g} s"
