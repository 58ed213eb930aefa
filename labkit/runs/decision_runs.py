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

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from labkit import styles
from labkit.config import MAX_WORKLOAD_RATE_PER_S, MIN_POLL_INTERVAL_S, RunSettings, WorkloadSettings
from labkit.config.network import network_from
from labkit.errors import ConfigError
from labkit.report.policy import LONG_POLL_WAIT_S, POLL_FLOOR_S, poll_interval
from labkit.report.requirements import Requirements
from labkit.runs.campaign import Log, Point, PointOutcome, Progress, point_id, run_points
from labkit.runs.overhead import Overhead
from labkit.runs.overhead import key as overhead_key

DECIDE_DIR = "decide"
AIM = 0.95  # of --max-minutes: the command should end between 0.8 and 1.1 of it
MIN_DURATION_S = 5.0
MAX_DURATION_S = 24 * 3600.0
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
    variant: str = ""
    # the plan's: how the time budget was spent (the report lists them once)
    budget_notes: tuple[str, ...] = ()
    # what the plan predicted for this run on this machine: start-up (and wind-down), publishing (wall time), drain
    planned: tuple[float, float, float] = (0.0, 0.0, 0.0)

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
            "budget_notes": list(self.budget_notes),
            "planned_s": dict(zip(("startup", "publish", "drain"), self.planned, strict=True)),
        }


@dataclass(frozen=True)
class DecisionPlan:
    """The points of one decision and where their results go."""

    name: str
    results_dir: Path
    points: tuple[DecisionPoint, ...]
    skipped_styles: tuple[tuple[str, str], ...] = ()
    budget_notes: tuple[str, ...] = ()  # how the time budget was spent and what it cut
    estimated_total_s: float = 0.0  # the predicted length of the whole command
    budget_minutes: float = 0.0

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


def _consumer_cap(
    pull: bool, who: str, req: Requirements, interval_s: float, limits: MachineLimits, rate: float | None = None
) -> tuple[int, list[str]]:
    """The consumers one run holds here (polled on a timetable when ``pull``; ``who`` holds them), and the sentence for each cap.

    ``rate`` is the rate the run publishes at (the requirement's unless it was scaled up to hold enough events).
    """
    want = req.consumers
    rate = rate or req.event_rate_per_s
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
        by_rate = max(1, int(limits.max_deliveries_per_s / rate))
        if n > by_rate:
            notes.append(
                f"{by_rate:,} of {want:,} subscribers: {want:,} x {rate:g} events/s is "
                f"{want * rate:,.0f} deliveries/s, over the {limits.max_deliveries_per_s:,.0f} one provider pushes here"
            )
            n = by_rate
    return n, notes


def _drain_timeout(pull: bool, interval_s: float, deliveries: float, limits: MachineLimits) -> float:
    """Long enough for the last poll to come round, or for a push backlog to drain on a loaded machine."""
    wait = 3 * interval_s if pull else deliveries / limits.drain_deliveries_per_s
    return float(min(max(30.0, wait), 3600.0))


@dataclass(frozen=True)
class Shape:
    """A candidate's run before its publishing is sized: who runs it, how many consumers, polled how often."""

    style: str
    variant: str  # the held-request variant's label, or ""
    long_poll_wait_s: float
    timetabled: bool
    receives: bool
    who: str
    consumers: int
    interval_s: float
    notes: tuple[str, ...]
    key: str = ""  # this machine's overhead cache key (the label, the network profile, TLS)

    @property
    def label(self) -> str:
        return self.variant or self.style


def shape(style: str, req: Requirements, limits: MachineLimits, long_poll_wait_s: float = 0.0) -> Shape:
    """``style``'s run at the operating point, its consumers scaled down to ``limits`` (its publishing not sized yet)."""
    info = styles.get(style)
    pull = info is not None and info.direction == "pull"
    receives = info is not None and info.needs_public_endpoint
    interval = poll_interval_for(req)
    # a held poll is answered by each event, like a push: cap it by deliveries, not by the poll rate
    timetabled = pull and long_poll_wait_s <= 0
    who = "receiver" if receives else "poller fleet" if pull else "stream fleet"
    consumers, notes = _consumer_cap(timetabled, who, req, interval, limits)
    # the held-request variant's name as the registry declares it, its spaces as dashes in point labels
    variant = next(v.name for _, v in styles.variants() if v.holds_request).replace(" ", "-") if long_poll_wait_s > 0 else ""
    label = variant or style
    key = overhead_key(label, req.network.name if req.network is not None else "loopback", req.tls)
    return Shape(style, variant, long_poll_wait_s, timetabled, receives, who, consumers, interval, tuple(notes), key)


def _point(sh: Shape, req: Requirements, out: Path | str, duration: float, limits: MachineLimits, seed: int) -> DecisionPoint:
    """One run of the shaped candidate with ``duration`` s of publishing; the rate scaled up when it would hold too few events."""
    t, notes = sh.interval_s, list(sh.notes)
    rate, consumers = req.event_rate_per_s, sh.consumers
    if rate * duration < limits.min_events:
        # a rate too low to hold enough events in the budget: publish faster, and say so (latency per event does not
        # depend on the rate for a push or a held request; a poll's lambda T does, and the report projects it)
        rate = round_sig_up(limits.min_events / duration)
        consumers, notes = _consumer_cap(sh.timetabled, sh.who, req, t, limits, rate)
        consumers, notes = _within_shape(sh, consumers, notes)
        # the rate rounded up: keep the run inside the delivery cap
        duration = min(duration, math.floor(limits.max_deliveries / (rate * consumers) * 10) / 10)
        notes.append(
            f"published at {rate:g} events/s, not {req.event_rate_per_s:g}: {duration:g} s of events at the requirement's rate "
            f"would hold {req.event_rate_per_s * duration:.2g} events, under the {limits.min_events} a measurement needs"
        )
    if sh.timetabled and t * limits.polls_per_run > duration:
        t = max(round(duration / limits.polls_per_run, 3), MIN_POLL_INTERVAL_S)
        consumers, cnotes = _consumer_cap(sh.timetabled, sh.who, req, t, limits, rate)
        consumers, cnotes = _within_shape(sh, consumers, cnotes)
        notes = [n for n in notes if n not in sh.notes] + cnotes
        notes.append(
            f"polled every {t:g} s, not the {sh.interval_s:g} s the target allows: a run of {duration:g} s holds "
            f"{limits.polls_per_run} polls of it at least; latency at {sh.interval_s:g} s is projected (T/2 + RTT)"
        )
    events = rate * duration
    if events < limits.target_events:
        notes.append(f"{duration:g} s of events (about {events:,.0f} events, not {limits.target_events:,}): the time budget")
    data: dict[str, Any] = {
        # each consumer receives ``rate`` on average whoever the events are for: the same deliveries per second
        "workload": {"rate_per_s": req.publish_rate(rate, consumers), "duration_s": duration, "arrival": "poisson", "seed": seed},
        "audience": req.audience,
        "consumer_skew": req.consumer_skew,
        "topics": req.topics,
        "subscriptions": req.subscriptions,
        "styles": (sh.style,),
        "poll_interval_s": t,
        "long_poll_wait_s": sh.long_poll_wait_s,
        "drain_timeout_s": _drain_timeout(sh.timetabled, t, rate * duration * consumers, limits),
        # a webhook's consumers are subscriptions; a poller's or a stream's are the fleet's pollers/streams
        "pollers": 1 if sh.receives else consumers,
        "subscribers": consumers if sh.receives else 1,
        "network": network_from(req.network) if req.network is not None else None,
        "tls": req.tls,
        "out_dir": str(Path(out)),
        "experiment": EXPERIMENT,
    }
    settings = RunSettings.model_validate(data)
    return DecisionPoint(sh.style, settings, point_id(settings), req.consumers, tuple(notes), sh.variant)


def _within_shape(sh: Shape, consumers: int, notes: list[str]) -> tuple[int, list[str]]:
    """Consumers capped again (at another rate or interval) never above the shape's: its start-up cap still holds."""
    if consumers <= sh.consumers:
        return consumers, notes
    return sh.consumers, notes + [n for n in sh.notes if "starting each takes" in n]


def round_sig_up(x: float) -> float:
    """``x`` rounded up to two significant digits (a rate that still holds the events it must)."""
    if x <= 0:
        return x
    step = 10.0 ** (math.floor(math.log10(x)) - 1)
    return round(math.ceil(x / step - 1e-9) * step, 12)


def long_polling_wanted(req: Requirements, allowed: list[str]) -> str | None:
    """The pulled style to long-poll with, when the consumers cannot take a push: long polling is then their fallback."""
    if req.consumers_can_expose_https:
        return None
    return next((s for s in allowed if (info := styles.get(s)) is not None and info.direction == "pull"), None)


def plan_decision(
    req: Requirements,
    out: Path | str = "results",
    *,
    limits: MachineLimits | None = None,
    seed: int = 1,
    overhead: Overhead | None = None,
    spent_s: float = 0.0,
    done: frozenset[str] = frozenset(),
    notes: tuple[str, ...] = (),
) -> DecisionPlan:
    """The runs the decision on ``req`` needs (pure: nothing runs, nothing is written).

    One run per candidate style, plus long polling where the consumers cannot
    take a push (the report weighs held streams against it). Each run's
    publishing is sized so that the whole command (``spent_s`` already spent,
    every run's start-up and drain from ``overhead``, the report) ends near
    ``AIM`` x ``limits.minutes``.

    ``done`` names (by label) the candidates already run: the plan then holds the
    others only, sized from the time left (``spent_s`` is what the command has
    really taken so far), so an overrun of one run shortens the later ones and
    a run quicker than predicted lengthens them. ``notes`` go before the plan's
    own budget notes (the re-plans so far).
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
    shapes = [shape(style, req, limits) for style in allowed]
    if long_poller is not None:
        shapes.append(shape(long_poller, req, limits, long_poll_wait_s=LONG_POLL_WAIT_S))
    shapes = [sh for sh in shapes if sh.label not in done]
    ov = overhead or Overhead()
    shapes = fit_startup(shapes, limits, ov, spent_s)
    sizing = size_publishing(shapes, req, limits, ov, spent_s)
    # a re-plan keeps the first plan's notes and adds what it changed (its own header is the re-plan's line)
    budget_notes = tuple(dict.fromkeys((*notes, *(sizing.notes[1:] if notes else sizing.notes))))
    points = [
        replace(_point(sh, req, out, d, limits, seed), budget_notes=budget_notes, planned=planned)
        for sh, d, planned in zip(shapes, sizing.durations, sizing.planned, strict=True)
    ]
    # The runs at their cap first: the others, sized with what is left, take up the earlier runs' mispredictions (polling
    # second, with over 300 s of events, had left the last pushed runs too little to hold 20 events each at 2,000).
    points = [p for c, p in sorted(zip(sizing.capped, points, strict=True), key=lambda t: not t[0])]
    name = slug(req.name)
    return DecisionPlan(
        name=name,
        results_dir=Path(out) / DECIDE_DIR / name,
        points=tuple(points),
        skipped_styles=tuple(refused),
        budget_notes=budget_notes,
        estimated_total_s=sizing.total_s,
        budget_minutes=limits.minutes,
    )


@dataclass(frozen=True)
class Sizing:
    """Each run's seconds of publishing, the predicted length of the whole command, and what was cut, in words."""

    durations: tuple[float, ...]
    total_s: float
    notes: tuple[str, ...]
    planned: tuple[tuple[float, float, float], ...] = ()  # per run: predicted start-up, publishing (wall), drain
    capped: tuple[bool, ...] = ()  # per run: at its delivery or event cap


STARTUP_SHARE = 0.5  # a run's start-up may take at most this share of its part of the budget
# Never fewer consumers than this (or the requirement's, if fewer): starting a handful costs seconds at most, and a
# run of one consumer measures no fan-out at all; a budget too small for even these is said so by size_publishing.
MIN_CONSUMERS = 10
# A run never starts more than GROWTH x the consumers a run of its candidate started here, at least GROWTH_FLOOR, the
# count measured about linear here (cross-region, TLS, 1,000 events/s: 2,000 streams in 7-9 s, webhooks 12.9 s, a hybrid
# 20 s; docs/decide.md). It was 100 while the run's publisher, falling behind, was counted as start-up (714 in 382 s).
GROWTH = 2
GROWTH_FLOOR = 2000


def fit_startup(shapes: list[Shape], limits: MachineLimits, ov: Overhead, spent_s: float) -> list[Shape]:
    """Each shape with no more consumers than it can start within ``STARTUP_SHARE`` of its part of the budget, said so.

    Starting consumers costs time here (subscriptions, TLS handshakes through the
    network profile's proxy), measured per consumer by ``ov``: a run that would
    spend its whole share starting them would leave no time for events.
    """
    share = max(limits.minutes * 60 * AIM - spent_s - ov.report_seconds, 0.0) / max(len(shapes), 1)
    out = []
    for sh in shapes:
        fixed, per = ov.cost(sh.key).fit()
        fixed = max(fixed + ov.bias_s, 0.0)
        allowed = STARTUP_SHARE * share - fixed
        floor = min(sh.consumers, MIN_CONSUMERS)
        n = max(floor, int(allowed / per)) if per > 0 and allowed > 0 else (sh.consumers if per <= 0 else floor)
        if n < sh.consumers:
            note = (
                f"{n:,} of {sh.consumers:,} consumers: starting each takes about {per * 1000:.0f} ms here, and this run's part of "
                f"the {limits.minutes:g}-minute budget ({share:.0f} s) leaves {max(allowed, 0):.0f} s for it"
            )
            sh = replace(sh, consumers=n, notes=(*sh.notes, note))
        most = ov.cost(sh.key).most_consumers
        grown = max(GROWTH * most, GROWTH_FLOOR)
        if most > 0 and sh.consumers > grown:  # once measured (the first use's probes measure one consumer)
            note = (
                f"{grown:,} of {sh.consumers:,} consumers: starting each takes an unknown time above the {most:,} a run started "
                f"here ({sh.label}, this network profile and TLS), so a run starts at most {GROWTH}x that many (at least "
                f"{GROWTH_FLOOR:,}, the most measured linear here); each decide on this machine goes further"
            )
            sh = replace(sh, consumers=grown, notes=(*sh.notes, note))
        out.append(sh)
    return out


def size_publishing(shapes: list[Shape], req: Requirements, limits: MachineLimits, ov: Overhead, spent_s: float) -> Sizing:
    """Seconds of publishing per run so the command ends near ``AIM`` x the budget: the budget goes to events.

    Every run gets the same publishing time (water-filled: a run that reaches its
    delivery or event cap keeps its cap, the others share what it leaves),
    after each run's start-up and drain (``ov``, measured on this machine) and
    the report. A budget too small for the runs' start-up gives each run
    ``MIN_DURATION_S`` and says so.
    """
    budget = limits.minutes * 60
    rate = req.event_rate_per_s
    share = max(budget * AIM - spent_s, 0.0) / max(len(shapes), 1)
    fixed, slope, cap, drains = [], [], [], []
    for sh in shapes:
        drain = min(sh.interval_s, share / limits.polls_per_run) if sh.timetabled else 0.0
        drains.append(drain)
        fixed.append(ov.startup_s(sh.key, sh.consumers) + drain)
        slope.append(ov.slope(sh.key, 0.0 if sh.timetabled else rate * sh.consumers))
        events_cap = 0.9 * WorkloadSettings.model_fields["max_events"].default / rate
        cap.append(min(limits.max_deliveries / (rate * sh.consumers), events_cap, MAX_DURATION_S))
    free = budget * AIM - spent_s - ov.report_seconds - sum(fixed)
    d = _water_fill(free, slope, cap)
    durations = tuple(round(max(x, MIN_DURATION_S), 1) for x in d)
    total = spent_s + ov.report_seconds + sum(f + k * x for f, k, x in zip(fixed, slope, durations, strict=True))
    notes = [
        f"time budget {limits.minutes:g} min: aiming at {AIM:.0%} of it ({budget * AIM:.0f} s); {spent_s:.0f} s already spent; "
        f"start-up and drain about {sum(fixed):.0f} s over {len(shapes)} runs; the report about {ov.report_seconds:.0f} s; "
        f"predicted {total:.0f} s in all",
        *[ov.source(sh.key) for sh in shapes],
    ]
    capped = [sh.label for sh, x, c in zip(shapes, d, cap, strict=True) if x >= c - 1e-6]
    if capped:
        notes.append(
            f"{', '.join(capped)}: at the cap of {limits.max_deliveries:,} deliveries per run (or the workload's event cap); "
            "the other runs share the time left"
        )
    if free <= 0 or any(x < MIN_DURATION_S and x < c for x, c in zip(d, cap, strict=True)):
        notes.append(
            f"the budget cannot hold every run's start-up and drain with events to spare: each run publishes at least {MIN_DURATION_S:g} s, "
            "so the command may take longer than asked"
        )
    planned = tuple((round(f - dr, 1), round(k * x, 1), round(dr, 1)) for f, k, x, dr in zip(fixed, slope, durations, drains, strict=True))
    return Sizing(durations, total, tuple(notes), planned, tuple(x >= c - 1e-6 for x, c in zip(d, cap, strict=True)))


def _water_fill(free: float, slope: list[float], cap: list[float]) -> list[float]:
    """The common publishing time d with sum(k_i min(d, cap_i)) = free (0 when nothing is free)."""
    n = len(slope)
    out = [0.0] * n
    active = set(range(n))
    while active and free > 0:
        d = free / sum(slope[i] for i in active)
        hit = [i for i in active if cap[i] < d]
        if not hit:
            for i in active:
                out[i] = d
            break
        for i in hit:
            out[i] = cap[i]
            free -= slope[i] * cap[i]
            active.discard(i)
    return out


@dataclass(frozen=True)
class DecisionOutcome:
    """A point of the plan and what ``run_decision`` did with it."""

    point: DecisionPoint
    results_dir: Path
    skipped: bool


def run_decision(
    plan: DecisionPlan,
    *,
    force: bool = False,
    progress: Progress = _quiet,
    log: Log = _quiet,
    on_run: Callable[[DecisionPoint, Path, float], None] | None = None,
    replan: Callable[[frozenset[str]], DecisionPlan] | None = None,
) -> list[DecisionOutcome]:
    """Run every point of ``plan`` not already under its results folder (all of them with ``force``).

    A finished run of the same candidate at the same operating point (style,
    variant, consumers, rate, network, TLS) counts as done even when this plan
    sized its publishing differently (the time budget depends on what this
    machine measured), so a rerun resumes. ``on_run(point, folder, seconds)``
    hears of each run made as soon as it ends. ``replan(done)``, when given, is
    asked after each point for the plan of the candidates not in ``done`` (their
    labels), from the time really left: the rest of the runs are those.
    """
    points = _resumable(plan.points, plan.results_dir, force)
    by_id = {p.point_id: p for p in points}
    finished: set[str] = set()

    def then(o: PointOutcome) -> list[Point]:
        point = by_id[o.point.point_id]
        finished.add(point.label)
        if not o.skipped and on_run is not None:
            on_run(point, o.results_dir, o.elapsed_s)
        rest = [p for p in points if p.label not in finished]
        if replan is not None and rest:
            rest = _resumable(replan(frozenset(finished)).points, plan.results_dir, force)
            by_id.update({p.point_id: p for p in rest})
        return [p.point for p in rest]

    outcomes = run_points(
        [p.point for p in points],
        plan.results_dir,
        phase="decide: runs",
        describe=lambda pt: _describe(by_id[pt.point_id]),
        force=force,
        progress=progress,
        log=log,
        then=then,
    )
    return [DecisionOutcome(by_id[o.point.point_id], o.results_dir, o.skipped) for o in outcomes]


def _resumable(points: tuple[DecisionPoint, ...], folder: Path, force: bool) -> list[DecisionPoint]:
    return list(points) if force else [_resumed(p, folder) for p in points]


_SAME_POINT = ("style", "variant", "consumers", "rate_per_s", "network", "tls", "long_poll_wait_s")


def _resumed(point: DecisionPoint, folder: Path) -> DecisionPoint:
    """``point``, or the point of a finished run of the same candidate at the same operating point under ``folder``."""
    from labkit.results.layout import SUMMARY, read_summary

    if not folder.is_dir():
        return point
    want = {k: point.params.get(k) for k in _SAME_POINT}
    for path in sorted(folder.glob(f"*/{SUMMARY}")):
        try:
            summary = read_summary(path)
        except Exception:  # noqa: S112 - a damaged summary is the campaign's to report, not this lookup's
            continue
        params = summary.get("params") or {}
        pid = summary.get("point")
        if pid == point.point_id:
            return point
        if isinstance(pid, str) and all(params.get(k) == v for k, v in want.items()):
            return replace(point, point_id=pid)
    return point


def _describe(point: DecisionPoint) -> str:
    return f"{point.label} x {point.settings_consumers:,} consumers, {point.settings.workload.duration_s:g} s"
