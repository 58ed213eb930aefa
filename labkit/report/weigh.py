"""Every candidate weighed on its measured numbers: hard requirements first, then cost, then traced tie-breakers.

A candidate is every delivery variant the runs measured (webhook push, polling,
long polling, each held stream, batched or thin webhooks), at the measurement
nearest the requirement's operating point, plus the options the runs did not
measure (listed, never chosen over a measured candidate that meets every
requirement). For each candidate:

1. **Hard requirements**, each judged on the measurement with its standard
   error: the consumers can take the style (a public endpoint or not, from the
   registry), p99 within the target, nothing lost where nothing may be,
   no duplicate counted twice where none may be, events in log order where
   ordering is required (from the per-event records). A p99 within
   ``policy.TIE_SE`` standard errors of the target is a tie with it: it
   passes, and the confidence says how narrowly.
2. **Cost at the operating point**, measured: provider CPU per delivered event
   -> provider processes at 70 % of a core (against the server budget), bytes
   per event -> GB a month (against the bandwidth budget), requests per event,
   connections held. Compared in that order; two values within the tie
   margin are a tie on that measure and the next decides.
3. **Tie-breakers**, stated and traced, only where every cost is a tie: a
   smaller security surface (nothing exposed on the consumer), the use case's
   leaning in the article (push or pull), the lower measured p99.

The cheapest candidate that meets every hard requirement wins. A measured
candidate is never set aside by a rule: each row says which number of its own
put it out, or which cheaper candidate beat it and on what.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from labkit import styles
from labkit.report.observations import Evidence, Obs, fmt, logdist, nearest
from labkit.report.policy import P99_FRACTION, RUN_NOISE, TIE_SE, gb_per_month, processes_needed, round_sig
from labkit.report.requirements import Requirements
from labkit.report.scale import MEASURED, PROJECTED, differences
from labkit.results import columns as cols

PASS, FAIL, TIE, NA, UNMEASURED = "pass", "fail", "tie", "n/a", "not measured"
CPU_TICK_S = 0.01  # the kernel's CPU accounting resolution: a run's CPU-seconds are known to about this
NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Cell:
    """One entry of the options table: a candidate's number against one requirement or cost, traced."""

    what: str
    verdict: str  # pass | fail | tie | n/a | not measured (for a cost: within | over | "" when no budget)
    shown: str
    value: float | None = None
    se: float | None = None
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True)
class Cost:
    """A candidate's cost at the operating point, with standard errors, for the comparison."""

    cpu_s: float | None  # provider CPU per delivered event
    cpu_se: float
    processes: int | None
    bytes: float | None
    bytes_se: float
    gb_month: float | None
    requests: float | None
    requests_se: float
    connections: int | None


@dataclass(frozen=True)
class OptionRow:
    """One candidate: its measurement, its verdicts against each hard requirement, its cost, why it won or lost."""

    option: str
    style: str | None
    run_id: str | None
    basis: str  # measured | scaled | projected | not measured
    basis_text: str
    hard: tuple[Cell, ...]
    cost: tuple[Cell, ...]
    meets_all: bool
    within_budget: bool
    why: str = ""
    chosen: bool = False
    costs: Cost | None = field(default=None, repr=False)
    p99: float | None = None
    failed: tuple[str, ...] = ()

    @property
    def measured(self) -> bool:
        return self.basis != NOT_MEASURED


@dataclass(frozen=True)
class Weighing:
    """The options table and what it chose."""

    rows: tuple[OptionRow, ...]
    chosen: OptionRow
    ties: tuple[str, ...]  # the candidates the winner tied with on every cost
    tie_note: str  # what broke the tie and what would separate them, or ""
    runner_up: OptionRow | None
    margin: str  # the measure the winner beat the runner-up on, in words


# ---------------------------------------------------------------- standard errors


def p99_se(o: Obs) -> float | None:
    """The p99's standard error, approximated from order statistics: sqrt(q(1 - q) / n) x the local slope of the quantiles.

    The slope comes from the measured p90, p99 and max (the geometric mean of the
    slope below and above the p99); n is the deliveries measured. An
    approximation, stated as one in the report.
    """
    p90, p99, mx, n = o.get(cols.LATENCY_P90), o.get(cols.LATENCY_P99), o.get(cols.LATENCY_MAX), o.get(cols.DELIVERED)
    if p99 is None or not n or n < 2:
        return None
    slopes = []
    if p90 is not None and p99 > p90:
        slopes.append((p99 - p90) / (0.99 - 0.90))
    if mx is not None and mx > p99:
        slopes.append((mx - p99) / max(1.0 - 1.0 / n - 0.99, 1.0 / n))
    if not slopes:
        return None
    slope = math.exp(sum(math.log(s) for s in slopes) / len(slopes))
    return math.sqrt(0.99 * 0.01 / n) * slope


def _counting_rel(o: Obs) -> float:
    """Relative counting error of a per-event ratio: 1 / sqrt(events published)."""
    n = o.get(cols.PUBLISHED) or o.get(cols.DELIVERED)
    return 1.0 / math.sqrt(n) if n and n > 0 else 1.0


# ---------------------------------------------------------------- the measurement nearest the operating point


def pick(obs: Sequence[Obs], req: Requirements, t_rec: float | None) -> Obs | None:
    """The observation nearest the operating point: fewest differences, then consumers, rate and (polled) interval."""

    def distance(o: Obs) -> float:
        d = len(differences(o, req)) * 100 + min(logdist(o.consumers, req.consumers), 50) + min(logdist(o.rate, req.event_rate_per_s), 50)
        if t_rec and _timetabled(o):
            d += min(logdist(o.interval_s, t_rec), 50)
        return d

    return nearest(obs, distance)


def _timetabled(o: Obs) -> bool:
    """A poll on a timetable: its latency is set by its interval (the unit says so)."""
    return styles.get(o.style) is not None and styles.unit(o.style).shows_interval() and not _holds(o)


def _holds(o: Obs) -> bool:
    """The consumer holds a connection open between events: a held stream, or a held (long) poll."""
    info = styles.get(o.style)
    if info is None:
        return False
    if info.direction == "push":
        return not info.needs_public_endpoint
    wait = o.row.get("settings.long_poll_wait_s") or o.row.get("param.long_poll_wait_s")
    try:
        return float(wait or 0) > 0
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------- hard requirements


def _p99_at_point(o: Obs, t_rec: float | None) -> tuple[float | None, str]:
    """The p99 the candidate would have at the operating point, and how it was obtained.

    A timetabled poll measured at another interval is shifted by the model's
    0.99 (T - T_measured): its delay is uniform on [0, T] plus what the run measured.
    """
    p99 = o.get(cols.LATENCY_P99)
    if p99 is None or not (t_rec and _timetabled(o) and o.interval_s) or logdist(o.interval_s, t_rec) <= math.log(1.2):
        return p99, MEASURED
    return p99 + P99_FRACTION * (t_rec - o.interval_s) * 1000, PROJECTED


def _latency_cell(o: Obs, req: Requirements, t_rec: float | None) -> Cell:
    p99, how = _p99_at_point(o, t_rec)
    if p99 is None:
        return Cell("p99 within target", UNMEASURED, "no p99 measured", evidence=(o.ev(cols.LATENCY_P99),))
    se = p99_se(o)
    target = req.target_latency_p99_ms
    err = TIE_SE * (se or 0.0)
    verdict = PASS if p99 + err < target else FAIL if p99 - err > target else TIE
    spread = f" ± {fmt(round_sig(se, 2))} ms" if se is not None else " ms (no SE: the run recorded no p90 or max)"
    shown = f"{fmt(round_sig(p99, 3))}{spread}" + (
        f" (at T = {fmt(t_rec)} s, shifted by the model from the measured T = {fmt(o.interval_s)} s)" if how == PROJECTED else ""
    )
    shown += f" vs {fmt(target)} ms"
    ev = [o.ev(cols.LATENCY_P99), o.ev(cols.LATENCY_P90), o.ev(cols.LATENCY_MAX), o.ev(cols.DELIVERED)]
    if how == PROJECTED:
        ev.append(o.ev(cols.POLL_INTERVAL_S))
    return Cell("p99 within target", verdict, shown, p99, se, tuple(e for e in ev if e.value is not None))


def _count_cell(o: Obs, what: str, column: str, noun: str) -> Cell:
    v = o.get(column)
    if v is None:
        return Cell(what, UNMEASURED, f"{column} not measured")
    return Cell(what, PASS if v == 0 else FAIL, f"{fmt(v)} {noun}", v, math.sqrt(v), (o.ev(column),))


def hard_cells(o: Obs, req: Requirements, t_rec: float | None) -> tuple[Cell, ...]:
    """The candidate measured in ``o`` against every hard requirement that applies."""
    info = styles.get(o.style)
    reach = info is None or not info.needs_public_endpoint or req.consumers_can_expose_https
    out = [
        Cell(
            "consumers can take it",
            PASS if reach else FAIL,
            "needs a public HTTPS endpoint on each consumer (the style registry)"
            if info is not None and info.needs_public_endpoint
            else "outbound only (the style registry)",
        ),
        _latency_cell(o, req, t_rec),
    ]
    if not req.missed_events_tolerated:
        out.append(_count_cell(o, "nothing lost", cols.LOST, "lost"))
    if not req.duplicates_tolerated:
        out.append(_count_cell(o, "no duplicate processed", cols.DUPLICATES, "processed twice"))
    if req.ordering == "total":
        out.append(_count_cell(o, "in log order", cols.OUT_OF_ORDER, "received after a later event"))
    elif req.ordering == "per-key":
        # the lab's events carry no key, so a per-key order cannot be judged; the total-order count is shown beside it
        inv = o.get(cols.OUT_OF_ORDER)
        shown = "the workload's events carry no key" + (f"; {fmt(inv)} received after a later event of the log" if inv is not None else "")
        out.append(Cell("in order per key", UNMEASURED, shown, inv, None, (o.ev(cols.OUT_OF_ORDER),) if inv is not None else ()))
    return tuple(out)


# ---------------------------------------------------------------- cost


def costs_of(o: Obs, req: Requirements) -> Cost:
    """The candidate's cost at the operating point from its measurement (per delivered event, scaled by rate x consumers)."""
    rel = _counting_rel(o)
    cpu, delivered = o.get(cols.PROVIDER_CPU_S), o.get(cols.DELIVERED)
    cpu_s = cpu / delivered if cpu is not None and delivered else None
    cpu_se = cpu_s * math.hypot(RUN_NOISE, rel) + CPU_TICK_S / delivered if cpu_s is not None and delivered else 0.0
    deliveries = req.event_rate_per_s * req.consumers
    bpe, rpe = o.get(cols.BYTES_PER_EVENT), o.get(cols.REQUESTS_PER_EVENT)
    # held between events: one per consumer for a stream or a held poll (the style's nature), none for a request per event
    connections = req.consumers if _holds(o) else 0
    return Cost(
        cpu_s=cpu_s,
        cpu_se=cpu_se,
        processes=processes_needed(cpu_s, deliveries) if cpu_s is not None else None,
        bytes=bpe,
        bytes_se=(bpe or 0.0) * rel,
        gb_month=gb_per_month(bpe, req.event_rate_per_s, req.consumers) if bpe is not None else None,
        requests=rpe,
        requests_se=(rpe or 0.0) * rel,
        connections=connections,
    )


def _budget_cell(
    what: str, amount: float, budget: float | None, unit: str, shown: str, value: float, se: float, evidence: tuple[Evidence, ...]
) -> tuple[Cell, bool]:
    """A cost against its budget: "over", "within" or "" (no budget stated), the budget in the text; and whether it is within."""
    over = budget is not None and amount > budget
    verdict = "over" if over else "within" if budget is not None else ""
    shown += f"; budget {fmt(budget)}{unit})" if budget is not None else ")"
    return Cell(what, verdict, shown, value, se, evidence), not over


def cost_cells(o: Obs, c: Cost, req: Requirements) -> tuple[tuple[Cell, ...], bool]:
    """The options table's cost cells, and whether the candidate stays within every stated budget."""
    servers, bandwidth = req.budget.servers, req.budget.bandwidth_gb_per_month
    within = True
    cells = []
    if c.cpu_s is not None and c.processes is not None:
        shown = f"{fmt(c.processes)} ({fmt(round_sig(c.cpu_s * 1000, 3))} ± {fmt(round_sig(c.cpu_se * 1000, 2))} ms CPU per delivery"
        evidence = (o.ev(cols.PROVIDER_CPU_S), o.ev(cols.DELIVERED))
        cell, ok = _budget_cell("provider processes at 70 %", c.processes, servers, "", shown, c.cpu_s, c.cpu_se, evidence)
        cells.append(cell)
        within &= ok
    else:
        cells.append(Cell("provider processes at 70 %", UNMEASURED, "provider CPU not measured"))
    if c.bytes is not None and c.gb_month is not None:
        shown = f"{fmt(round_sig(c.gb_month, 3))} ({fmt(round_sig(c.bytes, 3))} ± {fmt(round_sig(c.bytes_se, 2))} B per event"
        cell, ok = _budget_cell("GB a month", c.gb_month, bandwidth, " GB", shown, c.bytes, c.bytes_se, (o.ev(cols.BYTES_PER_EVENT),))
        cells.append(cell)
        within &= ok
    else:
        cells.append(Cell("GB a month", UNMEASURED, "bytes per event not measured"))
    cells.append(
        Cell(
            "requests per event",
            "",
            f"{fmt(round_sig(c.requests, 3))} ± {fmt(round_sig(c.requests_se, 2))}" if c.requests is not None else "not measured",
            c.requests,
            c.requests_se,
            (o.ev(cols.REQUESTS_PER_EVENT),),
        )
    )
    held_ev = (o.ev(cols.CONNECTIONS),) if o.has(cols.CONNECTIONS) else (o.ev(cols.CONSUMERS),) if o.has(cols.CONSUMERS) else ()
    cells.append(Cell("connections held", "", f"{fmt(c.connections)}", float(c.connections or 0), 0.0, held_ev))
    return tuple(cells), within
