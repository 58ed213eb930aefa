"""Held streams (Server-Sent Events, WebSocket) in the decision: what each measured stream says, traced.

A held stream is push over a connection the consumer opened, so it reaches the
consumers a webhook cannot (NAT, firewalls, phones). ``stream_narrative`` puts
each measured stream style beside what it would replace (measured long polling,
else plain polling) on the numbers that matter at scale: latency p99, bytes per
event, provider CPU per delivered event, provider memory per held connection,
reconnects and backpressure drops. Whether a stream is recommended is the
options table's call (``labkit.report.options``), on the same measured numbers
as every other candidate. Which styles are streams comes from the registry
(push, no public endpoint), never from their names.
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit.report.observations import Evidence, Obs, fmt, is_stream, logdist, nearest, round_sig
from labkit.report.policy import gb_per_month
from labkit.report.reasons import Case
from labkit.report.terms import FIT, LATENCY, LONG_POLLING, POLLING, SECURITY, VERSATILITY
from labkit.results import columns as cols


@dataclass(frozen=True)
class StreamView:
    """One measured stream style at the requirement's rate, with the per-connection numbers derived from its row."""

    obs: Obs
    baseline: Obs | None  # the same run's provider that held no connections (for memory per connection)

    @property
    def option(self) -> str:
        return self.obs.variant

    @property
    def connections(self) -> float | None:
        return self.obs.get("connections") or self.obs.get("consumers")

    @property
    def cpu_ms_per_event(self) -> float | None:
        """Provider CPU per delivered event (one event to one consumer), in ms."""
        cpu, delivered = self.obs.get("provider_cpu_s"), self.obs.get("delivered")
        return cpu / delivered * 1000 if cpu is not None and delivered else None

    @property
    def rss_kb_per_connection(self) -> float | None:
        """Provider RSS per held connection: above the same run's provider that held none, else the whole process."""
        rss, n = self.obs.get("provider_rss_mb"), self.connections
        if rss is None or not n:
            return None
        base = self.baseline.get("provider_rss_mb") if self.baseline is not None else None
        extra = rss - base if base is not None and base < rss else rss
        return extra * 1024 / n

    def rss_evidence(self) -> list[Evidence | None]:
        base = self.baseline.ev("provider_rss_mb") if self.baseline is not None else None
        return [
            self.obs.ev("provider_rss_mb"),
            base,
            self.obs.ev("connections") if self.obs.has("connections") else self.obs.ev("consumers"),
        ]

    def meets(self, target_ms: float) -> bool:
        p99 = self.obs.get(cols.LATENCY_P99)
        return p99 is not None and p99 <= target_ms

    @property
    def lost(self) -> float:
        return self.obs.get("lost") or 0.0


def stream_views(case: Case, rate: float) -> list[StreamView]:
    """Each measured stream variant's observation nearest ``rate``, with its run's baseline provider."""
    by_variant: dict[str, list[Obs]] = {}
    for o in case.obs:
        if is_stream(o.style):
            by_variant.setdefault(o.variant, []).append(o)
    views = []
    for variant in sorted(by_variant):
        near = nearest(by_variant[variant], lambda x: logdist(x.rate, rate))
        assert near is not None
        peers = [p for p in case.obs if p.run_id == near.run_id and not is_stream(p.style) and p.has("provider_rss_mb")]
        base = min(peers, key=lambda p: (p.get("provider_rss_mb") or 0.0, p.style)) if peers else None
        views.append(StreamView(near, base))
    return views


def reference(case: Case, rate: float) -> Obs | None:
    """What a stream replaces for these consumers: measured long polling, else plain polling, nearest the rate."""
    return nearest(case.of(LONG_POLLING), lambda o: logdist(o.rate, rate)) or nearest(case.of(POLLING), lambda o: logdist(o.rate, rate))


def _per_month_gb(bytes_per_event: float, case: Case) -> float:
    return gb_per_month(bytes_per_event, case.req.event_rate_per_s, case.req.consumers)


def _stream_reasons(case: Case, v: StreamView, ref: Obs | None, target: float) -> None:
    o, req = v.obs, case.req
    p99 = o.get(cols.LATENCY_P99)
    vs = f"; {ref.variant} measured {fmt(ref.get(cols.LATENCY_P99))} ms in the same comparison" if ref is not None else ""
    case.reason(
        LATENCY,
        f"A {v.option} stream pushes each event down the connection the consumer opened: measured p99 {fmt(p99)} ms over "
        f"{fmt(v.connections)} held connections, which {'meets' if v.meets(target) else 'misses'} the {fmt(target)} ms target{vs}.",
        [o.ev(cols.LATENCY_P99), o.ev(cols.RATE), ref.ev(cols.LATENCY_P99) if ref is not None else None],
        v.option if v.meets(target) else LONG_POLLING,
    )
    bpe = o.get("bytes_per_event")
    if bpe is not None:
        text = f"{v.option} cost {fmt(bpe)} bytes per event per consumer (one frame, heartbeats and the handshake's share)"
        ev: list[Evidence | None] = [o.ev("bytes_per_event")]
        if ref is not None and ref.has("bytes_per_event"):
            rb = ref.get("bytes_per_event") or 0.0
            text += f" against {fmt(rb)} for {ref.variant}, which pays a request and a response per event"
            ev.append(ref.ev("bytes_per_event"))
        text += f"; at {fmt(req.consumers)} consumers about {fmt(round_sig(_per_month_gb(bpe, case), 3))} GB a month."
        case.reason(VERSATILITY, text, ev, v.option if ref is None or bpe <= (ref.get("bytes_per_event") or 0.0) else ref.variant)
    cpu, rss = v.cpu_ms_per_event, v.rss_kb_per_connection
    if cpu is not None or rss is not None:
        parts = []
        if cpu is not None:
            cores = cpu / 1000 * req.event_rate_per_s * req.consumers
            parts.append(
                f"{fmt(round_sig(cpu, 3))} ms of provider CPU per delivered event (about {fmt(round_sig(cores, 2))} cores at this scale)"
            )
        if rss is not None:
            gb = rss * 1024 * req.consumers / 1e9
            parts.append(
                f"{fmt(round_sig(rss, 3))} KB of provider memory per held connection (about {fmt(round_sig(gb, 2))} GB for all consumers)"
            )
        case.reason(
            VERSATILITY,
            f"Holding {fmt(v.connections)} {v.option} streams took "
            + " and ".join(parts)
            + "; memory grows with connections, not with events.",
            [o.ev("provider_cpu_s"), o.ev("delivered"), *v.rss_evidence()],
            v.option,
        )
    case.reason(
        FIT,
        f"A dropped {v.option} stream resumes from its last event id, so a phone that sleeps or changes network catches up: "
        f"the lab counted {_count(o.get('reconnects'), 'reconnect')}, {_count(o.get('dropped_backpressure'), 'stream')} dropped for "
        f"backpressure, {fmt(o.get('lost'))} lost and {fmt(o.get('duplicates'))} duplicates.",
        [o.ev("reconnects"), o.ev("dropped_backpressure"), o.ev("lost"), o.ev("duplicates")],
        v.option if v.lost == 0 else LONG_POLLING,
    )


def _count(value: float | None, noun: str) -> str:
    return f"{fmt(value)} {noun}{'' if value == 1 else 's'}"


def stream_narrative(case: Case, rate: float, target: float, chosen_style: str | None) -> StreamView | None:
    """Reasons for every measured stream against what it would replace; the chosen stream's view, or None.

    The choice itself is the options table's (``labkit.report.options``): a stream
    wins there when it is the cheapest candidate that meets every hard requirement.
    """
    views = stream_views(case, rate)
    ref = reference(case, rate)
    for v in views:
        _stream_reasons(case, v, ref, target)
    chosen = next((v for v in views if v.obs.style == chosen_style), None)
    if chosen is not None:
        security_reason(case, chosen)
    return chosen


def security_reason(case: Case, v: StreamView) -> None:
    case.reason(
        SECURITY,
        f"A {v.option} stream needs only an outbound connection from the consumer, authenticated with the same API key as the "
        f"feed, so nothing on the phone is exposed; the lab's consumers held {fmt(v.connections)} of them.",
        [v.obs.ev("connections") if v.obs.has("connections") else v.obs.ev("consumers")],
        v.option,
    )


def stream_sentence(v: StreamView, ref: Obs | None, target_ms: float, target_text: str, why: str) -> str:
    """The recommendation in one sentence: ``why`` it was chosen (the options table's words) and the measured numbers."""
    rb = ref.get(cols.BYTES_PER_EVENT) if ref is not None else None
    cost = f"{fmt(v.obs.get(cols.BYTES_PER_EVENT))} bytes per event" + (
        f" against {ref.variant}'s {fmt(rb)}" if ref is not None and rb is not None else ""
    )
    rss = v.rss_kb_per_connection
    mem = f", about {fmt(round_sig(rss, 2))} KB of provider memory per connection" if rss is not None else ""
    p99 = v.obs.get(cols.LATENCY_P99)
    verdict = "meets" if v.meets(target_ms) else "misses"
    return (
        f"Hold a {v.option} stream per consumer, resuming from the last event id: {why}; its measured p99 of {fmt(p99)} ms "
        f"{verdict} the {target_text} target at {cost}{mem}."
    )
