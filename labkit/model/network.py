"""What the network adds to each style's latency: one-way and round-trip terms, handshakes, bandwidth, loss.

These terms sit on top of a style's loopback latency (``base_s``: what this
machine measures with no network in between) so that a run through a network
profile (``labkit.config.network``) can be compared with a model that knows the
network. All times are seconds; every function is pure.

The terms, for a one-way delay ``d = rtt / 2``:

- **webhook**: the request travels one way: ``d``. A sender that opens a new
  connection per delivery first pays TCP's handshake (1 RTT) and, over TLS 1.3,
  TLS's (1 RTT) before the request leaves.
- **polling** on a fixed timetable: polls reach the provider every ``T``
  whatever the path, so an event waits U[0, T] (mean ``T/2``) for the next poll
  to arrive there, and the response takes ``d`` back. Handshakes delay every
  poll equally, shifting the timetable without adding to the mean. A poller
  that instead sleeps ``T`` after each response has a cycle of ``T + RTT``
  (+ handshakes) and a mean of half that plus ``d``. (The often quoted
  ``T/2 + RTT`` counts from the start of the poll, not from the event.)
- **long polling**: a parked request answers an event after ``d``; after each
  answer there is a gap of one RTT (+ handshakes on a new connection) before
  the next request is parked, and an event in the gap waits the rest of it.
- **streams**: one connection carries every event: ``d``; the handshakes are
  paid once per connection and shared by the events it carries.
- **bandwidth**: ``bytes * 8 / rate`` in the direction the event travels
  (up for a webhook: the sender connects; down for a poll's response).
- **loss**: each chunk on the critical path waits one retransmission timeout
  with probability ``loss`` (the user-space proxy's model of a lost segment).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from labkit.config.network import NetworkProfile

TCP_HANDSHAKE_RTTS = 1  # SYN, SYN-ACK; the request leaves with the ACK
TLS13_HANDSHAKE_RTTS = 1  # ClientHello, ServerHello..Finished; the request leaves with the client's Finished


@dataclass(frozen=True)
class LatencyTerms:
    """One delivery path's mean latency, term by term (seconds), so reports can show where the time goes.

    ``style`` names the path the terms model (push, poll, long poll, stream), not a registered style:
    the model sits below the styles, and each style picks the path it takes.
    """

    style: str
    base_s: float = 0.0
    wait_s: float = 0.0  # for the next poll (T/2) or for a long poll to be re-armed
    one_way_s: float = 0.0
    handshake_s: float = 0.0
    transfer_s: float = 0.0
    loss_s: float = 0.0

    @property
    def total_s(self) -> float:
        return self.base_s + self.wait_s + self.one_way_s + self.handshake_s + self.transfer_s + self.loss_s

    def as_dict(self) -> dict[str, float | str]:
        return {**asdict(self), "total_s": self.total_s}


def one_way_s(profile: NetworkProfile) -> float:
    """Half the round trip: what one direction adds."""
    return profile.rtt_ms / 2000


def handshake_s(profile: NetworkProfile, *, new_connection: bool, tls: bool) -> float:
    """Round trips before a request can leave a new connection: TCP (1), plus TLS 1.3 (1); none on a reused one."""
    if not new_connection:
        return 0.0
    return (TCP_HANDSHAKE_RTTS + (TLS13_HANDSHAKE_RTTS if tls else 0)) * profile.rtt_ms / 1000


def transfer_s(nbytes: float, rate_bps: float | None) -> float:
    """Time to put ``nbytes`` on a link of ``rate_bps`` (0 for an unlimited link)."""
    if not rate_bps or nbytes <= 0:
        return 0.0
    return nbytes * 8 / rate_bps


def loss_stall_s(profile: NetworkProfile, chunks: float = 1.0) -> float:
    """The mean stall of ``chunks`` chunks on the critical path, each held one RTO with probability ``loss``."""
    return chunks * profile.loss * profile.rto_ms / 1000


def _handshake_chunks(new_connection: bool, tls: bool) -> int:
    """Extra chunks a new connection puts on the critical path (TLS: ClientHello up, server flight down)."""
    return 2 if new_connection and tls else 0


def webhook_latency(
    profile: NetworkProfile,
    *,
    base_s: float = 0.0,
    payload_bytes: float = 0.0,
    tls: bool = False,
    new_connection: bool = False,
    new_connection_share: float | None = None,
) -> LatencyTerms:
    """Event -> receiver for a push: one way, after the handshakes of a new connection, plus the body's transfer.

    ``new_connection_share`` is the share of deliveries that open a connection
    (a kept-alive pool that grows under overlap: ``pool_connections`` / deliveries);
    without it a delivery opens one exactly when ``new_connection``.
    """
    share = (1.0 if new_connection else 0.0) if new_connection_share is None else min(max(new_connection_share, 0.0), 1.0)
    return LatencyTerms(
        style="push",
        base_s=base_s,
        one_way_s=one_way_s(profile),
        handshake_s=share * handshake_s(profile, new_connection=True, tls=tls),
        transfer_s=transfer_s(payload_bytes, profile.rate_up_bps),
        loss_s=loss_stall_s(profile, 1 + share * _handshake_chunks(True, tls)),
    )


def pool_connections(rate_per_s: float, attempt_s: float, deliveries: float, max_connections: int | None = None) -> float:
    """Connections a kept-alive pool opens over ``deliveries`` Poisson deliveries that each hold one for ``attempt_s``.

    By Little's law a mean of ``rho = rate x attempt`` deliveries are in flight,
    and for Poisson arrivals the number in flight is Poisson(rho) (an M/G/inf
    queue). The pool never closes a connection within a run, so it ends with
    as many as the most deliveries ever in flight at once. A delivery that
    arrives to find ``k`` in flight (probability ``P(k)``, the arrivals seeing
    time averages) needs a ``k+1``-th connection; over ``deliveries`` arrivals
    the chance that one ever does is about ``1 - exp(-deliveries P(k))``. The
    expected count is the sum of those chances over ``k``, at least one.
    """
    if deliveries < 1:
        return 0.0
    rho = max(rate_per_s * attempt_s, 0.0)
    cap = int(deliveries) if max_connections is None else min(int(deliveries), max_connections)
    if rho == 0:
        return 1.0
    total, k = 1.0, 0
    while k + 1 < cap:
        k += 1
        log_pmf = -rho + k * math.log(rho) - math.lgamma(k + 1)  # P(exactly k in flight), in logs: rho may be large
        term = -math.expm1(-deliveries * math.exp(log_pmf))
        total += term
        if k > rho and term < 1e-9:
            break
    return total


def _answer_terms(style: str, profile: NetworkProfile, *, base_s: float, wait_s: float, response_bytes: float) -> LatencyTerms:
    """A pull's terms: the wait for a request at the provider, then the answer's one way down, its transfer and loss."""
    return LatencyTerms(
        style=style,
        base_s=base_s,
        wait_s=wait_s,
        one_way_s=one_way_s(profile),
        transfer_s=transfer_s(response_bytes, profile.rate_down_bps),
        loss_s=loss_stall_s(profile, 1),
    )


def polling_latency(
    profile: NetworkProfile,
    interval_s: float,
    *,
    base_s: float = 0.0,
    response_bytes: float = 0.0,
    timetabled: bool = True,
    tls: bool = False,
    new_connection: bool = False,
) -> LatencyTerms:
    """Event -> poller: the wait for the next poll to reach the provider, then the response's way back."""
    if interval_s <= 0:
        raise ValueError("a poll interval is positive")
    cycle = interval_s
    if not timetabled:  # sleeps T after each response: the path's time lengthens the cycle
        cycle += profile.rtt_ms / 1000 + handshake_s(profile, new_connection=new_connection, tls=tls)
    return _answer_terms("poll", profile, base_s=base_s, wait_s=cycle / 2, response_bytes=response_bytes)


def rearm_wait_s(rate_per_s: float, gap_s: float) -> float:
    """Mean extra wait per event from the gaps in which no long poll is parked.

    After each answer a gap ``G`` passes before the next request is parked;
    Poisson arrivals put ``lambda G`` events in each gap, each waiting ``G/2`` on
    average, and a gap is followed by an event that finds a parked request only
    when the gap was empty (probability ``e^(-lambda G)``). So a share
    ``lambda G / (lambda G + e^(-lambda G))`` of events waits ``G/2``.
    """
    if rate_per_s <= 0 or gap_s <= 0:
        return 0.0
    lg = rate_per_s * gap_s
    return gap_s / 2 * lg / (lg + math.exp(-lg))


def long_poll_latency(
    profile: NetworkProfile,
    rate_per_s: float,
    *,
    base_s: float = 0.0,
    response_bytes: float = 0.0,
    tls: bool = False,
    new_connection: bool = False,
) -> LatencyTerms:
    """Event -> long poller: one way from a parked request, plus the wait of events that fall in a re-arm gap."""
    gap = profile.rtt_ms / 1000 + handshake_s(profile, new_connection=new_connection, tls=tls)
    return _answer_terms("long poll", profile, base_s=base_s, wait_s=rearm_wait_s(rate_per_s, gap), response_bytes=response_bytes)


def stream_latency(
    profile: NetworkProfile,
    *,
    base_s: float = 0.0,
    event_bytes: float = 0.0,
    tls: bool = False,
    events_per_connection: float = math.inf,
) -> LatencyTerms:
    """Event -> stream consumer: one way; the connection's handshakes (TCP + TLS) are shared by its events."""
    if events_per_connection <= 0:
        raise ValueError("a connection carries at least one event")
    shared = handshake_s(profile, new_connection=True, tls=tls) / events_per_connection
    return LatencyTerms(
        style="stream",
        base_s=base_s,
        one_way_s=one_way_s(profile),
        handshake_s=shared,
        transfer_s=transfer_s(event_bytes, profile.rate_down_bps),
        loss_s=loss_stall_s(profile, 1),
    )
