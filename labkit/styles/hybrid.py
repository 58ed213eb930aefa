"""Webhook push with a reconciling poller: the hybrid, run and measured as one style.

A run starts what the webhook style starts (the provider's dispatcher pushes to
one receiver, one subscription per subscriber) and, beside it, what the polling
style starts: a poller fleet, here the *reconciler*, that reads the same
consumers' cursor feed every ``reconcile_interval_s`` (each consumer its own feed
with its own key under a per-consumer or topics audience), under the
subscribers' names and into the same record store. An event is processed once
whichever path brings it first: the store's (consumer, event id) key
de-duplicates, as a real consumer's would, and both sides count what they found
already there.

The reconciler records only events at least one interval old: push had its
chance, so in a healthy run the reconciler only *confirms* what push delivered;
when the receiver is down it *recovers* what push gave up on or has not yet
retried, and a push that arrives after a recovery is a duplicate, de-duplicated
and counted. The summary keeps the webhook's keys (latency is first receipt,
push or reconcile), and adds a ``reconcile`` block: the reconciler's requests,
bytes, polls, empty polls and CPU, what it recovered and confirmed. The
provider serves both from one process, so the provider CPU of a hybrid run is
the push and the reconciliation together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from labkit import model
from labkit.config import MIN_POLL_INTERVAL_S, RunSettings
from labkit.styles.base import Lab, ProjectedScale, Role, Style
from labkit.styles.polling import Polling, snapshot_stats, wait_for_file
from labkit.styles.registry import StyleInfo, Variant, register
from labkit.styles.webhook import SUBSCRIBER_PREFIX, Webhook

# The decision's name of the option this style measures (labkit.report.terms asks the registry for it).
OPTION = "hybrid: webhooks + polling fallback for reconciliation"

INFO = StyleInfo(
    name="hybrid",
    label="webhooks + reconciling poller",
    colour="#ff7f0e",
    marker="P",
    direction="push",
    needs_public_endpoint=True,
    dedup_key="event id: push and the reconciler record into one store, so either path's repeat is recognised",
    order=50,
    variants=(Variant(OPTION, OPTION, "push", hybrid=True, reconciles=True),),
    window_counters=("reconcile_requests", "reconcile_polls", "reconcile_empty_polls"),
)

# The units composed (stateless): push as the webhook style runs it, the reconciler as the polling style's fleet.
WEBHOOK, POLLING = Webhook(), Polling()
RECONCILER = "reconciler"
# Without a stated interval the reconciler polls this many times in the workload's window, but no more than
# RECONCILE_POLLS_PER_S polls a second in all (a tenth of the 1,000 polls/s one provider serves here, docs/decide.md:
# reconciling is a side job, and polling 600 times more often than in production must not queue the pushes), and never
# less often than every RECONCILE_MAX_S (what the decision report recommends in production).
RECONCILES_PER_RUN = 10
RECONCILE_POLLS_PER_S = 100.0
RECONCILE_MAX_S = 300.0
# What the reconciler counts, bracketed over the workload window like the consumer's requests.
_WINDOWED = ("requests", "polls", "empty_polls")


def reconcile_interval(settings: RunSettings) -> float:
    """The reconciler's interval: the stated one, else a tenth of the workload's duration, slower for many subscribers."""
    if settings.reconcile_interval_s is not None:
        return settings.reconcile_interval_s
    wanted = max(settings.workload.duration_s / RECONCILES_PER_RUN, settings.subscribers / RECONCILE_POLLS_PER_S, MIN_POLL_INTERVAL_S)
    return round(min(wanted, RECONCILE_MAX_S), 3)


def _num(counters: Mapping[str, Any], key: str) -> int:
    value = counters.get(key, 0)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _merged(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Two processes' counters at one moment: numbers add, per-consumer maps add consumer by consumer."""
    out: dict[str, Any] = dict(a)
    for key, value in b.items():
        prev = out.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(prev, (int, float)):
            out[key] = prev + value
        elif isinstance(value, Mapping) and isinstance(prev, Mapping) and key.endswith("_by_consumer"):
            out[key] = {c: _num(prev, c) + _num(value, c) for c in {*prev, *value}}
        elif key not in out:
            out[key] = value
    return out


class Hybrid(Style):
    """Webhook push plus a poller fleet that reconciles the same consumers' feeds: the webhook's and polling's units, composed."""

    info = INFO

    def refuse(self, settings: RunSettings) -> str | None:
        if settings.snapshot:
            return "snapshot: the reconciler reads the event feed (a snapshot skips versions, so it could not recover them); set snapshot = false"
        return WEBHOOK.refuse(settings)

    def provider_settings(self, settings: RunSettings) -> dict[str, Any]:
        return WEBHOOK.provider_settings(settings)

    def consumer_names(self, settings: RunSettings) -> list[str]:
        return WEBHOOK.consumer_names(settings)

    async def start_consumer(self, lab: Lab) -> Role:
        """The webhook's receiver and subscriptions, then the reconciler: a poller per subscriber, under its name."""
        receiver = await WEBHOOK.start_consumer(lab)
        stats = lab.dir / f"{RECONCILER}.stats.json"
        interval = reconcile_interval(lab.settings)
        s = await POLLING.fleet_settings(lab, stats)
        s.update(
            pollers=len(lab.consumers),
            interval_s=interval,
            min_age_s=interval,
            long_poll_wait_s=0.0,
            adaptive=False,
            snapshot=False,
            conditional=True,
            consumer_prefix=SUBSCRIBER_PREFIX,
        )
        lab.fault.tune("poller", s, lab)
        companion = await lab.start(RECONCILER, "poller", s, server=False)
        companion.stats_path = stats
        lab.companions.append(companion)
        await asyncio.to_thread(wait_for_file, companion.child, stats)
        return receiver

    async def counters_now(self, lab: Lab) -> dict[str, Any]:
        """Receiver and reconciler together (what the run's requests count), and the reconciler's own under ``reconcile_``."""
        pushed = await WEBHOOK.counters_now(lab)
        companion = next((c for c in lab.companions if c.name == RECONCILER), None)
        rec: dict[str, Any] = {}
        if companion is not None and companion.stats_path is not None:
            rec = dict((await asyncio.to_thread(snapshot_stats, companion.child, companion.stats_path)).get("counters") or {})
        out = _merged(pushed, rec)
        out.update({f"reconcile_{k}": _num(rec, k) for k in _WINDOWED})
        return out

    async def in_flight(self, lab: Lab) -> int | None:
        return await WEBHOOK.in_flight(lab)

    def provider_side(self, provider_db: Path) -> tuple[dict[str, Any], float | None]:
        return WEBHOOK.provider_side(provider_db)

    def retry_attempts(self, provider_db: Path, consumer_of: Mapping[str, str]) -> dict[tuple[str, int], int] | None:
        return WEBHOOK.retry_attempts(provider_db, consumer_of)

    # -- results ---------------------------------------------------------------------------------

    def summary(self, run: Any, settings: RunSettings, per: int, rate: float) -> dict[str, Any]:
        """The webhook's keys (push's part), the run's duplicates and requests for both paths, and the ``reconcile`` block."""
        out = WEBHOOK.summary(run, settings, per, rate)
        block = reconcile_block(run, settings, per)
        counters = run.consumer_stats.get("counters", {})
        # duplicates the consumer de-duplicated: repeated pushes (retries) and pushes of events the reconciler had
        # already recovered; the reconciler's confirmations of pushed events are its work, not duplicates
        out["duplicates"] = _num(counters, "duplicates") + block["pushed_after_recovery"]
        pushed_requests = _num(counters, "requests") - block["requests"]
        out["requests_per_event"] = (pushed_requests + block["requests_in_window"]) / per
        out["reconcile"] = block
        m = out["model"]
        lam_i = block["model"]["rate_per_consumer_per_s"]
        m["push_requests_per_event"] = m["requests_per_event"]
        m["requests_per_event"] = m["requests_per_event"] + block["model"]["requests_per_event"]
        m["reconcile"] = block["model"]
        m["assumes"] = f"{m.get('assumes', '')}; a reconciling poll every {block['interval_s']:g} s per consumer (lambda_i = {lam_i:.3g}/s)"
        return out

    def predict(self, settings: RunSettings, calibration: Any) -> dict[str, Any] | None:
        block = WEBHOOK.predict(settings, calibration)
        if block is None:
            return None
        rec = reconcile_model(settings.workload.rate_per_s, settings, reconcile_interval(settings))
        block["push_requests_per_event"] = block["requests_per_event"]
        block["requests_per_event"] = block["requests_per_event"] + rec["requests_per_event"]
        block["reconcile"] = rec
        return block

    def calibrates(self) -> bool:
        # its model's base is the webhook's delivery and the poller's poll: their calibration runs measure both
        return False

    def fault_measures(self, counters: Mapping[str, Any], deliveries: Mapping[str, Any], retry: dict[str, Any]) -> dict[str, Any]:
        out = WEBHOOK.fault_measures(counters, deliveries, retry)
        # processed: what push recorded and what the reconciler recovered (one store: an event is recorded once)
        out["processed_total"] = _num(counters, "events_recorded") + _num(counters, "events")
        out["recovered_by_reconciler"] = _num(counters, "events")
        out["failed_polls"] = _num(counters, "errors")
        return out

    def variant(self, setting: Callable[[str], Any], assumes: str) -> str:
        return OPTION

    def project(self, scale: ProjectedScale) -> tuple[float, str]:
        push, variant = WEBHOOK.project(scale)
        interval = scale.poll_interval_s
        rec = model.polling_requests_per_event(scale.rate_per_s, interval, scale.page_limit)
        return push + rec, f"{variant}, and a reconciling poll every {interval:g} s"


def reconcile_model(rate_per_consumer: float, settings: RunSettings, interval: float) -> dict[str, Any]:
    """The reconciler's model: a poll per consumer per interval, so 1/(lambda_i R) requests per event (and one per page)."""
    return {
        "interval_s": interval,
        "rate_per_consumer_per_s": rate_per_consumer,
        "requests_per_event": model.polling_requests_per_event(rate_per_consumer, interval, 100) if rate_per_consumer > 0 else 0.0,
        "empty_poll_ratio": model.empty_poll_probability(rate_per_consumer, interval),
    }


def reconcile_block(run: Any, settings: RunSettings, per: int) -> dict[str, Any]:
    """What the reconciler did and cost (its own counters, wire and CPU; its requests over the workload window)."""
    companion = run.companions.get(RECONCILER, {})
    rec, wire = companion.get("counters") or {}, companion.get("wire") or {}
    counters = run.consumer_stats.get("counters", {})
    window = run.window_counters
    interval = reconcile_interval(settings)
    polls, empty = _num(rec, "polls"), _num(rec, "empty_polls")
    w_polls = window.get("reconcile_polls", 0)
    byte_count = _num(wire, "bytes_in") + _num(wire, "bytes_out")
    consumers = max(len(run.consumers), 1)
    # each consumer's rate: the deliveries it should have had over the workload's duration
    lam_i = per / consumers / settings.workload.duration_s if settings.workload.duration_s > 0 else 0.0
    return {
        "interval_s": interval,
        "min_age_s": interval,
        "pollers": _num(rec, "pollers"),
        "polls": polls,
        "empty_polls": empty,
        "not_modified": _num(rec, "not_modified"),
        "polls_in_window": w_polls,
        "empty_poll_ratio": window.get("reconcile_empty_polls", 0) / w_polls if w_polls else (empty / polls if polls else None),
        "requests": _num(rec, "requests"),
        "requests_in_window": window.get("reconcile_requests", _num(rec, "requests")),
        "requests_per_event": window.get("reconcile_requests", _num(rec, "requests")) / per,
        "failed_polls": _num(rec, "errors"),
        "bytes": byte_count,
        "bytes_per_event": byte_count / per,
        "consumer_cpu_s": float(companion.get("cpu_s") or 0.0),
        # newly recorded by the reconciler: push had not delivered them one interval after they were created
        "recovered": _num(rec, "events"),
        # read by the reconciler and already there: push had delivered them
        "confirmed": _num(rec, "duplicate_events"),
        "pushed": _num(counters, "events_recorded"),
        # pushes of events the reconciler had already recovered (a retry after the receiver came back): de-duplicated
        "pushed_after_recovery": max(_num(counters, "duplicate_events") - _num(rec, "duplicate_events"), 0),
        "model": reconcile_model(lam_i, settings, interval),
    }


HYBRID = register(INFO, Hybrid())
