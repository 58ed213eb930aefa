"""The words of the decision: the article's four factors, its claims, and the options.

The article "Webhook vs. API: Unraveling the Intricacies of Data Delivery"
names four factors for choosing; every reason in a report names one. Held
streams (Server-Sent Events, WebSocket) are options beside them: push over a
connection the consumer opened, for consumers a webhook cannot reach.
"""

from __future__ import annotations

LATENCY = "latency"
VERSATILITY = "versatility of the data exchange"
SECURITY = "security"
FIT = "fit to the use case"
FACTORS: tuple[str, ...] = (LATENCY, VERSATILITY, SECURITY, FIT)

WEBHOOK = "webhook push"
POLLING = "polling"
LONG_POLLING = "long polling"
THIN = "hybrid: thin webhooks + fetch"
FALLBACK = "hybrid: webhooks + polling fallback for reconciliation"
# The stream styles' report names (their units' ``variant`` spells them the same way).
SSE = "Server-Sent Events"
WEBSOCKET = "WebSocket"
OPTIONS: tuple[str, ...] = (WEBHOOK, POLLING, LONG_POLLING, SSE, WEBSOCKET, THIN, FALLBACK)
# push to an endpoint the consumer exposes
PUSH_FAMILY: tuple[str, ...] = (WEBHOOK, THIN, FALLBACK)
# push over a connection the consumer holds open to the provider
STREAM_FAMILY: tuple[str, ...] = (SSE, WEBSOCKET)

CLAIMS = {
    LATENCY: "Webhooks push as soon as an event occurs and cut latency; a polling consumer sees events late.",
    VERSATILITY: "Webhooks send only when something happened, saving bandwidth; APIs leave the consumer in control "
    "of when it asks (and at high event rates one poll returns many events).",
    SECURITY: "A webhook receiver is an open door that must use HTTPS and validate every request; "
    "APIs have keys, OAuth and fine-grained access.",
    FIT: "Webhooks for chat, collaboration, social feeds and payments; APIs for retrieval, history, authentication and general actions.",
}
