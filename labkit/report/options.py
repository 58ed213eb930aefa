"""The options table: every candidate's row, and the cheapest that meets every hard requirement.

``weigh(obs, req, t_rec, leaning)`` builds one ``OptionRow`` per measured
variant (``labkit.report.weigh`` judges its hard requirements and its cost),
a row for each option the runs did not measure, and chooses:

1. among the candidates that meet every hard requirement and stay within the
   budget, the cheapest; else, stated, among those that meet every hard
   requirement; else the one that fails the fewest (the confidence is low);
2. "cheapest" compares provider processes (from CPU per delivery, within the
   tie margin), then GB a month, then requests per event, then connections held;
3. candidates tied on every cost go to the tie-breakers, in order: nothing
   exposed on the consumer (the security factor), the use case's leaning
   (fit), the lower measured p99; the row says what broke the tie and what
   measurement would separate them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from labkit import styles
from labkit.report.observations import Obs, Observations, fmt
from labkit.report.policy import RECONCILE_S, RUN_NOISE, TIE_SE, round_sig, tie
from labkit.report.requirements import Requirements
from labkit.report.scale import PROJECTED, basis_of
from labkit.report.terms import FALLBACK, THIN, WEBHOOK, family_options, options
from labkit.report.weigh import FAIL, NOT_MEASURED, PASS, TIE, Cell, Cost, OptionRow, Weighing, cost_cells, costs_of, hard_cells, pick
from labkit.results import columns as cols


def _row(option: str, o: Obs, req: Requirements, t_rec: float | None) -> OptionRow:
    hard = hard_cells(o, req, t_rec)
    cost = costs_of(o, req)
    cells, within = cost_cells(o, cost, req)
    basis, text = basis_of(o, req)
    if _reconciles(o):
        hard, cells, text = _reconciled(o, req, hard, cells, text)
    failed = tuple(c.what for c in hard if c.verdict == FAIL)
    p99 = next((c.value for c in hard if c.what == "p99 within target"), None)
    return OptionRow(option, o.style, o.run_id, basis, text, hard, cells, not failed, within, costs=cost, p99=p99, failed=failed)


def _reconciles(o: Obs) -> bool:
    """The row measured a variant whose consumer also reconciles from the cursor feed (the registry says so)."""
    info = styles.get(o.style)
    return info is not None and any(v.reconciles and v.name == o.variant for v in info.declared_variants)


def _reconciled(o: Obs, req: Requirements, hard: tuple[Cell, ...], cells: tuple[Cell, ...], text: str) -> tuple[Any, Any, str]:
    """A measured hybrid's cells with the reconciler's own share of them, traced to its ``reconcile`` columns.

    The reconciler's requests and bytes are inside the run's totals (it was run, not
    added); each cell says how much of it was the reconciler's, and the basis says at
    what interval it was measured and what the report's interval would cost by the model.
    """
    interval, rpe, bpe = o.get(cols.RECONCILE_INTERVAL_S), o.get(cols.RECONCILE_REQUESTS_PER_EVENT), o.get(cols.RECONCILE_BYTES_PER_EVENT)
    recovered, late = o.get(cols.RECONCILE_RECOVERED), o.get(cols.RECONCILE_PUSHED_AFTER_RECOVERY)
    if interval is None:
        return hard, cells, text
    at_report = 1.0 / (req.event_rate_per_s * RECONCILE_S)
    text += (
        f"; webhooks and a reconciling poll every {fmt(interval)} s per consumer, run as one (the report recommends every "
        f"{fmt(RECONCILE_S)} s, where its polls would cost {fmt(round_sig(at_report, 2))} requests per event by the model)"
    )
    extra = {
        "requests per event": (f"the reconciler's {fmt(round_sig(rpe or 0.0, 2))} included", cols.RECONCILE_REQUESTS_PER_EVENT),
        "GB a month": (f"the reconciler's {fmt(round_sig(bpe or 0.0, 3))} B per event included", cols.RECONCILE_BYTES_PER_EVENT),
    }
    cells = tuple(
        replace(c, shown=f"{c.shown}; {extra[c.what][0]}", evidence=(*c.evidence, o.ev(extra[c.what][1]), o.ev(cols.RECONCILE_INTERVAL_S)))
        if c.what in extra and c.evidence
        else c
        for c in cells
    )
    found = (
        f"; the reconciler recovered {fmt(recovered or 0)} events push had not delivered, and {fmt(late or 0)} were pushed again "
        "after their recovery (processed once)"
    )
    hard = tuple(
        replace(
            c, shown=c.shown + found, evidence=(*c.evidence, o.ev(cols.RECONCILE_RECOVERED), o.ev(cols.RECONCILE_PUSHED_AFTER_RECOVERY))
        )
        if c.what == "nothing lost"
        else c
        for c in hard
    )
    return hard, cells, text


def _unmeasured(option: str, why: str) -> OptionRow:
    return OptionRow(option, None, None, NOT_MEASURED, why, (), (), False, False, why=f"not measured: {why}")


# ---------------------------------------------------------------- comparing two candidates' cost

Compare = tuple[int, str]  # (-1: a cheaper, 1: b cheaper, 0: tie), and the measure in words


def _by_processes(a: Cost, b: Cost) -> Compare:
    if a.processes is None or b.processes is None or a.cpu_s is None or b.cpu_s is None:
        return 0, ""
    if a.processes == b.processes or tie(a.cpu_s, a.cpu_se, b.cpu_s, b.cpu_se):
        return 0, f"provider processes ({fmt(a.processes)} and {fmt(b.processes)})"
    return (-1 if a.processes < b.processes else 1), "provider processes"


def _by_value(name: str, get: Callable[[Cost], tuple[float | None, float]]) -> Callable[[Cost, Cost], Compare]:
    def compare(a: Cost, b: Cost) -> Compare:
        (va, sa), (vb, sb) = get(a), get(b)
        if va is None or vb is None:
            return 0, ""
        if tie(va, sa, vb, sb):
            return 0, name
        return (-1 if va < vb else 1), name

    return compare


COMPARISONS: tuple[Callable[[Cost, Cost], Compare], ...] = (
    _by_processes,
    _by_value("bytes per event", lambda c: (c.bytes, c.bytes_se)),
    _by_value("requests per event", lambda c: (c.requests, c.requests_se)),
    _by_value("connections held", lambda c: (float(c.connections) if c.connections is not None else None, 0.0)),
)


def compare(a: OptionRow, b: OptionRow) -> tuple[int, str, list[str]]:
    """Which of two candidates costs less, on which measure, and the measures they tied on before it."""
    tied: list[str] = []
    if a.costs is None or b.costs is None:
        return 0, "", tied
    for cmp in COMPARISONS:
        sign, what = cmp(a.costs, b.costs)
        if sign:
            return sign, what, tied
        if what:
            tied.append(what)
    return 0, "", tied


# ---------------------------------------------------------------- tie-breakers


def _exposes(row: OptionRow) -> bool:
    info = styles.get(row.style or "")
    return info is not None and info.needs_public_endpoint


def _leans(row: OptionRow, leaning: str) -> bool:
    info = styles.get(row.style or "")
    return info is not None and leaning in ("push", "pull") and info.direction == leaning


def break_tie(rows: list[OptionRow], leaning: str) -> tuple[OptionRow, str]:
    """The candidate the tie-breakers pick among ``rows`` (tied on every cost), and which breaker decided."""
    pool = rows
    closed = [r for r in pool if not _exposes(r)]
    if closed and len(closed) < len(pool):
        return min(closed, key=_p99_key), "nothing exposed on the consumer (security)"
    leaning_rows = [r for r in pool if _leans(r, leaning)]
    if leaning_rows and len(leaning_rows) < len(pool):
        return min(leaning_rows, key=_p99_key), f"the use case leans to {leaning} (fit to the use case)"
    return min(pool, key=_p99_key), "the lower measured p99 (latency)"


def _p99_key(r: OptionRow) -> tuple[float, str]:
    return (r.p99 if r.p99 is not None else math.inf, r.option)


def separating_note(a: OptionRow, b: OptionRow, measures: list[str]) -> str:
    """What measurement would separate two tied candidates."""
    if a.costs is None or b.costs is None:
        return ""
    ca, cb = a.costs, b.costs
    if ca.bytes and cb.bytes and ca.bytes != cb.bytes:
        rel = abs(ca.bytes - cb.bytes) / max(ca.bytes, cb.bytes)
        need = (TIE_SE * math.sqrt(2)) ** 2 / rel**2 if rel > 0 else math.inf
        return (
            f"their bytes per event differ by {fmt(round_sig(rel * 100, 2))} %, inside the counting error; about "
            f"{fmt(round_sig(need, 2))} events per run would separate them"
        )
    if ca.cpu_s and cb.cpu_s and ca.cpu_s != cb.cpu_s:
        return (
            f"their CPU per delivery differs by less than the {fmt(RUN_NOISE * 100)} % run-to-run allowance; repeated runs "
            "on a quiet machine would separate them"
        )
    return "they measured the same on " + ", ".join(measures)


# ---------------------------------------------------------------- the table and the choice


def candidate_rows(obs: Observations, req: Requirements, t_rec: float | None) -> list[OptionRow]:
    """One row per measured variant (at the measurement nearest the operating point), then the unmeasured options."""
    rows: list[OptionRow] = []
    for variant in obs.variants:
        if styles.get(next(o.style for o in obs.of(variant))) is None:
            continue
        o = pick(obs.of(variant), req, t_rec)
        if o is not None:
            rows.append(_row(variant, o, req, t_rec))
    measured = {r.option for r in rows}
    webhook = next((r for r in rows if r.option == WEBHOOK), None)
    push_family = family_options("push")
    for option in options():
        if option in measured:
            continue
        if option == FALLBACK and webhook is not None:
            rows.append(_fallback(webhook, req))
        elif option in push_family and not req.consumers_can_expose_https:
            rows.append(_unmeasured(option, "the consumers cannot expose a public HTTPS endpoint, so a webhook has nowhere to land"))
        elif option == THIN:
            rows.append(_unmeasured(option, "thin events and the fetch per event were not run"))
        else:
            rows.append(_unmeasured(option, "no run measured it"))
    return rows


def _fallback(webhook: OptionRow, req: Requirements) -> OptionRow:
    """Webhooks + a reconciling poller: the webhook's measured row, plus the reconciler's polls (projected, not measured).

    The reconciler reads the cursor feed, so what push lost it recovers: a
    failed "nothing lost" becomes a projected pass. It ranks after every
    measured candidate of the same standing: it is not chosen over what was measured.
    """
    extra = 1.0 / (req.event_rate_per_s * RECONCILE_S)
    text = (
        f"the measured webhook row plus a reconciling poll every {fmt(RECONCILE_S)} s per consumer (projected: "
        f"+{fmt(round_sig(extra, 2))} requests per event); the hybrid was not run as one"
    )
    hard = tuple(
        replace(c, verdict=PASS, shown=f"{c.shown}; the reconciler recovers them from the cursor feed (projected)")
        if c.what == "nothing lost" and c.verdict == FAIL
        else c
        for c in webhook.hard
    )
    failed = tuple(c.what for c in hard if c.verdict == FAIL)
    costs = webhook.costs
    if costs is not None and costs.requests is not None:
        costs = replace(costs, requests=costs.requests + extra)
    cells = tuple(
        replace(c, shown=f"{c.shown} + {fmt(round_sig(extra, 2))} (reconciler, projected)") if c.what == "requests per event" else c
        for c in webhook.cost
    )
    return replace(
        webhook, option=FALLBACK, basis=PROJECTED, basis_text=text, hard=hard, cost=cells, costs=costs, failed=failed, meets_all=not failed
    )


TAKE = "consumers can take it"  # the hard requirement no other can make up for (labkit.report.weigh)


def _tier(r: OptionRow) -> float:
    """Lower is better: meets everything within budget, meets everything, then fewest failures; a projected row after a measured one."""
    if not r.measured:
        return 99.0
    base = 0.0 if r.meets_all and r.within_budget else 1.0 if r.meets_all else 2.0 + len(r.failed)
    if TAKE in r.failed:  # a style the consumers cannot take is no option at all: after every one they can
        base += 50.0
    return base + (0.5 if r.basis == PROJECTED else 0.0)


_CELL_OF = {
    "provider processes": "provider processes at 70 %",
    "bytes per event": "GB a month",
    "requests per event": "requests per event",
    "connections held": "connections held",
}


def _shown(row: OptionRow, measure: str) -> str:
    what = _CELL_OF.get(measure, measure)
    return next((c.shown for c in row.cost if c.what == what), "n/a")


def _cheapest(pool: list[OptionRow]) -> list[OptionRow]:
    """The rows no other row of ``pool`` is strictly cheaper than (several when they tie)."""
    best = [r for r in pool if not any(compare(s, r)[0] < 0 for s in pool if s is not r)]
    return best or pool[:1]


def _why_not(r: OptionRow, chosen: OptionRow, breaker: str, tied_with: list[OptionRow]) -> str:
    if not r.measured:
        return r.why
    if r.failed:
        bad = [c for c in r.hard if c.verdict == FAIL]
        return "fails " + "; ".join(f"{c.what}: {c.shown}" for c in bad)
    if r.basis == PROJECTED and chosen.basis != PROJECTED:
        return (
            f"its numbers are projected ({r.basis_text}); {chosen.option} meets every hard requirement as measured, "
            "and a projected candidate is not chosen over a measured one"
        )
    if not r.within_budget and chosen.within_budget:
        over = [c for c in r.cost if c.verdict == "over"]
        return "over the budget: " + "; ".join(f"{c.what} {c.shown}" for c in over)
    sign, what, tied = compare(chosen, r)
    if r in tied_with:
        return (
            f"meets every hard requirement and ties with {chosen.option} on every cost ({', '.join(tied) or 'none measured'}); "
            f"the tie-breaker was {breaker}; {separating_note(chosen, r, tied)}"
        )
    if sign < 0:
        lead = (
            f"meets every hard requirement but costs more than {chosen.option} in {what}: {_shown(r, what)} against {_shown(chosen, what)}"
        )
        return lead + (f" (tied on {', '.join(tied)})" if tied else "")
    # a cheaper row that the chosen one beat on the requirements' tiers (budget), or an incomparable one
    return f"meets every hard requirement; {chosen.option} was preferred on {what or 'the tie-breakers'}"


def weigh(obs: Observations, req: Requirements, t_rec: float | None, leaning: str) -> Weighing:
    """Every candidate's row and the cheapest that meets every hard requirement (see the module's docstring)."""
    rows = candidate_rows(obs, req, t_rec)
    measured = [r for r in rows if r.measured]
    if not measured:
        raise ValueError("no measured candidate")
    top = min(_tier(r) for r in measured)
    pool = [r for r in measured if _tier(r) == top]
    cheapest = _cheapest(pool)
    breaker, note = "", ""
    if len(cheapest) > 1:
        chosen, breaker = break_tie(cheapest, leaning)
        others = [r for r in cheapest if r is not chosen]
        note = (
            f"{chosen.option} ties on cost with {', '.join(r.option for r in others)}; the tie-breaker was {breaker}; "
            + separating_note(chosen, others[0], compare(chosen, others[0])[2])
        )
    else:
        chosen = cheapest[0]
    tied_with = [r for r in cheapest if r is not chosen]
    out = []
    for r in rows:
        if r is chosen:
            chosen_row = replace(r, chosen=True, why=_why_chosen(r, top, sum(1 for m in measured if m.basis != PROJECTED)))
            out.append(chosen_row)
        else:
            out.append(replace(r, why=_why_not(r, chosen, breaker, tied_with)))
    runner = _runner_up(measured, chosen)
    margin = ""
    if runner is not None:
        sign, what, _ = compare(chosen, runner)
        if _tier(runner) == _tier(chosen):
            margin = f"{what}: {_shown(chosen, what)} against {_shown(runner, what)}" if sign else "a tie on every cost"
        else:
            margin = next(r.why for r in out if r.option == runner.option)
    return Weighing(tuple(out), chosen_row, tuple(r.option for r in tied_with), note, runner, margin)


def _runner_up(measured: list[OptionRow], chosen: OptionRow) -> OptionRow | None:
    """The best of the rest: the lowest tier, then the cheapest in it."""
    rest = [r for r in measured if r is not chosen and r.basis != PROJECTED] or [r for r in measured if r is not chosen]
    if not rest:
        return None
    top = min(_tier(r) for r in rest)
    return _cheapest([r for r in rest if _tier(r) == top])[0]


def _why_chosen(r: OptionRow, tier: float, n: int) -> str:
    if r.basis == PROJECTED:
        return f"no measured candidate meets every hard requirement within the budget; this one does, on the model ({r.basis_text})"
    if tier == 0:
        return f"the cheapest of the {n} measured candidates that meets every hard requirement and the budget"
    if tier <= 1:
        return f"the cheapest of the {n} measured candidates that meets every hard requirement; none stays within the budget"
    return f"no measured candidate meets every hard requirement; this one fails the fewest ({', '.join(r.failed)})"


def verdict_counts(row: OptionRow) -> dict[str, int]:
    """How many of the row's hard requirements pass, fail or tie (for the confidence)."""
    out = {PASS: 0, FAIL: 0, TIE: 0}
    for c in row.hard:
        if c.verdict in out:
            out[c.verdict] += 1
    return out


__all__ = ["Cell", "OptionRow", "Weighing", "compare", "weigh"]
