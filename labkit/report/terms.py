"""The words of the decision: the article's four factors, its claims, and the options.

The article ("Webhook vs. API: Unraveling the Intricacies of Data Delivery",
DESIGN.md) names four factors for choosing; every reason in a report names one.
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
OPTIONS: tuple[str, ...] = (WEBHOOK, POLLING, LONG_POLLING, THIN, FALLBACK)
PUSH_FAMILY: tuple[str, ...] = (WEBHOOK, THIN, FALLBACK)

CLAIMS = {
    LATENCY: "Webhooks push as soon as an event occurs and cut latency; a polling consumer sees events late.",
    VERSATILITY: "Webhooks send only when something happened, saving bandwidth; APIs leave the consumer in control "
    "of when it asks (and at high event rates one poll returns many events).",
    SECURITY: "A webhook receiver is an open door that must use HTTPS and validate every request; "
    "APIs have keys, OAuth and fine-grained access.",
    FIT: "Webhooks for chat, collaboration, social feeds and payments; APIs for retrieval, history, authentication and general actions.",
}
