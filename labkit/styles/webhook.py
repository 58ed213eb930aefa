"""Webhook push (and its variants: batching, thin events) as one delivery style.

A run starts one receiver process (with ``consumer_processes`` > 1, that many
uvicorn workers on one socket) and subscribes it once per subscriber; the
provider's dispatcher pushes each event (or batch) as it is committed. The
receiver de-duplicates on the webhook-id and counts what it saw; the
provider's outbox says how many attempts and retries delivery took.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from labkit import model
from labkit.config import RunSettings, receivers_per_event
from labkit.errors import RunError
from labkit.model import fanout as model_fanout
from labkit.model import network as model_network
from labkit.model.calibration import Base, Calibration, base_for
from labkit.provider.store import Store
from labkit.styles.base import Lab, ProjectedScale, Role, Style, as_number, mean_latency_s, network_profile, with_base, with_network
from labkit.styles.registry import StyleInfo, Variant, register

# The report's names of the variants; the plain one is also the decision's option.
PLAIN, THIN, BATCHED = "webhook push", "thin webhooks", "batched webhooks"

INFO = StyleInfo(
    name="webhook",
    label="webhook push",
    colour="#1f77b4",
    marker="o",
    direction="push",
    needs_public_endpoint=True,
    dedup_key="webhook-id (a retry carries the first attempt's id)",
    order=10,
    in_default_comparison=True,
    variants=(
        Variant(PLAIN, PLAIN, "push"),
        # thin events with a fetch per event: the hybrid the decision offers for sensitive or ordered data
        Variant(THIN, "hybrid: thin webhooks + fetch", "push", hybrid=True, fetches_body=True),
        Variant(BATCHED, None, "push"),
    ),
)

# The subscribers' names are s0, s1, ... (a hybrid's reconciler reads each one's feed under the same name).
SUBSCRIBER_PREFIX = "s"
# The costs a webhook's model takes from the calibration (labkit.model.calibration), in seconds.
BASE_COSTS = ("delivery_s", "attempt_s")
# The dispatcher's spacing between two deliveries of one event (the fan-out's queue), also calibrated; a
# calibration without it (made before it was measured) leaves the loopback spacing out, and the block says so.
DISPATCH_COST = "dispatch_cost_s"
# Subscribers of the calibration's fan-out run: enough deliveries per event to see their spacing, and
# fewer than the dispatcher holds in flight (DISPATCH_CONCURRENCY_MIN), so the spacing is not its bound.
CALIBRATION_FANOUT = 20
# The dispatcher's least concurrency (provider_settings caps the pool's connections).
DISPATCH_CONCURRENCY_MIN = 64
# Subscriptions created at once. Each creation makes the provider's dispatcher re-read every subscription before its
# next round, so one at a time costs n refreshes of up to n rows: 2,000 subscribers took 15 s to subscribe here (7.7 ms
# each, growing with n). Several in flight share a refresh, and the control client's round trips overlap.
SUBSCRIBE_CONCURRENCY = 16


def dispatch_cost(calibration: Calibration | None, base: Base) -> float | None:
    """The calibrated dispatch spacing (seconds), or None: no calibration, or one made before it was measured."""
    if calibration is None or base.source != calibration.source:
        return None
    return calibration.cost(INFO.name, DISPATCH_COST)


def fanout_block(fanout: float, cost_s: float | None, attempt_s: float, concurrency: int, source: str) -> dict[str, Any]:
    """The fan-out's queue of one event to ``fanout`` deliveries (``labkit.model.fanout``): its terms and how the block says so.

    The spacing between two deliveries is the calibrated loopback one, or the
    concurrency bound (``attempt_s / concurrency``: across a long round trip the
    dispatcher's slots, not its CPU, pace the deliveries), whichever is longer.
    Without a calibrated cost the queue counts the concurrency bound alone.
    """
    spacing = model_fanout.dispatch_spacing_s(cost_s or 0.0, attempt_s, concurrency)
    mean_s, p99_s = model_fanout.fanout_queueing_s(fanout, spacing), model_fanout.fanout_queueing_s(fanout, spacing, 0.99)
    bound = attempt_s / concurrency
    if cost_s is None:
        assumes = "the fan-out's queue at the dispatcher's concurrency bound only (no calibrated dispatch cost)"
    else:
        assumes = "the fan-out's queue: each of an event's deliveries one spacing after the last"
    return {
        "mean_s": mean_s,
        "p99_s": p99_s,
        "assumes": assumes,
        "parameter": {
            "kind": "calibration",
            "value": cost_s,
            "from": f"{source}: the dispatcher's loopback spacing between two deliveries of one event" if cost_s is not None else "none",
        },
        "block": {
            "deliveries_per_event": fanout,
            "spacing_ms": spacing * 1000,
            "concurrency_bound_ms": bound * 1000,
            "bound_by": "concurrency" if cost_s is None or bound > cost_s else "dispatch cost",
            "dispatch_concurrency": concurrency,
            "queueing_mean_ms": mean_s * 1000,
            "queueing_p99_ms": p99_s * 1000,
        },
    }


def subscription(lab: Lab, index: int, url: str) -> dict[str, Any]:
    """Consumer ``index``'s subscription: its endpoint, filtered to its own events (per-consumer) or its topics."""
    body: dict[str, Any] = {"url": url, "secret": lab.secret}
    if lab.settings.audience == "per-consumer":
        body["consumer"] = lab.consumers[index]
    elif lab.consumer_topics:
        body["event_types"] = list(lab.consumer_topics[index])
    return body


async def subscribe_all(lab: Lab, url: str, concurrency: int) -> None:
    """One subscription per consumer to its path on the receiver at ``url``, ``concurrency`` at a time; the first refusal stops it."""
    todo = iter(enumerate(lab.consumers))  # shared by the workers: each consumer is taken once
    failed: list[BaseException | str] = []

    async def worker() -> None:
        for i, name in todo:
            if failed:
                return
            try:
                status, body = await lab.post_json(f"{lab.provider.child.url}/subscriptions", subscription(lab, i, f"{url}/webhook/{name}"))
            except Exception as exc:  # the control client's error: raised below, after the other workers stop
                failed.append(exc)
                return
            if status != 201 or not isinstance(body, dict):
                failed.append(f"could not subscribe the receiver: {status} {str(body)[:200]}")
                return
            lab.consumer_of[str(body["id"])] = name

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(lab.consumers))))))
    if failed:
        first = failed[0]
        raise first if isinstance(first, BaseException) else RunError(first)


class Webhook(Style):
    """The provider pushes; a receiver (one process, one URL per subscriber) acknowledges."""

    info = INFO

    def refuse(self, settings: RunSettings) -> str | None:
        if settings.tls and settings.thin_events:
            # the receiver's fetch client has no setting for the lab CA yet
            return "thin_events: thin webhooks fetch their bodies from the provider, which is not yet supported with tls; set one of them false"
        return None

    def provider_settings(self, settings: RunSettings) -> dict[str, Any]:
        return {
            "batch_max_events": settings.batch_max_events,
            "batch_window_ms": settings.batch_window_ms,
            "thin_events": settings.thin_events,
            "dispatch_concurrency": min(512, max(DISPATCH_CONCURRENCY_MIN, settings.subscribers * 8)),
        }

    def consumer_names(self, settings: RunSettings) -> list[str]:
        return [f"{SUBSCRIBER_PREFIX}{i}" for i in range(settings.subscribers)]

    async def start_consumer(self, lab: Lab) -> Role:
        s: dict[str, Any] = {
            "secrets": [lab.secret],
            "db_path": str(lab.consumer_db),
            "stats_path": str(lab.stats_path),
            "provider_url": lab.provider.child.url,
            "api_key": lab.consumer_key,
            "seed": lab.settings.workload.seed,
            "processes": lab.settings.consumer_processes,  # >1: uvicorn workers sharing the receiver's socket
        }
        lab.fault.tune("receiver", s, lab)
        role = await lab.start("receiver", "receiver", s, server=True)
        url = await lab.link("127.0.0.1", role.port or 0)
        lab.consumers = self.consumer_names(lab.settings)
        await subscribe_all(lab, url, SUBSCRIBE_CONCURRENCY)
        return role

    async def counters_now(self, lab: Lab) -> dict[str, Any]:
        snap = await lab.get_json(f"{lab.consumer.child.url}/stats")
        return dict((snap or {}).get("counters") or {})

    def settled(self, lab: Lab) -> bool:
        return Store.pending_deliveries_at(str(lab.provider_db)) == 0

    async def in_flight(self, lab: Lab) -> int | None:
        snap = await lab.get_json(f"{lab.provider.child.url}/stats", auth=True)
        try:
            return int((snap or {})["dispatcher"]["in_flight"])
        except (KeyError, TypeError, ValueError):
            return None

    def provider_side(self, provider_db: Path) -> tuple[dict[str, Any], float | None]:
        deliveries = dict(Store.delivery_summary_at(str(provider_db)))
        # Endpoints the provider gave up on (410 Gone or the disable policy after sustained failure).
        deliveries["disabled_endpoints"] = len(Store.disabled_subscriptions_at(str(provider_db)))
        return deliveries, Store.mean_delivery_rtt_s_at(str(provider_db))

    def summary(self, run: Any, settings: RunSettings, per: int, rate: float) -> dict[str, Any]:
        d = run.deliveries
        counters = run.consumer_stats.get("counters", {})
        attempts = int(d.get("attempts", 0))
        retries = int(d.get("retries", max(attempts - int(d.get("deliveries", 0)), 0)))
        published = max(len(run.published_ids), 1)  # a run that published nothing divides by one, not zero
        calibration = getattr(run, "calibration", None)
        base = base_for(calibration, self.info.name, BASE_COSTS)
        # deliveries per event: the audience's receivers (every subscriber for a broadcast, one per consumer)
        fanout = max(per / published, 1.0)
        model_block = self.network_model(
            settings, base, rate_per_s=rate * fanout, deliveries=per, fanout=fanout, dispatch_cost_s=dispatch_cost(calibration, base)
        )
        model_block["requests_per_event"] = model.push_requests_per_event(settings.batch_max_events, retries / published)
        return {
            "attempts": attempts,
            "retries": retries,
            "dead": int(d.get("dead", 0)),
            "disabled_endpoints": int(d.get("disabled_endpoints", 0)),
            "rejected": counters.get("rejected", {}),
            "delivery_rtt_ms": run.delivery_rtt_s * 1000 if run.delivery_rtt_s is not None else None,
            # what the dispatcher really opened (its last lifetime), beside the model's count (model.connections)
            "connections_opened": (run.provider_stats.get("wire") or {}).get("connections"),
            "model": model_block,
        }

    def predict(self, settings: RunSettings, calibration: Any) -> dict[str, Any] | None:
        """The model at these settings before any run: the calibrated delivery, the connections overlap will need."""
        base = base_for(calibration, self.info.name, BASE_COSTS)
        wl = settings.workload
        # deliveries per second: each event goes to its audience's receivers (every subscriber for a broadcast, one per-consumer)
        fanout = max(receivers_per_event(settings.audience, settings.subscribers, settings.topics, settings.subscriptions), 1.0)
        rate = wl.rate_per_s * fanout
        cost = dispatch_cost(calibration, base)
        block = self.network_model(
            settings, base, rate_per_s=rate, deliveries=max(rate * wl.duration_s, 1.0), fanout=fanout, dispatch_cost_s=cost
        )
        block["requests_per_event"] = model.push_requests_per_event(settings.batch_max_events, 0.0)  # no retry foreseen
        return block

    def calibration_runs(self) -> tuple[int, ...]:
        """One subscriber (a delivery with no fan-out queue: the base), then ``CALIBRATION_FANOUT`` (the spacing)."""
        return (1, CALIBRATION_FANOUT)

    def calibration_cost_names(self) -> tuple[str, ...]:
        return (*BASE_COSTS, DISPATCH_COST)

    def calibration_costs(self, run: Any, settings: RunSettings) -> dict[str, float]:
        """The lab's work per delivery on loopback, from the calibration's runs.

        With one subscriber: created to recorded (``delivery_s``, a single delivery
        with no fan-out queue, the base) and one attempt's round trip (``attempt_s``).
        With more (every event to each of them): the dispatcher's spacing between
        two deliveries of one event (``dispatch_cost_s``), the median over events of
        (last recorded - first recorded) / (subscribers - 1), from the receiver's
        record times. The fan-out run's mean is not used: it holds the queue.
        """
        if settings.subscribers > 1:
            spacing = model_fanout.spacing_from_records(((e[2], e[4]) for e in run.events), settings.subscribers)
            return {DISPATCH_COST: spacing} if spacing is not None else {}
        mean = mean_latency_s(run)
        if mean is None or run.delivery_rtt_s is None:
            return {}
        return {"delivery_s": mean, "attempt_s": float(run.delivery_rtt_s)}

    def network_model(
        self,
        settings: RunSettings,
        base: Base,
        *,
        rate_per_s: float,
        deliveries: float,
        fanout: float = 1.0,
        dispatch_cost_s: float | None = None,
    ) -> dict[str, Any]:
        """The calibrated loopback delivery plus the network's terms and the fan-out's queue, with the connections the sender needs.

        Nothing the judged run measured goes in: the base is the calibration's
        loopback delivery, and an attempt through the profile holds a connection
        for the calibrated attempt plus one round trip (and the body's transfer).
        With ``reuse``, deliveries that overlap need more connections (by Little's
        law, ``rate x attempt`` are in flight; ``pool_connections``), and each
        connection opened pays the handshakes once; with ``new`` every delivery does.
        An event to ``fanout`` receivers leaves as that many deliveries, one after
        another (``fanout_block``).
        """
        profile = network_profile(settings)
        new = settings.webhook_connection == "new"
        payload = settings.workload.payload_bytes * settings.batch_max_events
        hs = model_network.handshake_s(profile, new_connection=True, tls=settings.tls)
        attempt = base.get("attempt_s") + profile.rtt_ms / 1000 + model_network.transfer_s(payload, profile.rate_up_bps)
        cap = int(self.provider_settings(settings)["dispatch_concurrency"])
        if new:
            connections = float(deliveries)
        else:
            connections = model_network.pool_connections(rate_per_s, attempt, deliveries, cap)
            # the first attempt on each new connection holds it a handshake longer: count that overlap once more
            share = connections / deliveries if deliveries else 0.0
            connections = model_network.pool_connections(rate_per_s, attempt + share * hs, deliveries, cap)
        share = connections / deliveries if deliveries else 0.0
        queue = fanout_block(fanout, dispatch_cost_s, attempt + share * hs, cap, base.source)
        terms = model_network.webhook_latency(
            profile,
            base_s=base.get("delivery_s") + queue["mean_s"],
            payload_bytes=payload,
            tls=settings.tls,
            new_connection=new,
            new_connection_share=share,
        )
        block = model.webhook_model(base.get("attempt_s"), batch=settings.batch_max_events)
        block["connections"] = connections
        block["attempt_ms"] = (attempt + share * hs) * 1000
        block["assumes"] = (
            f"push on publish: the calibrated loopback delivery; {queue['assumes']}; a connection per overlapping delivery (Little's law)"
        )
        block = with_base(with_network(block, terms, settings), base)
        block["fanout"] = queue["block"]
        block["parameters"] = {"dispatch_cost_s": queue["parameter"]}
        if fanout > 1:
            # the fan-out's queue is the tail the model has: the last receivers of an event wait (F-1) x spacing
            block["latency_p99_ms"] = (terms.total_s - queue["mean_s"] + queue["p99_s"]) * 1000
        return block

    def retry_attempts(self, provider_db: Path, consumer_of: Mapping[str, str]) -> dict[tuple[str, int], int] | None:
        out: dict[tuple[str, int], int] = {}
        for sub_id, event_ids, n in Store.delivery_attempts_at(str(provider_db)):
            consumer = consumer_of.get(sub_id)
            if consumer is None:
                continue
            for e in event_ids:
                out[(consumer, e)] = max(out.get((consumer, e), 0), n)
        return out

    def fault_measures(self, counters: Mapping[str, Any], deliveries: Mapping[str, Any], retry: dict[str, Any]) -> dict[str, Any]:
        return {
            "duplicates_seen": int(counters.get("duplicates", 0)),
            "processed_total": int(counters.get("events_recorded", 0)),
            "retries": int(deliveries.get("retries", 0)),
            "dead_lettered": int(deliveries.get("dead", 0)),
            "disabled": int(deliveries.get("disabled", 0)),
            "attempt_status_counts": deliveries.get("attempt_status_counts", {}),
            "failed_polls": None,
            "throttled_polls": None,
            **retry,
        }

    def variant(self, setting: Callable[[str], Any], assumes: str) -> str:
        if setting("thin_events") is True:
            return THIN
        if (as_number(setting("batch_max_events")) or 1) > 1:
            return BATCHED
        return PLAIN

    def project(self, scale: ProjectedScale) -> tuple[float, str]:
        batch, retries = scale.batch, scale.retries_per_event
        variant = f"push, {batch} event(s) per request" + (f", {retries} retries per event" if retries else "")
        return model.push_requests_per_event(batch, retries), variant

    def model_curve_label(self, batch: int) -> str | None:
        return f"model: push 1/B (B = {batch})"


WEBHOOK = register(INFO, Webhook())
