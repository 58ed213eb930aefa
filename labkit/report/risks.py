"""What fails with each option, how it is detected, how to recover."""

from __future__ import annotations

from dataclasses import dataclass

from labkit.report.requirements import Requirements
from labkit.report.terms import FALLBACK, LONG_POLLING, POLLING, THIN


@dataclass(frozen=True)
class Risk:
    """What fails with the chosen option, how it shows, how to recover."""

    fails: str
    detected: str
    recovery: str


# Each option's risks are data: risks_of only picks and orders them.
PUSH_RISKS = (
    Risk(
        "A receiver is down or slow: deliveries fail or time out.",
        "Provider-side delivery attempts, retries and dead letters per endpoint; alert on a rising retry rate and on any dead letter.",
        "Retries follow the Standard Webhooks schedule (about three days, with jitter); afterwards replay the dead letters "
        "(POST /subscriptions/{id}/replay) and reconcile by polling the cursor feed.",
    ),
    Risk(
        "A forged or replayed request reaches the public endpoint.",
        "Receiver counts of rejected signatures and stale timestamps.",
        "Verify the signature on the raw body and the 5-minute timestamp window; rotate the whsec_ secret with two signatures during the overlap.",
    ),
    Risk(
        "A retry delivers an event twice, or after later events.",
        "Duplicate webhook-id counter at the receiver; sequence gaps per key.",
        "De-duplicate by webhook-id; order by a per-key sequence or fetch the current state.",
    ),
    Risk(
        "A burst overloads the receiver.",
        "429/503 responses and delivery lag (event created to acknowledged).",
        "Answer 429 with Retry-After (the dispatcher honours it), queue inside the receiver, or batch events per request.",
    ),
)
POLL_RISKS = (
    Risk(
        "A poller stalls or crashes and falls behind.",
        "Cursor lag (head of the log minus the consumer's cursor) and poll lateness; alert when lag exceeds a few intervals.",
        "Restart from the persisted cursor: nothing is lost or processed twice.",
    ),
    Risk(
        "The provider throttles (429) as consumers grow.",
        "Throttled-poll counter and Retry-After seen by the poller.",
        "Honour Retry-After, use conditional requests (ETag, 304 does not count), lengthen T or add provider capacity.",
    ),
    Risk(
        "Most polls come back empty and cost bandwidth and CPU for nothing.",
        "Empty-poll ratio against the model's e^(-lambda T).",
        "Lengthen T, back off adaptively on empty polls, or move to long polling or webhooks.",
    ),
)
LONG_POLL_RISKS = (
    Risk(
        "Held connections exhaust the provider's sockets or memory.",
        "Open connections per instance and hold-time percentiles.",
        "Cap the wait (about 30 s), scale instances out, fall back to plain polling under pressure.",
    ),
    Risk(
        "Mobile networks and NATs drop idle connections.",
        "Reconnect rate and requests ending without a response.",
        "Keep the wait under the NAT idle timeout and resume from the cursor on every reconnect.",
    ),
    POLL_RISKS[0],
)
RECONCILER_STALLS = Risk(
    "The reconciliation poller stalls, so missed pushes are never recovered.",
    "Cursor lag of the reconciliation poller; count of events it found that push had not delivered.",
    "Restart from its persisted cursor; a rising count of recovered events points at the push path.",
)
FETCH_STORM = Risk(
    "Every notification triggers a fetch: a burst becomes a fetch storm on the API.",
    "API request rate and 429s right after deliveries.",
    "Rate-limit fetches per key, batch fetches by cursor, cache the event body briefly.",
)


def risks_of(option: str, req: Requirements) -> tuple[Risk, ...]:
    """What fails with ``option``, how it is detected, how to recover."""
    if option == POLLING:
        return POLL_RISKS
    if option == LONG_POLLING:
        return LONG_POLL_RISKS
    if option == FALLBACK:
        return (PUSH_RISKS[0], RECONCILER_STALLS, PUSH_RISKS[2], PUSH_RISKS[1])
    if option == THIN:
        return (PUSH_RISKS[0], FETCH_STORM, PUSH_RISKS[1])
    return PUSH_RISKS


def stream_risks() -> tuple[Risk, ...]:
    """What fails with a held stream (SSE or WebSocket), how it is detected, how to recover."""
    return (
        Risk(
            "Held connections exhaust the provider's memory or file descriptors as consumers grow.",
            "Open streams and RSS per provider process (streams_open in /stats); memory per connection against the measured figure.",
            "Cap streams per process, scale provider processes out behind a balancer, keep the per-stream queue bounded.",
        ),
        Risk(
            "A slow or stalled consumer falls behind and its queue fills.",
            "Streams dropped for backpressure (streams_dropped_backpressure) and delivery lag per stream.",
            "The provider drops the stream with the reason and a resume cursor; the consumer reconnects and catches up from the log.",
        ),
        Risk(
            "Mobile networks and NATs cut idle connections; a provider restart drops every stream at once.",
            "Reconnect rate, and reconnects per minute after a deploy.",
            "Heartbeats under the NAT idle timeout, reconnect with backoff and jitter, resume from the last event id (Last-Event-ID).",
        ),
    )
