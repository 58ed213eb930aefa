"""The reasons a recommendation gives, and the gaps it admits: each cites measured numbers.

``Case`` gathers what ``labkit.report.decide`` finds for one set of
requirements: reasons (one factor each, with the evidence behind them),
coverage gaps (with the ``labkit`` command whose run would settle them) and
rejected options. The functions here add the functional (fit, versatility,
security), budget and coverage parts; ``decide`` adds latency and cost and
makes the choice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from labkit import styles
from labkit.config import WorkloadSettings
from labkit.report.observations import Evidence, Obs, Observations, fmt, is_stream, num, round_sig
from labkit.report.policy import CLEAR_MARGIN, gb_per_month
from labkit.report.requirements import Requirements
from labkit.report.terms import (
    FACTORS,
    FALLBACK,
    FIT,
    LONG_POLLING,
    POLLING,
    PUSH_FAMILY,
    SECURITY,
    THIN,
    VERSATILITY,
    WEBHOOK,
    measured_as,
)
from labkit.results import columns as cols

VARIANTS_EXPERIMENT = "scenarios/experiments/long-polling-and-batching.toml"
LONG_POLL_COMMAND = f"labkit sweep {VARIANTS_EXPERIMENT}  # set [workload] rate_per_s = {{rate}} to match"
THIN_COMMAND = LONG_POLL_COMMAND
CROSSOVER_COMMAND = "labkit sweep scenarios/experiments/wasted-polls.toml"


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


@dataclass
class Case:
    req: Requirements
    obs: Observations
    reasons: list[Reason] = field(default_factory=list)
    gaps: list[CoverageGap] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)

    def of(self, *variants: str) -> list[Obs]:
        return self.obs.of(*variants)

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


def _cmd(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def _arg(value: float) -> str:
    """A number as a command-line argument: three significant digits, no separators, no exponent."""
    v = round_sig(value, 3)
    return str(int(v)) if float(v).is_integer() else f"{v:.6f}".rstrip("0").rstrip(".")


def compare_cmd(
    rate: float,
    interval_s: float | None = None,
    *,
    arrival: str | None = None,
    pollers: int | None = None,
    subscribers: int | None = None,
    with_styles: tuple[str, ...] = (),
) -> str:
    """A ``labkit compare`` line within RunSettings' limits, long enough to see several polls and ~200 events."""
    rate = min(max(rate, 0.001), 100_000)
    interval = min(max(interval_s or 1.0, 0.001), 3600)
    # within the event cap too (a tenth spare for the rounding below): RunSettings refuses rate x duration over it
    cap_s = 0.9 * WorkloadSettings.model_fields["max_events"].default / rate
    duration = min(max(10.0, 5 * interval, 200 / rate), 24 * 3600, cap_s)
    return _cmd(
        "labkit compare",
        f"--styles {','.join(with_styles)}" if with_styles else "",
        f"--rate {_arg(rate)}",
        f"--poll-interval {_arg(interval)}",
        f"--duration {_arg(round_sig(duration, 2))}",
        f"--arrival {arrival}" if arrival else "",
        f"--pollers {pollers}" if pollers else "",
        f"--subscribers {subscribers}" if subscribers else "",
    )


def coverage(
    case: Case,
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
            compare_cmd(lam, min(t_rec or 1.0, 10.0)),
            "decision" if near else "numbers",
        )
    lts = sorted(p.lambda_t for p, _ in pairs if p.lambda_t)
    if lt_user is not None and lts and not (lts[0] / 2 <= lt_user <= lts[-1] * 2):
        # beyond the measured range on the far side of the crossover, extrapolation only strengthens the choice
        far = (lt_user < lts[0] and lts[0] <= crossover) or (lt_user > lts[-1] and lts[-1] >= crossover)
        case.gap(
            f"lambda T = {fmt(lt_user)} lies outside the measured {fmt(lts[0])}-{fmt(lts[-1])}"
            + ("; beyond it the choice only gets clearer" if far else ""),
            compare_cmd(lam, t_rec),
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
            compare_cmd(lam, t_rec),
            "numbers",
        )
    max_consumers = max((o.consumers or 1) for o in case.obs)
    if req.consumers > max_consumers:
        case.gap(
            f"{fmt(req.consumers)} consumers were never run (at most {fmt(max_consumers)}); "
            "the capacity projection extrapolates from the calibration",
            compare_cmd(lam, t_rec, pollers=min(req.consumers, 10_000), subscribers=min(req.consumers, 1000)),
            "numbers",
        )
    if req.burstiness == "bursty" and not any(o.arrival == "bursty" for o in case.obs):
        case.gap(
            "bursty arrivals were never run; every run used steady or Poisson arrivals",
            compare_cmd(lam, t_rec, arrival="bursty"),
            "numbers",
        )
    styles_run = {o.style for o in case.obs}
    for info in styles.all_styles():
        if info.name not in styles_run and info.in_default_comparison:  # what compare_cmd runs; streams have their own gap
            case.gap(f"no {info.name} run at all", compare_cmd(lam, t_rec), "decision")
    streams = [i.name for i in styles.all_styles() if is_stream(i.name)]
    if streams and not req.consumers_can_expose_https and not any(s in styles_run for s in streams):
        # streams reach the consumers a webhook cannot: for them a stream could change the choice
        case.gap(
            f"no held-stream run ({', '.join(streams)}): their latency, bytes per event and memory per connection are unmeasured",
            compare_cmd(lam, t_rec, with_styles=styles.names()),
            "decision",
        )
    if option == LONG_POLLING and not case.of(LONG_POLLING):
        case.gap(
            "long polling was never run; its latency (one round trip) and cost come from the model",
            LONG_POLL_COMMAND.format(rate=_arg(lam)),
            "decision",
        )
    if option == THIN and not case.of(*measured_as(THIN)):
        case.gap(
            "thin webhooks + fetch were never run; the extra fetch per event comes from the model",
            THIN_COMMAND.format(rate=_arg(lam)),
            "numbers",
        )


def _fit_reasons(case: Case, option: str, push: Obs | None, poll: Obs | None, cost: Obs | None, leaning: str, words: list[str]) -> None:
    """Fit to the use case: the article's pairing, missed events, duplicates."""
    req = case.req
    # fit to the use case: the article's pairing of use cases with styles
    if leaning != "neutral":
        anchor = push if leaning == "push" else (cost or poll)
        col = cols.LATENCY_P99 if leaning == "push" else "requests_per_event"
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
                "No event may be missed: the cursor feed is a durable log and the consumer keeps its cursor, so a "
                f"stalled consumer catches up; the lab's {poll.style} consumer lost {fmt(poll.get('lost'))} of "
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


def _versatility_reasons(case: Case, option: str, push: Obs | None, poll: Obs | None) -> None:
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
                f"answer 429 with Retry-After (lab p99 {fmt(push.get(cols.LATENCY_P99))} ms at "
                f"{fmt(push.rate)}/s with {push.arrival or 'unstated'} arrivals).",
                [push.ev(cols.LATENCY_P99), push.ev(cols.RATE)],
                POLLING,
            )
        elif poll is not None and is_stream(poll.style):
            case.reason(
                VERSATILITY,
                "Bursty traffic queues per stream, within a bound: a consumer that falls behind is dropped and resumes from "
                f"its cursor (lab: {fmt(poll.get('dropped_backpressure'))} streams dropped for backpressure, "
                f"p99 {fmt(poll.get(cols.LATENCY_P99))} ms).",
                [poll.ev("dropped_backpressure"), poll.ev(cols.LATENCY_P99)],
                option,
            )
        elif poll is not None:
            case.reason(
                VERSATILITY,
                "Bursty traffic is absorbed by the poll: a burst comes back as pages of one response, at the "
                f"consumer's pace (lab: {fmt(poll.get('requests_per_event'))} requests per event).",
                [poll.ev("requests_per_event")],
                option,
            )


def _security_reasons(case: Case, option: str, push: Obs | None, poll: Obs | None) -> None:
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


def functional_reasons(
    case: Case, option: str, push: Obs | None, poll: Obs | None, cost: Obs | None, leaning: str, words: list[str]
) -> None:
    """The functional factors: fit, versatility, security."""
    _fit_reasons(case, option, push, poll, cost, leaning, words)
    _versatility_reasons(case, option, push, poll)
    _security_reasons(case, option, push, poll)


def budget_reasons(case: Case, option: str, push: Obs | None, poll: Obs | None, lt_user: float | None) -> None:
    req = case.req
    limit = req.budget.bandwidth_gb_per_month
    if option == LONG_POLLING:
        if poll is None or push is None or not poll.has("bytes_per_event"):
            return
        month = gb_per_month(1.0, req.event_rate_per_s, req.consumers)
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
    gb = gb_per_month(bpe, req.event_rate_per_s, req.consumers)
    text = (
        f"Bandwidth at this scale: {fmt(bpe)} bytes per event per consumer (measured) x {fmt(req.event_rate_per_s)}/s "
        f"x {fmt(req.consumers)} consumer{'s' if req.consumers != 1 else ''} is about {fmt(round_sig(gb, 3))} GB a month"
    )
    if limit is not None:
        text += f", {'within' if gb <= limit else 'over'} the budget of {fmt(limit)} GB."
        other = poll if option in PUSH_FAMILY else push
        if other is not None and other.has("bytes_per_event"):
            ogb = gb_per_month(other.get("bytes_per_event") or 0.0, req.event_rate_per_s, req.consumers)
            text += f" The other style would need about {fmt(round_sig(ogb, 3))} GB ({other.style} at lambda T = {fmt(other.lambda_t)})."
            case.reason(
                VERSATILITY, text, [style_obs.ev("bytes_per_event"), other.ev("bytes_per_event")], option if gb <= ogb else other.variant
            )
            return
    else:
        text += "."
    case.reason(VERSATILITY, text, [style_obs.ev("bytes_per_event")], option)
