"""From the user's requirements and the measured runs to a recommendation.

``decide(requirements, results)`` is a pure function: the same requirements and
the same results table (``labkit.results.layout.load_results``) give the same
``Recommendation``. Every reason cites at least one measured number by run id,
style, column and value, and names one of the article's four factors. Where
the runs do not cover the requirements, a ``CoverageGap`` says so and names
the ``labkit`` command whose run would settle it.

The decision, in short:

1. The operating point: the poll interval the latency target allows
   (``labkit.report.policy.poll_interval``: T = 0.8 (p99 - RTT) / 0.99),
   lambda T there, the measured crossover of requests per event.
2. Every measured candidate is weighed on its own numbers
   (``labkit.report.options``): hard requirements first, each judged on the
   measurement with its standard error, then cost at the operating point,
   then stated tie-breakers. The cheapest candidate that meets every hard
   requirement is recommended; no measured candidate is set aside by a rule.
3. The reasons (latency, cost, the article's factors, streams, saturation,
   bursts, budget) and the coverage gaps explain the numbers behind it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from labkit.errors import ResultsError
from labkit.report.bursts import burst_reasons
from labkit.report.observations import (
    Evidence,
    Obs,
    Observations,
    fmt,
    logdist,
    measured_crossover,
    nearest,
    observations,
    round_sig,
)
from labkit.report.options import OptionRow, Weighing, verdict_counts, weigh
from labkit.report.policy import LONG_POLL_WAIT_S, POLL_FLOOR_S, RECONCILE_S, poll_interval
from labkit.report.reasons import (
    Case,
    CoverageGap,
    Reason,
    budget_reasons,
    coverage,
    functional_reasons,
)
from labkit.report.requirements import Requirements
from labkit.report.risks import Risk, risks_of, stream_risks
from labkit.report.saturation import saturation_reasons
from labkit.report.scale import MEASURED, PROJECTED
from labkit.report.streams import StreamView, reference, stream_narrative, stream_sentence
from labkit.report.terms import (
    CLAIMS,
    FACTORS,
    FALLBACK,
    FIT,
    LATENCY,
    LONG_POLLING,
    POLLING,
    SECURITY,
    THIN,
    VERSATILITY,
    WEBHOOK,
    family_variants,
    options,
)
from labkit.report.weigh import TIE
from labkit.results import columns as cols

# variants `labkit compare` has no flag for: the shipped experiment file runs them

# the article pairs these use cases with push and with pull (its claim 3)
_PUSH_WORDS = ("payment", "chat", "message", "collaborat", "social", "notif", "alert", "real-time", "realtime", "status change")
_PULL_WORDS = ("sync", "batch", "history", "historic", "report", "backfill", "export", "retriev", "analytic", "warehouse", "etl", "archive")


@dataclass(frozen=True)
class FactorView:
    """One of the article's four factors: its claim, and what the lab found for this case."""

    factor: str
    claim: str
    finding: str
    evidence: tuple[Evidence, ...]


@dataclass(frozen=True)
class Recommendation:
    """The decision: one option, why, how sure, what it leaves open."""

    option: str
    sentence: str
    confidence: str  # high | medium | low
    confidence_why: str
    poll_interval_s: float | None
    reasons: tuple[Reason, ...]
    rejected: tuple[tuple[str, str], ...]
    gaps: tuple[CoverageGap, ...]
    risks: tuple[Risk, ...]
    factors: tuple[FactorView, ...]
    operating_point: dict[str, Any] = field(default_factory=dict)
    # the registry style that realises a held-stream option (None for the other options)
    stream_style: str | None = None
    # every candidate, measured against each hard requirement and costed (the options table)
    options: tuple[OptionRow, ...] = ()
    tie_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _use_case_leaning(text: str) -> tuple[str, list[str]]:
    low = text.lower()
    push = [w for w in _PUSH_WORDS if w in low]
    pull = [w for w in _PULL_WORDS if w in low]
    if len(push) > len(pull):
        return "push", push
    if len(pull) > len(push):
        return "pull", pull
    return "neutral", push + pull


@dataclass
class _Point:
    """The operating point the measurements put the requirements at, and the observations that anchor it."""

    lam: float
    target: float
    rtt_ms: float
    t_target: float
    poll_possible: bool
    t_rec: float | None
    lt_user: float | None
    crossover: float
    crossover_measured: bool
    pairs: list[tuple[Obs, Obs]]
    push: Obs | None
    poll_lat: Obs | None
    poll_cost: Obs | None
    push_cost: Obs | None
    long_obs: list[Obs]

    @property
    def push_p99(self) -> float | None:
        return self.push.get(cols.LATENCY_P99) if self.push else None

    @property
    def push_meets(self) -> bool:
        return self.push_p99 is not None and self.push_p99 <= self.target


def _operating_point(case: Case) -> _Point:
    """Phase 1: the interval the latency target allows, lambda T there, the crossover, and the nearest runs."""
    req = case.req
    lam = req.event_rate_per_s
    target = req.target_latency_p99_ms
    push_obs = case.of(WEBHOOK) or case.of(*family_variants("push"))
    poll_obs = case.of(POLLING)

    rtts = [o.get(cols.RTT_MEAN) for o in poll_obs if o.has(cols.RTT_MEAN)]
    rtts += [o.get("delivery_rtt_ms") for o in push_obs if o.has("delivery_rtt_ms")] if not rtts else []
    rtt_ms = sum(rtts) / len(rtts) if rtts else 0.0  # type: ignore[arg-type]

    interval = poll_interval(target, rtt_ms)
    t_target, poll_possible, t_rec = interval.t_target_s, interval.possible, interval.t_rec_s
    lt_user = lam * t_rec if t_rec else None

    crossover, pairs = measured_crossover(case.obs)
    crossover_measured = crossover is not None
    batch = 1
    if crossover is None:
        crossover = 1.0 / batch  # the model: polling at 1/(lambda T) meets unbatched push at 1

    push = nearest(push_obs, lambda o: logdist(o.rate, lam))
    poll_cost = nearest(poll_obs, lambda o: logdist(o.lambda_t, lt_user or 1e-9))
    push_cost = None
    if poll_cost is not None:
        same_run = [o for o in push_obs if o.run_id == poll_cost.run_id]
        push_cost = same_run[0] if same_run else push
    return _Point(
        lam=lam,
        target=target,
        rtt_ms=rtt_ms,
        t_target=t_target,
        poll_possible=poll_possible,
        t_rec=t_rec,
        lt_user=lt_user,
        crossover=crossover,
        crossover_measured=crossover_measured,
        pairs=pairs,
        push=push,
        poll_lat=nearest(poll_obs, lambda o: logdist(o.interval_s, t_rec or POLL_FLOOR_S)),
        poll_cost=poll_cost,
        push_cost=push_cost,
        long_obs=case.of(LONG_POLLING),
    )


def _latency_reasons(case: Case, p: _Point) -> None:
    """Phase 2: what each measured style's latency says against the target."""
    req, target, push, poll_lat = case.req, p.target, p.push, p.poll_lat
    if push is not None and p.push_p99 is not None:
        verdict = "meets" if p.push_meets else "misses"
        unusable = "" if req.consumers_can_expose_https else ", but only for consumers that can receive it"
        case.reason(
            LATENCY,
            f"{'Webhook push' if push.variant == WEBHOOK else push.variant.capitalize()} delivered with a measured p99 of "
            f"{fmt(p.push_p99)} ms, which {verdict} the "
            f"{fmt(target)} ms target{_times(target, p.push_p99) if p.push_meets else ''}{unusable}.",
            [push.ev(cols.LATENCY_P99), push.ev(cols.RATE)],
            WEBHOOK if p.push_meets else POLLING,  # a push that misses the target argues for asking instead
        )
    if poll_lat is not None:
        m99 = poll_lat.get(cols.LATENCY_P99)
        model99 = poll_lat.get(cols.MODEL_LATENCY_P99)
        agree = ""
        if m99 is not None and model99:
            err = abs(m99 - model99) / model99
            agree = f" (model {fmt(model99)} ms, {'within' if err <= 0.15 else 'off by'} {err:.0%})"
        if p.poll_possible:
            text = (
                f"Polling's p99 is about 0.99 T + RTT: at T = {fmt(poll_lat.interval_s)} s the lab measured "
                f"{fmt(m99)} ms{agree}; to stay under {fmt(target)} ms a poller must ask at least every "
                f"{fmt(round_sig(p.t_target, 3))} s, so we would poll every {fmt(p.t_rec)} s."
            )
        else:
            text = (
                f"A {fmt(target)} ms p99 leaves polling no room: the round trip alone is {fmt(p.rtt_ms)} ms and "
                f"at T = {fmt(poll_lat.interval_s)} s the lab measured p99 {fmt(m99)} ms{agree}."
            )
        case.reason(
            LATENCY,
            text,
            [poll_lat.ev(cols.LATENCY_P99), poll_lat.ev(cols.MODEL_LATENCY_P99), poll_lat.ev("poll_interval_s")],
            WEBHOOK if not p.poll_possible else POLLING,
        )
    if p.long_obs:
        lp = nearest(p.long_obs, lambda o: logdist(o.rate, p.lam))
        assert lp is not None
        lp99 = lp.get(cols.LATENCY_P99)
        meets = lp99 is not None and lp99 <= p.target
        case.reason(
            LATENCY,
            f"Long polling answers when the event arrives: measured p99 {fmt(lp99)} ms, which "
            f"{'meets' if meets else 'misses'} the {fmt(p.target)} ms target.",
            [lp.ev(cols.LATENCY_P99)],
            LONG_POLLING if meets else POLLING if p.poll_possible else WEBHOOK,
        )


def _cost_reason(case: Case, p: _Point) -> None:
    """Phase 3: where polling and push cross, against the lambda T the target implies."""
    poll_cost, push_cost, lt_user, crossover = p.poll_cost, p.push_cost, p.lt_user, p.crossover
    if poll_cost is None or push_cost is None or lt_user is None:
        return
    p_rpe, w_rpe = poll_cost.get("requests_per_event"), push_cost.get("requests_per_event")
    empty = poll_cost.get("empty_poll_ratio")
    side = "below" if lt_user < crossover else "above"
    text = (
        f"At the interval the target allows, each consumer's lambda T is {fmt(lt_user)}, {side} the "
        f"{'measured' if p.crossover_measured else 'model'} crossover at lambda T = {fmt(crossover)}. "
        f"At the nearest measured point (lambda T = {fmt(poll_cost.lambda_t)}) polling took "
        f"{fmt(p_rpe)} requests per event"
        + (f" with {fmt(empty * 100)} % of polls empty" if empty is not None else "")
        + f", push {fmt(w_rpe)}."
    )
    favours = POLLING if lt_user >= crossover else WEBHOOK if case.req.consumers_can_expose_https else LONG_POLLING
    case.reason(
        VERSATILITY,
        text,
        [
            poll_cost.ev("requests_per_event"),
            poll_cost.ev("empty_poll_ratio"),
            push_cost.ev("requests_per_event"),
            poll_cost.ev(cols.LAMBDA_T),
        ],
        favours,
    )


def decide(requirements: Requirements, results: pd.DataFrame | Observations) -> Recommendation:
    """The recommendation for ``requirements`` given the measured ``results`` (one row per run and style, or their observations).

    Every measured candidate is weighed on its own numbers (``labkit.report.options``):
    the cheapest that meets every hard requirement is recommended.
    """
    obs = observations(results)
    if not obs:
        raise ResultsError("the results hold no measured style to decide from")
    case = Case(requirements, obs)
    req = requirements
    p = _operating_point(case)
    _latency_reasons(case, p)
    saturation_reasons(case)
    burst_reasons(case)
    _cost_reason(case, p)
    leaning, words = _use_case_leaning(req.use_case)
    table = weigh(obs, req, p.t_rec, leaning)
    option = table.chosen.option
    for row in table.rows:
        if not row.chosen:
            case.rejected[row.option] = row.why
    stream = stream_narrative(case, p.lam, p.target, table.chosen.style)
    if not req.consumers_can_expose_https:
        _no_endpoint_reason(case, p)
    poll_lat = p.poll_lat
    if option == LONG_POLLING and not p.long_obs and poll_lat is not None and poll_lat.has(cols.RTT_MEAN):
        case.reason(
            LATENCY,
            f"Long polling answers within about one round trip of the event (model; not measured here): the lab's "
            f"measured round trip was {fmt(poll_lat.get(cols.RTT_MEAN))} ms, far under the {fmt(p.target)} ms target.",
            [poll_lat.ev(cols.RTT_MEAN)],
            LONG_POLLING,
        )
    coverage(case, option, p.lam, p.t_rec, p.lt_user, p.pairs, p.crossover, p.crossover_measured)
    # the pulled side's functional reasons cite the stream when one is chosen: same log, same cursor
    functional_reasons(case, option, p.push, stream.obs if stream else poll_lat, p.poll_cost, leaning, words)
    if stream is None:  # a stream's bandwidth is among its own reasons
        budget_reasons(case, option, p.push_cost or p.push, p.poll_cost, p.lt_user)
    confidence, confidence_why = _confidence(case, table)
    point = {
        "rtt_ms": p.rtt_ms,
        "t_target_s": p.t_target if p.poll_possible else None,
        "poll_interval_s": p.t_rec,
        "lambda_t": p.lt_user,
        "crossover_lambda_t": p.crossover,
        "crossover_measured": p.crossover_measured,
    }
    return Recommendation(
        option=option,
        sentence=_sentence(option, req, table, p)
        if stream is None
        else stream_sentence(stream, reference(case, p.lam), p.target, _target_text(req), table.chosen.why),
        confidence=confidence,
        confidence_why=confidence_why,
        poll_interval_s=p.t_rec if option == POLLING else RECONCILE_S if option == FALLBACK else None,
        reasons=tuple(sorted(case.reasons, key=lambda r: FACTORS.index(r.factor))),
        rejected=_rejected(case, option),
        gaps=tuple(case.gaps),
        risks=risks_of(option, req) if stream is None else stream_risks(),
        factors=_factor_views(case, p.push, poll_lat, p.pairs, p.crossover, p.crossover_measured),
        operating_point=point,
        stream_style=_stream_style(stream),
        options=table.rows,
        tie_note=table.tie_note,
    )


def _no_endpoint_reason(case: Case, p: _Point) -> None:
    """Security, where the consumers cannot expose an endpoint: what the pulled side needs instead, traced to the poller's run."""
    poll = p.poll_lat
    case.reason(
        SECURITY,
        "The consumers cannot expose a public HTTPS endpoint (NAT, firewalls, browsers or mobile clients): a webhook "
        "receiver is an open door they cannot open, while the cursor feed and held streams need only outbound requests "
        f"authenticated with an API key; the lab's poller lost {fmt(poll.get(cols.LOST)) if poll else 'n/a'} events over outbound requests alone.",
        [poll.ev(cols.LOST) if poll else None, poll.ev(cols.DELIVERED) if poll else None],
        POLLING,
    )


def _stream_style(stream: StreamView | None) -> str | None:
    return stream.obs.style if stream is not None else None


def _rejected(case: Case, option: str) -> tuple[tuple[str, str], ...]:
    """The options not chosen, in the report's order; measured variants the terms do not list come last."""
    listed = options()
    order = list(listed) + sorted(o for o in case.rejected if o not in listed)
    return tuple((o, case.rejected[o]) for o in order if o in case.rejected and o != option)


def _times(target: float, measured: float) -> str:
    if measured <= 0:
        return ""
    ratio = target / measured
    return " (far under it)" if ratio > 100 else f" ({fmt(round_sig(ratio, 2))} times under it)"


def _confidence(case: Case, table: Weighing) -> tuple[str, str]:
    """How sure: the chosen row's margins in standard errors, its basis, ties, and the gaps that could change it."""
    chosen = table.chosen
    why: list[str] = []
    level = 3  # high
    counts = verdict_counts(chosen)
    if chosen.failed:
        level = 1
        why.append(f"no measured candidate meets every hard requirement ({', '.join(chosen.failed)} failed)")
    lat = next((c for c in chosen.hard if c.what == "p99 within target"), None)
    if lat is not None and lat.value is not None and lat.se:
        margin = (case.req.target_latency_p99_ms - lat.value) / lat.se
        why.append(f"p99 {fmt(round_sig(abs(margin), 2))} standard errors {'under' if margin >= 0 else 'over'} the target")
    if counts[TIE]:
        level = min(level, 2)
        why.append("its p99 is within the error of the target")
    if chosen.basis != MEASURED:
        level = min(level, 2 if chosen.basis != PROJECTED else 1)
        why.append(chosen.basis_text)
    if table.ties:
        level = min(level, 2)
        why.append(f"a tie on cost with {', '.join(table.ties)}, broken by a stated tie-breaker")
    elif table.margin and table.runner_up is not None:
        why.append(f"next: {table.runner_up.option} ({table.margin})")
    reachable = [r for r in table.rows if r.run_id and not any(c.what == "consumers can take it" and c.verdict == "fail" for c in r.hard)]
    if len({r.option for r in reachable if r.basis != PROJECTED}) < 2:
        level = 1
        why.append("only one candidate the consumers can take was measured: nothing to weigh it against")
    decisive = [g for g in case.gaps if g.affects == "decision"]
    if decisive:
        level = min(level, 2)
        why.append(f"{len(decisive)} coverage gap{'s' if len(decisive) > 1 else ''} could change the choice")
    minor = len(case.gaps) - len(decisive)
    if minor:
        why.append(f"{minor} other gap{'s only refine' if minor > 1 else ' only refines'} the numbers")
    if chosen.basis == MEASURED and not chosen.failed and not counts[TIE] and not table.ties:
        why.insert(0, "every number the choice rests on was measured at the operating point")
    return {3: "high", 2: "medium", 1: "low"}[level], "; ".join(why)


def _duration(seconds: float) -> str:
    """Seconds, with minutes or hours beside them when those read better."""
    if seconds >= 3600:
        return f"{fmt(seconds)} s ({fmt(round_sig(seconds / 3600, 2))} h)"
    if seconds >= 120:
        return f"{fmt(seconds)} s ({fmt(round_sig(seconds / 60, 2))} min)"
    return f"{fmt(seconds)} s"


def _target_text(req: Requirements) -> str:
    return f"{fmt(req.target_latency_p99_ms)} ms" if req.target_latency_p99_ms < 120_000 else _duration(req.target_latency_p99_ms / 1000)


def _sentence(option: str, req: Requirements, table: Weighing, p: _Point) -> str:
    """The recommendation in one sentence: what to do, and the measured numbers it rests on."""
    target = _target_text(req)
    chosen = table.chosen
    lat = next((c for c in chosen.hard if c.what == "p99 within target"), None)
    meets = lat is not None and lat.verdict in ("pass", "tie")
    lat_text = f"p99 {lat.shown.split(' vs ')[0]} {'meets' if meets else 'misses'} the {target} target" if lat is not None else ""
    how = {
        POLLING: f"Poll the cursor feed every {_duration(p.t_rec or 0)}",
        LONG_POLLING: f"Use long polling (hold each request up to {fmt(LONG_POLL_WAIT_S)} s)",
        FALLBACK: f"Push webhooks and reconcile with a poller on the cursor feed every {fmt(RECONCILE_S / 60)} minutes",
        THIN: "Push thin webhooks (id and type) and let consumers fetch the event through the API",
        WEBHOOK: "Push webhooks",
    }.get(option, f"Use {option}")
    why = table.chosen.why
    if table.margin and not table.ties and table.runner_up is not None:
        why += f"; next, {table.runner_up.option}: {table.margin}"
    elif table.tie_note:
        why += f"; {table.tie_note}"
    return f"{how}: {lat_text}, {why}." if lat_text else f"{how}: {why}."


def _factor_views(
    case: Case, push: Obs | None, poll: Obs | None, pairs: list[tuple[Obs, Obs]], crossover: float, measured: bool
) -> tuple[FactorView, ...]:
    views = []
    # latency: does the article's claim hold here?
    ev: list[Evidence] = []
    if push is not None and poll is not None and push.has(cols.LATENCY_P99) and poll.has(cols.LATENCY_P99):
        pw, pp = push.get(cols.LATENCY_P99), poll.get(cols.LATENCY_P99)
        holds = "holds" if pw < pp else "does not hold"  # type: ignore[operator]
        finding = (
            f"The claim {holds} in the lab: webhook p99 {fmt(pw)} ms against polling p99 {fmt(pp)} ms at "
            f"T = {fmt(poll.interval_s)} s. Polling's delay is set by T, not by the server; push's by one round trip."
        )
        ev = [push.ev(cols.LATENCY_P99), poll.ev(cols.LATENCY_P99)]
    else:
        finding = "Not measured for both styles."
    views.append(FactorView(LATENCY, CLAIMS[LATENCY], finding, tuple(ev)))
    # versatility: the crossover
    if pairs:
        lo, hi = pairs[0], pairs[-1]
        finding = (
            f"The claim holds below lambda T of about {fmt(crossover)} "
            f"({'measured' if measured else 'model'} crossover) and breaks above it: at lambda T = {fmt(lo[0].lambda_t)} "
            f"polling took {fmt(lo[0].get('requests_per_event'))} requests per event against push's "
            f"{fmt(lo[1].get('requests_per_event'))}; at lambda T = {fmt(hi[0].lambda_t)}, "
            f"{fmt(hi[0].get('requests_per_event'))} against {fmt(hi[1].get('requests_per_event'))}."
        )
        ev = [
            lo[0].ev("requests_per_event"),
            lo[1].ev("requests_per_event"),
            hi[0].ev("requests_per_event"),
            hi[1].ev("requests_per_event"),
        ]
        if len(pairs) == 1:
            finding = (
                f"One measured point: at lambda T = {fmt(lo[0].lambda_t)} polling took {fmt(lo[0].get('requests_per_event'))} "
                f"requests per event against push's {fmt(lo[1].get('requests_per_event'))}; the model puts the crossover at lambda T = 1."
            )
            ev = ev[:2]
    else:
        finding, ev = "No run measured both styles side by side.", []
    views.append(FactorView(VERSATILITY, CLAIMS[VERSATILITY], finding, tuple(ev)))
    for factor in (SECURITY, FIT):
        mine = [r for r in case.reasons if r.factor == factor]
        finding = " ".join(r.text for r in mine) or "No requirement of this case bears on it."
        views.append(FactorView(factor, CLAIMS[factor], finding, tuple(e for r in mine for e in r.evidence)))
    return tuple(views)


__all__ = [
    "CoverageGap",
    "Evidence",
    "FactorView",
    "Reason",
    "Recommendation",
    "Risk",
    "decide",
]
