"""From the user's requirements and the measured runs to a recommendation.

``decide(requirements, results)`` is a pure function: the same requirements and
the same results table (``labkit.results.load_results``) give the same
``Recommendation``. Every reason cites at least one measured number by run id,
style, column and value, and names one of the article's four factors. Where
the runs do not cover the requirements, a ``CoverageGap`` says so and names
the ``labkit`` command whose run would settle it.

The decision, in short (the model is in ``labkit.model``):

1. Latency sets the poll interval polling would need: a timetabled poller's
   p99 delay is 0.99 T + RTT, so T_target = (p99 target - RTT) / 0.99; we
   recommend 80 % of it (``poll_interval_s``).
2. Consumers that cannot expose a public HTTPS endpoint cannot receive a
   webhook: they poll when each poll at that interval usually finds news
   (lambda T at or above the measured crossover), otherwise they long-poll.
3. Otherwise polling wins when lambda T is well above the crossover (three
   times: most polls bring several events and cost a fraction of a push per
   event); push wins below the crossover; in between, total ordering tips to
   the cursor feed and anything else to push for its latency headroom.
4. A push choice becomes the polling-fallback hybrid when no event may be
   missed (retries end in a dead letter), and thin webhooks + fetch when the
   data is sensitive or must be read in order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from labkit import styles
from labkit.errors import ResultsError
from labkit.report.observations import (
    Evidence,
    Obs,
    fmt,
    logdist,
    measured_crossover,
    nearest,
    num,
    observations,
    round_sig,
)
from labkit.report.requirements import Requirements
from labkit.report.risks import Risk, risks_of
from labkit.report.terms import (
    CLAIMS,
    FACTORS,
    FALLBACK,
    FIT,
    LATENCY,
    LONG_POLLING,
    OPTIONS,
    POLLING,
    PUSH_FAMILY,
    SECURITY,
    THIN,
    VERSATILITY,
    WEBHOOK,
)

SECONDS_PER_MONTH = 30 * 24 * 3600
POLL_FLOOR_S = 0.01  # polling faster than this is a busy loop, not an integration
HEADROOM = 0.8  # recommend 80 % of the interval the latency target allows
CLEAR_MARGIN = 3.0  # lambda T this many times the crossover: polling clearly cheaper
LONG_POLL_WAIT_S = 30.0
RECONCILE_S = 300.0  # the fallback poller only has to catch what push gave up on
# variants `labkit compare` has no flag for: the shipped experiment file runs them
VARIANTS_EXPERIMENT = "scenarios/experiments/long-polling-and-batching.toml"
LONG_POLL_COMMAND = f"labkit sweep {VARIANTS_EXPERIMENT}  # set [workload] rate_per_s = {{rate}} to match"
THIN_COMMAND = LONG_POLL_COMMAND
CROSSOVER_COMMAND = "labkit sweep scenarios/experiments/wasted-polls.toml"

# the article pairs these use cases with push and with pull (its claim 3)
_PUSH_WORDS = ("payment", "chat", "message", "collaborat", "social", "notif", "alert", "real-time", "realtime", "status change")
_PULL_WORDS = ("sync", "batch", "history", "historic", "report", "backfill", "export", "retriev", "analytic", "warehouse", "etl", "archive")


@dataclass(frozen=True)
class Reason:
    """A statement for or against an option, traced to measurements and to one factor."""

    factor: str
    text: str
    evidence: tuple[Evidence, ...]
    favours: str

    def __post_init__(self) -> None:
        if self.factor not in FACTORS:
            raise ValueError(f"unknown factor {self.factor!r}")
        if not self.evidence:
            raise ValueError("a reason cites at least one measured number")


@dataclass(frozen=True)
class CoverageGap:
    """Something the runs do not cover, and the run that would settle it."""

    what: str
    command: str
    affects: str  # "decision": could change the choice; "numbers": refines the figures only


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


def _cmd(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def _arg(value: float) -> str:
    """A number as a command-line argument: three significant digits, no separators, no exponent."""
    v = round_sig(value, 3)
    return str(int(v)) if float(v).is_integer() else f"{v:.6f}".rstrip("0").rstrip(".")


def _compare_cmd(
    rate: float, interval_s: float | None = None, *, arrival: str | None = None, pollers: int | None = None, subscribers: int | None = None
) -> str:
    """A ``labkit compare`` line within RunSettings' limits, long enough to see several polls and ~200 events."""
    rate = min(max(rate, 0.001), 100_000)
    interval = min(max(interval_s or 1.0, 0.001), 3600)
    duration = min(max(10.0, 5 * interval, 200 / rate), 24 * 3600)
    return _cmd(
        "labkit compare",
        f"--rate {_arg(rate)}",
        f"--poll-interval {_arg(interval)}",
        f"--duration {_arg(round_sig(duration, 2))}",
        f"--arrival {arrival}" if arrival else "",
        f"--pollers {pollers}" if pollers else "",
        f"--subscribers {subscribers}" if subscribers else "",
    )


@dataclass
class _Case:
    req: Requirements
    obs: list[Obs]
    reasons: list[Reason] = field(default_factory=list)
    gaps: list[CoverageGap] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)

    def of(self, *variants: str) -> list[Obs]:
        return [o for o in self.obs if o.variant in variants]

    def reason(self, factor: str, text: str, evidence: Iterable[Evidence | None], favours: str) -> None:
        ev = tuple(e for e in evidence if e is not None)
        if ev:
            self.reasons.append(Reason(factor, text, ev, favours))

    def gap(self, what: str, command: str, affects: str) -> None:
        """Record a gap; gaps one run would settle are merged into one."""
        for i, g in enumerate(self.gaps):
            if g.command == command:
                merged = "decision" if "decision" in (g.affects, affects) else "numbers"
                self.gaps[i] = CoverageGap(f"{g.what}; {what}", command, merged)
                return
        self.gaps.append(CoverageGap(what, command, affects))


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
        return self.push.get("latency_ms.p99") if self.push else None

    @property
    def push_meets(self) -> bool:
        return self.push_p99 is not None and self.push_p99 <= self.target


def _operating_point(case: _Case) -> _Point:
    """Phase 1: the interval the latency target allows, lambda T there, the crossover, and the nearest runs."""
    req = case.req
    lam = req.event_rate_per_s
    target = req.target_latency_p99_ms
    push_obs = case.of(WEBHOOK) or case.of("batched webhooks", "thin webhooks")
    poll_obs = case.of(POLLING)

    rtts = [o.get("rtt_ms.mean") for o in poll_obs if o.has("rtt_ms.mean")]
    rtts += [o.get("delivery_rtt_ms") for o in push_obs if o.has("delivery_rtt_ms")] if not rtts else []
    rtt_ms = sum(rtts) / len(rtts) if rtts else 0.0  # type: ignore[arg-type]

    t_target = (target - rtt_ms) / 0.99 / 1000
    poll_possible = t_target >= POLL_FLOOR_S
    t_rec = round_sig(min(HEADROOM * t_target, 3600.0), 2) if poll_possible else None
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


def _latency_reasons(case: _Case, p: _Point) -> None:
    """Phase 2: what each measured style's latency says against the target."""
    req, target, push, poll_lat = case.req, p.target, p.push, p.poll_lat
    if push is not None and p.push_p99 is not None:
        verdict = "meets" if p.push_meets else "misses"
        unusable = "" if req.consumers_can_expose_https else ", but only for consumers that can receive it"
        case.reason(
            LATENCY,
            f"Webhook push delivered with a measured p99 of {fmt(p.push_p99)} ms, which {verdict} the "
            f"{fmt(target)} ms target{_times(target, p.push_p99) if p.push_meets else ''}{unusable}.",
            [push.ev("latency_ms.p99"), push.ev("workload.rate_per_s")],
            WEBHOOK,
        )
    if poll_lat is not None:
        m99 = poll_lat.get("latency_ms.p99")
        model99 = poll_lat.get("model.latency_p99_ms")
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
            [poll_lat.ev("latency_ms.p99"), poll_lat.ev("model.latency_p99_ms"), poll_lat.ev("poll_interval_s")],
            WEBHOOK if not p.poll_possible else POLLING,
        )
    if p.long_obs:
        lp = nearest(p.long_obs, lambda o: logdist(o.rate, p.lam))
        assert lp is not None
        case.reason(
            LATENCY,
            f"Long polling answers when the event arrives: measured p99 {fmt(lp.get('latency_ms.p99'))} ms.",
            [lp.ev("latency_ms.p99")],
            LONG_POLLING,
        )


def _cost_reason(case: _Case, p: _Point) -> None:
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
            poll_cost.ev("workload.lambda_t"),
        ],
        favours,
    )


def _choose_without_push(case: _Case, p: _Point) -> str:
    """Phase 4a: consumers that cannot receive a webhook: polling or long polling."""
    poll_lat, lt_user = p.poll_lat, p.lt_user
    for opt in PUSH_FAMILY:
        case.rejected[opt] = "consumers cannot expose a public HTTPS endpoint, so a webhook has nowhere to land"
    evidence = [poll_lat.ev("lost") if poll_lat else None, poll_lat.ev("delivered") if poll_lat else None]
    case.reason(
        SECURITY,
        "The consumers cannot expose a public HTTPS endpoint (NAT, firewalls or mobile clients): a webhook "
        "receiver is an open door they cannot open, while the cursor feed needs only outbound requests "
        "authenticated with an API key; the lab's poller lost nothing over outbound requests alone.",
        evidence,
        POLLING,
    )
    if p.poll_possible and lt_user is not None and lt_user >= p.crossover:
        case.rejected[LONG_POLLING] = (
            f"at lambda T = {fmt(lt_user)} most polls already bring news, so holding connections open buys "
            f"little latency for its cost in open connections"
        )
        return POLLING
    case.rejected[POLLING] = (
        "no poll interval meets the target"
        if not p.poll_possible
        else f"at T = {fmt(p.t_rec)} s lambda T is {fmt(lt_user)}: most polls would come back empty"
    )
    return LONG_POLLING


def _choose_with_push(case: _Case, p: _Point) -> str:
    """Phase 4b: consumers that can receive webhooks: polling where it is clearly cheaper, else a push variant."""
    req, lt_user, crossover = case.req, p.lt_user, p.crossover
    clearly_cheaper = p.poll_possible and lt_user is not None and lt_user >= CLEAR_MARGIN * crossover
    grey = p.poll_possible and lt_user is not None and crossover <= lt_user < CLEAR_MARGIN * crossover
    if clearly_cheaper or (grey and req.ordering == "total"):
        why_not = (
            f"at lambda T = {fmt(lt_user)} one poll returns many events, so a push per event costs more "
            f"requests for a latency nobody asked for"
        )
        for opt in PUSH_FAMILY:
            case.rejected[opt] = why_not
        case.rejected[LONG_POLLING] = "the latency target does not need an answer within one round trip; plain polls are cheaper"
        return POLLING
    if req.missed_events_tolerated is False:
        option = FALLBACK
    elif req.data_sensitivity == "sensitive" or req.ordering != "none":
        option = THIN
    else:
        option = WEBHOOK
    if not p.poll_possible:
        case.rejected[POLLING] = f"no poll interval meets a {fmt(p.target)} ms p99"
    elif lt_user is not None and lt_user < crossover:
        case.rejected[POLLING] = (
            f"polling every {fmt(p.t_rec)} s to meet the target means lambda T = {fmt(lt_user)}: "
            f"about {fmt(math.exp(-lt_user) * 100)} % of polls would be empty"
        )
    else:
        case.rejected[POLLING] = "it meets the target with little headroom where push has a lot"
    case.rejected[LONG_POLLING] = "consumers can receive webhooks, so holding a connection per consumer open is cost without benefit"
    for opt in PUSH_FAMILY:
        if opt != option:
            case.rejected[opt] = _why_not_push_variant(opt, req)
    return option


def decide(requirements: Requirements, results: pd.DataFrame) -> Recommendation:
    """The recommendation for ``requirements`` given the measured ``results`` (one row per run and style)."""
    obs = observations(results)
    if not obs:
        raise ResultsError("the results hold no measured style to decide from")
    case = _Case(requirements, obs)
    req = requirements
    p = _operating_point(case)
    _latency_reasons(case, p)
    _cost_reason(case, p)
    leaning, words = _use_case_leaning(req.use_case)
    option = _choose_with_push(case, p) if req.consumers_can_expose_https else _choose_without_push(case, p)
    poll_lat = p.poll_lat
    if option == LONG_POLLING and not p.long_obs and poll_lat is not None and poll_lat.has("rtt_ms.mean"):
        case.reason(
            LATENCY,
            f"Long polling answers within about one round trip of the event (model; not measured here): the lab's "
            f"measured round trip was {fmt(poll_lat.get('rtt_ms.mean'))} ms, far under the {fmt(p.target)} ms target.",
            [poll_lat.ev("rtt_ms.mean")],
            LONG_POLLING,
        )
    _coverage(case, option, p.lam, p.t_rec, p.lt_user, p.pairs, p.crossover, p.crossover_measured)
    _functional_reasons(case, option, p.push, poll_lat, p.poll_cost, leaning, words)
    _budget_reasons(case, option, p.push_cost or p.push, p.poll_cost, p.lt_user)

    confidence, confidence_why = _confidence(case, option, p.push, poll_lat, p.push_meets, p.poll_possible)
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
        sentence=_sentence(option, req, p.push_p99, p.t_rec, p.lt_user),
        confidence=confidence,
        confidence_why=confidence_why,
        poll_interval_s=p.t_rec if option == POLLING else RECONCILE_S if option == FALLBACK else None,
        reasons=tuple(sorted(case.reasons, key=lambda r: FACTORS.index(r.factor))),
        rejected=tuple((o, case.rejected[o]) for o in OPTIONS if o in case.rejected and o != option),
        gaps=tuple(case.gaps),
        risks=risks_of(option, req),
        factors=_factor_views(case, p.push, poll_lat, p.pairs, p.crossover, p.crossover_measured),
        operating_point=point,
    )


def _times(target: float, measured: float) -> str:
    if measured <= 0:
        return ""
    ratio = target / measured
    return " (far under it)" if ratio > 100 else f" ({fmt(round_sig(ratio, 2))} times under it)"


def _why_not_push_variant(opt: str, req: Requirements) -> str:
    if opt == WEBHOOK:
        if not req.missed_events_tolerated:
            return "retries end in a dead letter after about three days; with no missed events allowed, something must reconcile"
        return "the payload carries sensitive or ordered data that is safer fetched through the authenticated API"
    if opt == THIN:
        return "a fetch per notification doubles the requests; the signed payload is enough here"
    return "missed events are tolerated, so a reconciliation poller is cost without benefit"


def _coverage(
    case: _Case,
    option: str,
    lam: float,
    t_rec: float | None,
    lt_user: float | None,
    pairs: list[tuple[Obs, Obs]],
    crossover: float,
    measured: bool,
) -> None:
    req = case.req
    rates = sorted({o.rate for o in case.obs if o.rate})
    if rates and not (rates[0] / 2 <= lam <= rates[-1] * 2):
        near = lt_user is not None and crossover / CLEAR_MARGIN <= lt_user <= crossover * CLEAR_MARGIN
        case.gap(
            f"event rate {fmt(lam)}/s was never run (measured {fmt(rates[0])}-{fmt(rates[-1])}/s)",
            _compare_cmd(lam, min(t_rec or 1.0, 10.0)),
            "decision" if near else "numbers",
        )
    lts = sorted(p.lambda_t for p, _ in pairs if p.lambda_t)
    if lt_user is not None and lts and not (lts[0] / 2 <= lt_user <= lts[-1] * 2):
        # beyond the measured range on the far side of the crossover, extrapolation only strengthens the choice
        far = (lt_user < lts[0] and lts[0] <= crossover) or (lt_user > lts[-1] and lts[-1] >= crossover)
        case.gap(
            f"lambda T = {fmt(lt_user)} lies outside the measured {fmt(lts[0])}-{fmt(lts[-1])}"
            + ("; beyond it the choice only gets clearer" if far else ""),
            _compare_cmd(lam, t_rec),
            "numbers" if far else "decision",
        )
    if not measured:
        case.gap(
            "no pair of runs brackets the crossover of requests per event; the model's lambda T = 1 stands in",
            CROSSOVER_COMMAND,
            "decision" if lt_user is not None and crossover / CLEAR_MARGIN <= lt_user <= crossover * CLEAR_MARGIN else "numbers",
        )
    intervals = sorted({o.interval_s for o in case.of(POLLING) if o.interval_s})
    if option == POLLING and t_rec and intervals and min(abs(math.log(t_rec / i)) for i in intervals) > math.log(1.5):
        case.gap(
            f"no polling run at T = {fmt(t_rec)} s (measured {', '.join(fmt(i) for i in intervals)} s); its latency comes from the model",
            _compare_cmd(lam, t_rec),
            "numbers",
        )
    max_consumers = max((o.consumers or 1) for o in case.obs)
    if req.consumers > max_consumers:
        case.gap(
            f"{fmt(req.consumers)} consumers were never run (at most {fmt(max_consumers)}); "
            "the capacity projection extrapolates from the calibration",
            _compare_cmd(lam, t_rec, pollers=min(req.consumers, 10_000), subscribers=min(req.consumers, 1000)),
            "numbers",
        )
    if req.burstiness == "bursty" and not any(o.arrival == "bursty" for o in case.obs):
        case.gap(
            "bursty arrivals were never run; every run used steady or Poisson arrivals",
            _compare_cmd(lam, t_rec, arrival="bursty"),
            "numbers",
        )
    styles_run = {o.style for o in case.obs}
    for info in styles.all_styles():
        if info.name not in styles_run:
            case.gap(f"no {info.name} run at all", _compare_cmd(lam, t_rec), "decision")
    if option == LONG_POLLING and not case.of(LONG_POLLING):
        case.gap(
            "long polling was never run; its latency (one round trip) and cost come from the model",
            LONG_POLL_COMMAND.format(rate=_arg(lam)),
            "decision",
        )
    if option == THIN and not case.of("thin webhooks"):
        case.gap(
            "thin webhooks + fetch were never run; the extra fetch per event comes from the model",
            THIN_COMMAND.format(rate=_arg(lam)),
            "numbers",
        )


def _fit_reasons(case: _Case, option: str, push: Obs | None, poll: Obs | None, cost: Obs | None, leaning: str, words: list[str]) -> None:
    """Fit to the use case: the article's pairing, missed events, duplicates."""
    req = case.req
    # fit to the use case: the article's pairing of use cases with styles
    if leaning != "neutral":
        anchor = push if leaning == "push" else (cost or poll)
        col = "latency_ms.p99" if leaning == "push" else "requests_per_event"
        kind = (
            "an event notification the article pairs with webhooks"
            if leaning == "push"
            else "retrieval or sync the article pairs with APIs"
        )
        if anchor is not None:
            case.reason(
                FIT,
                f"The use case ({', '.join(words)}) is {kind}; the measurement agrees: {anchor.style} {col} = {fmt(anchor.get(col))}.",
                [anchor.ev(col)],
                WEBHOOK if leaning == "push" else POLLING,
            )
    if not req.missed_events_tolerated:
        if option in PUSH_FAMILY and push is not None:
            case.reason(
                FIT,
                "No event may be missed. Push retries on the Standard Webhooks schedule (about three days) and then "
                f"dead-letters; in the lab {fmt(push.get('retries'))} retries, {fmt(push.get('dead'))} dead letters "
                f"and {fmt(push.get('lost'))} lost, but a receiver that is down longer than the schedule loses events, "
                "so a poller on the cursor feed reconciles.",
                [push.ev("retries"), push.ev("dead"), push.ev("lost")],
                FALLBACK,
            )
        elif poll is not None:
            case.reason(
                FIT,
                "No event may be missed: the cursor feed is a durable log and the poller keeps its cursor, so a "
                f"stalled consumer catches up; the lab's poller lost {fmt(poll.get('lost'))} of "
                f"{fmt(poll.get('published'))} events.",
                [poll.ev("lost"), poll.ev("published")],
                POLLING,
            )
    if not req.duplicates_tolerated:
        anchor = push if option in PUSH_FAMILY else poll
        if anchor is not None:
            info = styles.get(anchor.style)
            how = info.dedup_key if info is not None else "event id"
            case.reason(
                FIT,
                f"Duplicates are not tolerated: every style is at-least-once, so the consumer de-duplicates by {how}; "
                f"the lab counted {fmt(anchor.get('duplicates'))} duplicates after de-duplication.",
                [anchor.ev("duplicates")],
                option,
            )


def _versatility_reasons(case: _Case, option: str, push: Obs | None, poll: Obs | None) -> None:
    """Versatility: ordering and bursts."""
    req = case.req
    # versatility: ordering and bursts
    if req.ordering != "none":
        if push is not None and option in PUSH_FAMILY:
            case.reason(
                VERSATILITY,
                f"Ordering ({req.ordering}) is not what push gives: deliveries run concurrently and a retry "
                f"arrives after later events (the lab saw {fmt(push.get('retries'))} retries); carry a sequence "
                "per key or fetch the current state" + (" - which the thin-event hybrid does." if option == THIN else "."),
                [push.ev("retries"), push.ev("attempts")],
                THIN if option == THIN else POLLING,
            )
        elif poll is not None:
            case.reason(
                VERSATILITY,
                f"Ordering ({req.ordering}) comes free with the cursor feed: events arrive in log order, "
                f"{fmt(poll.get('delivered'))} of them in the lab run.",
                [poll.ev("delivered")],
                option,
            )
    if req.burstiness == "bursty":
        if option in PUSH_FAMILY and push is not None:
            case.reason(
                VERSATILITY,
                "Bursty traffic arrives at the receiver as bursts of pushes; the receiver must absorb the peak or "
                f"answer 429 with Retry-After (lab p99 {fmt(push.get('latency_ms.p99'))} ms at "
                f"{fmt(push.rate)}/s with {push.arrival or 'unstated'} arrivals).",
                [push.ev("latency_ms.p99"), push.ev("workload.rate_per_s")],
                POLLING,
            )
        elif poll is not None:
            case.reason(
                VERSATILITY,
                "Bursty traffic is absorbed by the poll: a burst comes back as pages of one response, at the "
                f"consumer's pace (lab: {fmt(poll.get('requests_per_event'))} requests per event).",
                [poll.ev("requests_per_event")],
                option,
            )


def _security_reasons(case: _Case, option: str, push: Obs | None, poll: Obs | None) -> None:
    """Security: the sensitivity of the data, and the endpoint a consumer exposes."""
    req = case.req
    # security: sensitivity of the data, and the exposed endpoint
    if req.consumers_can_expose_https and push is not None:
        rejected = sorted(c for c in push.row if c.startswith("rejected.") and num(push.row.get(c)) is not None)
        ev = [push.ev(c) for c in rejected] or [push.ev("requests")]
        if option in PUSH_FAMILY:
            text = (
                "Each receiver is a public HTTPS endpoint: it must verify the Standard Webhooks signature on the raw "
                "body, refuse timestamps over 5 minutes off and compare in constant time; the lab's receiver "
                f"verified every one of {fmt(push.get('requests'))} requests."
            )
            if req.data_sensitivity == "sensitive":
                text += " The data is sensitive: a thin event (id and type only) keeps it behind the API's keys and access control" + (
                    ", as this hybrid does." if option == THIN else "; consider it for the most sensitive fields."
                )
            case.reason(SECURITY, text, ev, option)
        elif poll is not None:
            case.reason(
                SECURITY,
                "With polling nothing is exposed on the consumer side; the API's keys and access control guard the "
                f"data ({req.data_sensitivity}), and every poll is authenticated (lab: {fmt(poll.get('requests'))} requests).",
                [poll.ev("requests")],
                option,
            )


def _functional_reasons(
    case: _Case, option: str, push: Obs | None, poll: Obs | None, cost: Obs | None, leaning: str, words: list[str]
) -> None:
    """The functional factors: fit, versatility, security."""
    _fit_reasons(case, option, push, poll, cost, leaning, words)
    _versatility_reasons(case, option, push, poll)
    _security_reasons(case, option, push, poll)


def _budget_reasons(case: _Case, option: str, push: Obs | None, poll: Obs | None, lt_user: float | None) -> None:
    req = case.req
    limit = req.budget.bandwidth_gb_per_month
    if option == LONG_POLLING:
        if poll is None or push is None or not poll.has("bytes_per_event"):
            return
        month = req.event_rate_per_s * SECONDS_PER_MONTH * req.consumers / 1e9
        case.reason(
            VERSATILITY,
            f"Bandwidth at this scale: plain polling at lambda T = {fmt(poll.lambda_t)} cost {fmt(poll.get('bytes_per_event'))} "
            f"bytes per event (about {fmt(round_sig((poll.get('bytes_per_event') or 0) * month, 3))} GB a month here); a long poll "
            f"returns once per event, close to a push's {fmt(push.get('bytes_per_event'))} bytes "
            f"(about {fmt(round_sig((push.get('bytes_per_event') or 0) * month, 3))} GB a month)"
            + (f" against a budget of {fmt(limit)} GB." if limit is not None else "."),
            [poll.ev("bytes_per_event"), push.ev("bytes_per_event")],
            LONG_POLLING,
        )
        return
    style_obs = push if option in PUSH_FAMILY else poll
    if style_obs is None or not style_obs.has("bytes_per_event"):
        return
    bpe = style_obs.get("bytes_per_event") or 0.0
    gb = bpe * req.event_rate_per_s * SECONDS_PER_MONTH * req.consumers / 1e9
    text = (
        f"Bandwidth at this scale: {fmt(bpe)} bytes per event per consumer (measured) x {fmt(req.event_rate_per_s)}/s "
        f"x {fmt(req.consumers)} consumer{'s' if req.consumers != 1 else ''} is about {fmt(round_sig(gb, 3))} GB a month"
    )
    if limit is not None:
        text += f", {'within' if gb <= limit else 'over'} the budget of {fmt(limit)} GB."
        other = poll if option in PUSH_FAMILY else push
        if other is not None and other.has("bytes_per_event"):
            ogb = (other.get("bytes_per_event") or 0.0) * req.event_rate_per_s * SECONDS_PER_MONTH * req.consumers / 1e9
            text += f" The other style would need about {fmt(round_sig(ogb, 3))} GB ({other.style} at lambda T = {fmt(other.lambda_t)})."
            case.reason(
                VERSATILITY, text, [style_obs.ev("bytes_per_event"), other.ev("bytes_per_event")], option if gb <= ogb else other.variant
            )
            return
    else:
        text += "."
    case.reason(VERSATILITY, text, [style_obs.ev("bytes_per_event")], option)


def _confidence(case: _Case, option: str, push: Obs | None, poll: Obs | None, push_meets: bool, poll_possible: bool) -> tuple[str, str]:
    decisive = [g for g in case.gaps if g.affects == "decision"]
    why: list[str] = []
    level = "high"
    if push is None or poll is None:
        level = "low"
        why.append("the results lack one of the two styles")
    if option in PUSH_FAMILY and not push_meets:
        level = "low"
        why.append("even push misses the latency target")
    if option == POLLING and not poll_possible:
        level = "low"
        why.append("no poll interval meets the latency target")
    if option == LONG_POLLING and not case.of(LONG_POLLING):
        if level == "high":
            level = "medium"
        why.append("long polling was not measured; its latency and cost come from the model")
    if option == THIN and not case.of("thin webhooks"):
        if level == "high":
            level = "medium"
        why.append("thin events were not measured; the fetch per event comes from the model")
    if decisive and level == "high":
        level = "medium"
    if decisive:
        why.append(f"{len(decisive)} coverage gap{'s' if len(decisive) > 1 else ''} could change the choice")
    minor = len(case.gaps) - len(decisive)
    if not why:
        why.append("every number the choice rests on was measured")
    if minor:
        why.append(f"{minor} other gap{'s only refine' if minor > 1 else ' only refines'} the numbers")
    return level, "; ".join(why)


def _duration(seconds: float) -> str:
    """Seconds, with minutes or hours beside them when those read better."""
    if seconds >= 3600:
        return f"{fmt(seconds)} s ({fmt(round_sig(seconds / 3600, 2))} h)"
    if seconds >= 120:
        return f"{fmt(seconds)} s ({fmt(round_sig(seconds / 60, 2))} min)"
    return f"{fmt(seconds)} s"


def _sentence(option: str, req: Requirements, push_p99: float | None, t_rec: float | None, lt_user: float | None) -> str:
    target = f"{fmt(req.target_latency_p99_ms)} ms" if req.target_latency_p99_ms < 120_000 else _duration(req.target_latency_p99_ms / 1000)
    if option == POLLING:
        return (
            f"Poll the cursor feed every {_duration(t_rec or 0)}: at lambda T = {fmt(lt_user)} each poll brings many events, "
            f"so polling is the cheaper way to meet a {target} p99."
        )
    if option == LONG_POLLING:
        return (
            f"Use long polling (hold each request up to {fmt(LONG_POLL_WAIT_S)} s): the consumers cannot receive "
            f"webhooks, and plain polls fast enough for a {target} p99 would mostly come back empty."
        )
    lat = (
        f"push's measured p99 of {fmt(push_p99)} ms meets the {target} target"
        if push_p99 is not None
        else f"push meets the {target} target"
    )
    if option == FALLBACK:
        return (
            f"Push webhooks and reconcile with a poller on the cursor feed every {fmt(RECONCILE_S / 60)} minutes: "
            f"{lat}, and the poller recovers any event the retries give up on."
        )
    if option == THIN:
        return f"Push thin webhooks (id and type) and let consumers fetch the event through the API: {lat}, and the data stays behind the API's access control."
    return f"Push webhooks: {lat} and each event costs one request."


def _factor_views(
    case: _Case, push: Obs | None, poll: Obs | None, pairs: list[tuple[Obs, Obs]], crossover: float, measured: bool
) -> tuple[FactorView, ...]:
    views = []
    # latency: does the article's claim hold here?
    ev: list[Evidence] = []
    if push is not None and poll is not None and push.has("latency_ms.p99") and poll.has("latency_ms.p99"):
        pw, pp = push.get("latency_ms.p99"), poll.get("latency_ms.p99")
        holds = "holds" if pw < pp else "does not hold"  # type: ignore[operator]
        finding = (
            f"The claim {holds} in the lab: webhook p99 {fmt(pw)} ms against polling p99 {fmt(pp)} ms at "
            f"T = {fmt(poll.interval_s)} s. Polling's delay is set by T, not by the server; push's by one round trip."
        )
        ev = [push.ev("latency_ms.p99"), poll.ev("latency_ms.p99")]
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
