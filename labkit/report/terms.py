"""The words of the decision: the article's four factors, its claims, and the options.

The article "Webhook vs. API: Unraveling the Intricacies of Data Delivery"
names four factors for choosing; every reason in a report names one. Held
streams (Server-Sent Events, WebSocket) are options beside them: push over a
connection the consumer opened, for consumers a webhook cannot reach.

The options are the registered styles' declared variants (``labkit.styles.registry.Variant``):
this module only names the ones the decision reasons about by what they do (push, pull, a held
request, a fetch per event), never by a style's name.
"""

from __future__ import annotations

from labkit import styles
from labkit.styles import Family

LATENCY = "latency"
VERSATILITY = "versatility of the data exchange"
SECURITY = "security"
FIT = "fit to the use case"
FACTORS: tuple[str, ...] = (LATENCY, VERSATILITY, SECURITY, FIT)


def _option(family: Family, *, holds_request: bool = False, fetches_body: bool = False, reconciles: bool = False) -> str:
    """The option a registered variant of ``family`` with these capabilities declares (the first, in display order)."""
    wanted = (holds_request, fetches_body, reconciles)
    for _, v in styles.variants():
        if v.option and v.family == family and (v.holds_request, v.fetches_body, v.reconciles) == wanted:
            return v.option
    raise LookupError(
        f"no registered style declares a {family} option (holds_request={holds_request}, fetches_body={fetches_body}, reconciles={reconciles})"
    )


def options() -> tuple[str, ...]:
    """Every option the report weighs, in its order: the registered styles' plain options, then their hybrids."""
    return styles.options()


def family_options(family: Family) -> tuple[str, ...]:
    """The options of one family as the registry declares them now."""
    return styles.options(family)


def family_variants(family: Family) -> tuple[str, ...]:
    """The names of every registered variant of ``family`` (what ``Obs.variant`` holds for a row that measured it)."""
    return tuple(v.name for _, v in styles.variants() if v.family == family)


def measured_as(option: str) -> tuple[str, ...]:
    """The names of the variants whose runs measure ``option``."""
    return tuple(v.name for _, v in styles.variants() if v.option == option)


# The options the decision reasons about by what they do, named as the registered styles declare them.
WEBHOOK = _option("push")
POLLING = _option("pull")
LONG_POLLING = _option("pull", holds_request=True)
THIN = _option("push", fetches_body=True)
# Push, and a poller of the cursor feed that reconciles what push gave up on or delayed (a registered style runs it).
FALLBACK = _option("push", reconciles=True)
# The shipped styles' options when this module was imported (public names); code that must see a style
# registered later (a plug-in's, a test's) calls ``options()`` / ``family_options()``.
OPTIONS: tuple[str, ...] = options()
# push to an endpoint the consumer exposes
PUSH_FAMILY: tuple[str, ...] = family_options("push")
# push over a connection the consumer holds open to the provider
STREAM_FAMILY: tuple[str, ...] = family_options("stream")

CLAIMS = {
    LATENCY: "Webhooks push as soon as an event occurs and cut latency; a polling consumer sees events late.",
    VERSATILITY: "Webhooks send only when something happened, saving bandwidth; APIs leave the consumer in control "
    "of when it asks (and at high event rates one poll returns many events).",
    SECURITY: "A webhook receiver is an open door that must use HTTPS and validate every request; "
    "APIs have keys, OAuth and fine-grained access.",
    FIT: "Webhooks for chat, collaboration, social feeds and payments; APIs for retrieval, history, authentication and general actions.",
}
