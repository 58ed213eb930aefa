"""The hybrid style's pure parts: what it declares, its summary from counters, and one store for both paths."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from labkit import styles
from labkit.config import PollerSettings, ReceiverSettings, RunSettings
from labkit.consumers.poller import Fleet
from labkit.consumers.receiver import create_app
from labkit.consumers.records import RecordStore
from labkit.lab.outcome import StyleRun
from labkit.lab.pipeline import summarise_style
from labkit.report import terms
from labkit.styles.hybrid import HYBRID, RECONCILER, reconcile_interval
from labkit.wire.signing import Signer, new_secret
from tests.helpers.runs import style_run

SECRET = new_secret()


def test_the_hybrid_is_a_push_style_whose_variant_is_the_reconciling_option() -> None:
    info = styles.get(HYBRID.name)
    assert info is HYBRID and info.family == "push" and info.needs_public_endpoint
    assert not info.in_default_comparison
    (variant,) = info.declared_variants
    assert variant.reconciles and variant.hybrid and variant.option == terms.FALLBACK
    # the report finds the option by what it does, and lists it once, after the plain push option
    assert terms.options().count(terms.FALLBACK) == 1
    push = terms.family_options("push")
    assert push.index(terms.WEBHOOK) < push.index(terms.FALLBACK)
    assert styles.unit(HYBRID.name).variant({}.get, "") == terms.FALLBACK


def test_reconcile_interval_is_stated_or_a_tenth_of_the_run() -> None:
    assert reconcile_interval(RunSettings(workload={"duration_s": 20.0})) == pytest.approx(2.0)
    assert reconcile_interval(RunSettings(workload={"duration_s": 20.0}, reconcile_interval_s=0.5)) == 0.5
    assert reconcile_interval(RunSettings(workload={"duration_s": 86_400.0, "rate_per_s": 0.01})) == 300.0
    # many subscribers: no more than 100 reconciling polls a second in all
    assert reconcile_interval(RunSettings(workload={"duration_s": 5.0}, subscribers=250)) == pytest.approx(2.5)


def test_the_hybrid_refuses_the_snapshot_feed_naming_it() -> None:
    reason = styles.unit(HYBRID.name).refuse(RunSettings(snapshot=True))
    assert reason is not None and reason.startswith("snapshot") and "\n" not in reason


def _run(counters: dict[str, Any], reconciler: dict[str, Any], window: dict[str, int], events: int = 100) -> StyleRun:
    """A hybrid StyleRun: receiver and reconciler counters merged (as the session merges them), the reconciler's own kept."""
    merged = dict(counters)
    for k, v in reconciler.items():
        merged[k] = merged.get(k, 0) + v
    return style_run(
        HYBRID.name,
        merged,
        window,
        consumer="s0",
        events=events,
        consumer_cpu_s=1.5,
        wire={"bytes_in": 3000, "bytes_out": 1000},
        companions={RECONCILER: {"counters": reconciler, "wire": {"bytes_in": 1500, "bytes_out": 500}, "cpu_s": 0.5}},
    )


def test_summary_counts_push_and_reconcile_once_and_the_reconciler_cost_on_its_own() -> None:
    settings = RunSettings(workload={"rate_per_s": 10.0, "duration_s": 10.0}, styles=(HYBRID.name,), reconcile_interval_s=1.0)
    # push recorded 90 events, the reconciler recovered 10 (push was late) and confirmed 90 it found already there;
    # 4 of the 10 recovered were pushed again afterwards (retries): de-duplicated, counted as duplicates
    receiver = {"requests": 94, "duplicates": 0, "events_recorded": 90, "duplicate_events": 4}
    reconciler = {"requests": 12, "polls": 12, "empty_polls": 2, "events": 10, "duplicate_events": 90, "pollers": 1}
    window = {"requests": 104, "reconcile_requests": 10, "reconcile_polls": 10, "reconcile_empty_polls": 1}
    out = summarise_style(_run(receiver, reconciler, window), settings)
    rec = out["reconcile"]
    assert out["delivered"] == 100 and out["lost"] == 0
    assert rec["recovered"] == 10 and rec["confirmed"] == 90 and rec["pushed"] == 90 and rec["pushed_after_recovery"] == 4
    # the reconciler's confirmations are its work, not duplicates: only the 4 late pushes are
    assert out["duplicates"] == 4
    # push's requests over the run, plus the reconciler's over the workload window
    assert out["requests_per_event"] == pytest.approx((94 + 10) / 100)
    assert rec["requests_per_event"] == pytest.approx(0.1) and rec["empty_poll_ratio"] == pytest.approx(0.1)
    assert rec["bytes"] == 2000 and rec["consumer_cpu_s"] == 0.5 and rec["interval_s"] == 1.0
    # the model: push's one request per event, plus one reconciling poll per consumer per interval
    assert out["model"]["requests_per_event"] == pytest.approx(1.0 + 1 / (10.0 * 1.0))
    assert out["model"]["reconcile"]["interval_s"] == 1.0


def _signed(body: bytes, msg_id: str, secret: str = SECRET) -> dict[str, str]:
    return Signer([secret]).headers(msg_id, body, None) | {"content-type": "application/json"}


def _message(event_id: int) -> bytes:
    data = {"id": event_id, "type": "order.updated", "created_ns": time.time_ns(), "payload": {"n": event_id}}
    return orjson.dumps({"type": "order.updated", "timestamp": "2024-05-01T12:00:00Z", "data": data})


async def test_a_duplicate_or_forged_delivery_is_still_counted_once(tmp_path: Path) -> None:
    """The receiver and the reconciler share one store: an event either brought first is processed once, whatever follows."""
    db = str(tmp_path / "consumer.db")
    reconciler = RecordStore(db)
    # the reconciler recovered event 7 for s0 while push was failing
    assert reconciler.record_page("s0", [7], time.time_ns(), "7", None).recorded == 1
    app = create_app(ReceiverSettings(secrets=(SECRET,), db_path=db))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver") as client:
            body = _message(7)
            late = await client.post("/webhook/s0", content=body, headers=_signed(body, "msg_7"))  # push's retry, late
            replay = await client.post("/webhook/s0", content=body, headers=_signed(body, "msg_7"))  # the same message again
            forged_body = _message(8)
            forged = await client.post("/webhook/s0", content=forged_body, headers=_signed(forged_body, "msg_8", new_secret()))
        counters = app.state.receiver.counters()
    assert late.status_code in (200, 204) and replay.status_code == 200 and forged.status_code == 401
    assert reconciler.events() == [("s0", 7, reconciler.events()[0][2])]  # once, at the reconciler's time; 8 never
    reconciler.close()
    assert counters["events_recorded"] == 0 and counters["duplicate_events"] == 1 and counters["duplicates"] == 1
    # what the hybrid's summary makes of it: one event delivered, two duplicates de-duplicated (the late push, the replay)
    rec = {"requests": 1, "polls": 1, "empty_polls": 0, "events": 1, "duplicate_events": 0, "pollers": 1}
    run = _run(counters, rec, {"requests": 4, "reconcile_requests": 1, "reconcile_polls": 1, "reconcile_empty_polls": 0}, events=1)
    out = summarise_style(run, RunSettings(workload={"rate_per_s": 1.0, "duration_s": 1.0}, styles=(HYBRID.name,)))
    assert out["delivered"] == 1 and out["lost"] == 0
    assert out["duplicates"] == 2 and out["reconcile"]["pushed_after_recovery"] == 1 and out["reconcile"]["recovered"] == 1


def test_a_reconciling_poller_leaves_events_younger_than_its_min_age() -> None:
    now = time.time_ns()
    page = [{"id": 1, "created_ns": now - 5_000_000_000}, {"id": 2, "created_ns": now - 2_000_000_000}, {"id": 3, "created_ns": now}]
    fleet = Fleet(PollerSettings(base_url="http://x", min_age_s=1.0, consumer_prefix="s"))
    assert fleet.too_young(page) == 2
    assert Fleet(PollerSettings(base_url="http://x")).too_young(page) is None
    assert Fleet(PollerSettings(base_url="http://x", min_age_s=10.0)).too_young(page) == 0
