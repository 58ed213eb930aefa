"""The webhook dispatcher against a real receiver on loopback.

Every delivery is checked with the independent ``standardwebhooks`` package;
retries run on a compressed schedule (``time_scale``), so no test waits long.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from labkit.provider.store import Store
from tests.helpers.provider import Receiver, provider_settings, running, until

pytestmark = pytest.mark.asyncio


async def subscribe(client: httpx.AsyncClient, receiver: Receiver, **kw: Any) -> dict:
    r = await client.post("/subscriptions", json={"url": receiver.url, **kw})
    assert r.status_code == 201, r.text
    sub = r.json()
    receiver.secret = sub["secret"]
    return sub


async def publish(client: httpx.AsyncClient, n: int, type_: str = "order.updated") -> list[dict]:
    out = []
    for i in range(n):
        r = await client.post("/events", json={"type": type_, "payload": {"n": i, "text": "héllo"}})
        assert r.status_code == 201, r.text
        out.append(r.json())
    return out


def attempts(app: Starlette) -> list[tuple]:
    db = app.state.store._db
    return db.execute(
        "SELECT d.msg_id, a.attempt, a.started_ns, a.finished_ns, a.status_code, a.error"
        " FROM attempts a JOIN deliveries d ON d.id = a.delivery_id ORDER BY a.started_ns"
    ).fetchall()


def summary(app: Starlette) -> dict:
    return app.state.store.delivery_summary()


async def test_delivery_verified_by_standardwebhooks(tmp_path: Path, receiver: Receiver) -> None:
    async with running(provider_settings(tmp_path)) as (app, client):
        await subscribe(client, receiver)
        events = await publish(client, 3)
        await until(lambda: len(receiver.ok()) == 3, what="3 deliveries")
        assert all(r.verified for r in receiver.received)
        by_id = {r.msg_id: r for r in receiver.received}
        assert set(by_id) == {"msg_1", "msg_2", "msg_3"}
        for ev in events:
            got = by_id[f"msg_{ev['id']}"]
            assert got.headers["content-type"] == "application/json"
            assert got.headers["user-agent"] == "labkit-provider/0.1"
            assert set(got.body) == {"type", "timestamp", "data"}
            assert got.body["type"] == "order.updated"
            assert datetime.fromisoformat(got.body["timestamp"].replace("Z", "+00:00")).tzinfo is not None
            assert got.body["data"] == {**ev, "payload": {"n": ev["id"] - 1, "text": "héllo"}}
        # The receiver records a request before its response reaches the dispatcher: wait for the outcome.
        await until(lambda: summary(app)["delivered"] == 3, what="3 deliveries recorded")
        s = summary(app)
        assert s["delivered"] == 3 and s["attempts"] == 3 and s["retries"] == 0 and s["pending"] == 0
        assert s["attempt_status_counts"] == {"200": 3}
        stats = (await client.get("/stats")).json()
        assert stats["wire"]["bytes_out"] > 0 and stats["wire"]["bytes_in"] > 0
        assert stats["dispatcher"]["delivered"] == 3


async def test_type_filter_selects_subscriptions(tmp_path: Path, make_receiver: Any) -> None:
    a, b = make_receiver(), make_receiver()
    async with running(provider_settings(tmp_path)) as (app, client):
        await subscribe(client, a, event_types=["x"])
        await subscribe(client, b)
        await publish(client, 1, "x")
        await publish(client, 1, "y")
        await until(lambda: len(a.ok()) == 1 and len(b.ok()) == 2, what="filtered deliveries")
        assert [r.msg_id for r in a.received] == ["msg_1"]
        assert summary(app)["deliveries"] == 3


async def test_flaky_receiver_gets_every_event_after_retries(tmp_path: Path, receiver: Receiver) -> None:
    receiver.plan = [(500, {})] * 4
    async with running(provider_settings(tmp_path)) as (app, client):
        await subscribe(client, receiver)
        await publish(client, 3)
        await until(lambda: len(receiver.ok()) == 3, what="all events despite failures")
        assert {r.msg_id for r in receiver.ok()} == {"msg_1", "msg_2", "msg_3"}
        assert all(r.verified for r in receiver.received)
        await until(lambda: summary(app)["delivered"] == 3, what="results recorded")
        s = summary(app)
        assert s["attempts"] == 7 and s["retries"] == 4
        assert s["attempt_status_counts"] == {"500": 4, "200": 3}
        # each retry of a message carries the same webhook-id and attempt numbers run 1..n
        rows = attempts(app)
        for msg in ("msg_1", "msg_2", "msg_3"):
            nums = [r[1] for r in rows if r[0] == msg]
            assert nums == list(range(1, len(nums) + 1))
            assert [r[4] for r in rows if r[0] == msg][-1] == 200


async def test_redirect_is_a_failure(tmp_path: Path, receiver: Receiver) -> None:
    receiver.plan = [(307, {"location": "http://127.0.0.1:9/elsewhere"})]
    async with running(provider_settings(tmp_path)) as (app, client):
        await subscribe(client, receiver)
        await publish(client, 1)
        await until(lambda: summary(app)["delivered"] == 1, what="delivery after a 3xx")
        assert [r[4] for r in attempts(app)] == [307, 200]


async def test_410_disables_the_subscription(tmp_path: Path, receiver: Receiver) -> None:
    receiver.default = (410, {})
    async with running(provider_settings(tmp_path)) as (app, client):
        sub = await subscribe(client, receiver)
        await publish(client, 2)

        async def status() -> str:
            return (await client.get(f"/subscriptions/{sub['id']}")).json()["status"]

        await until(lambda: summary(app)["pending"] == 0 and summary(app)["disabled"] == 2, what="disable")
        assert await status() == "disabled"
        got = (await client.get(f"/subscriptions/{sub['id']}")).json()
        assert "410" in got["disabled_reason"]
        seen = len(receiver.received)
        assert 1 <= seen <= 2  # the second may have been in flight already
        await publish(client, 1)
        assert summary(app)["deliveries"] == 2  # a disabled endpoint gets no new deliveries
        r = await client.post(f"/subscriptions/{sub['id']}/replay", json={"after": "0"})
        assert r.status_code == 409


async def test_delivery_that_keeps_failing_goes_dead(tmp_path: Path, receiver: Receiver) -> None:
    receiver.default = (500, {})
    settings = provider_settings(tmp_path, retry_schedule_s=(0, 1, 2))
    async with running(settings) as (app, client):
        await subscribe(client, receiver)
        await publish(client, 1)
        await until(lambda: summary(app)["dead"] == 1, what="dead letter")
        s = summary(app)
        assert s["attempts"] == 3 and s["retries"] == 2 and s["pending"] == 0
        assert len(receiver.received) == 3
        assert {r.msg_id for r in receiver.received} == {"msg_1"}


async def test_connection_refused_is_retried_and_recorded(tmp_path: Path, make_receiver: Any) -> None:
    down = make_receiver(start=False)
    settings = provider_settings(tmp_path, retry_schedule_s=(0, 1))
    async with running(settings) as (app, client):
        await subscribe(client, down)
        await publish(client, 1)
        await until(lambda: summary(app)["dead"] == 1, what="dead after refused connections")
        rows = attempts(app)
        assert len(rows) == 2 and all(r[4] is None and r[5] for r in rows)
        assert summary(app)["attempt_status_counts"] == {"error": 2}


async def test_retry_after_is_honoured(tmp_path: Path, receiver: Receiver) -> None:
    receiver.plan = [(429, {"retry-after": "1"})]
    async with running(provider_settings(tmp_path)) as (app, client):
        await subscribe(client, receiver)
        await publish(client, 1)
        await until(lambda: summary(app)["delivered"] == 1, what="delivery after 429")
        (m1, n1, _, fin1, code1, _), (m2, n2, start2, _, code2, _) = attempts(app)
        assert (m1, n1, code1) == ("msg_1", 1, 429) and (m2, n2, code2) == ("msg_1", 2, 200)
        # the schedule alone would retry after ~5 ms; Retry-After (real seconds) is the floor
        assert start2 - fin1 >= 1_000_000_000


async def test_pending_deliveries_survive_a_restart(tmp_path: Path, make_receiver: Any) -> None:
    rec = make_receiver(start=False)  # bound but not listening: the receiver is down
    settings = provider_settings(tmp_path, retry_schedule_s=(0, 300, 300))
    async with running(settings) as (app, client):
        await subscribe(client, rec)
        await publish(client, 2)
        await until(lambda: summary(app)["attempts"] >= 2, what="first attempts to fail")
        assert summary(app)["pending"] == 2
    rec.start()
    async with running(settings) as (app, client):
        await until(lambda: summary(app)["delivered"] == 2, what="delivery after restart")
        assert {r.msg_id for r in rec.ok()} == {"msg_1", "msg_2"}
        assert all(r.verified for r in rec.received)
    s = Store(settings.db_path).delivery_summary()
    assert s["delivered"] == 2 and s["attempts"] == 4 and s["retries"] == 2


async def test_delete_stops_pending_deliveries(tmp_path: Path, receiver: Receiver) -> None:
    receiver.default = (503, {})
    settings = provider_settings(tmp_path, retry_schedule_s=(0, 60_000))
    async with running(settings) as (app, client):
        sub = await subscribe(client, receiver)
        await publish(client, 2)
        await until(lambda: summary(app)["attempts"] == 2, what="first attempts")
        assert (await client.delete(f"/subscriptions/{sub['id']}")).status_code == 204
        s = summary(app)
        assert s["pending"] == 0 and s["disabled"] == 2


async def test_replay_redelivers_with_the_same_msg_id(tmp_path: Path, receiver: Receiver) -> None:
    async with running(provider_settings(tmp_path)) as (app, client):
        sub = await subscribe(client, receiver)
        events = await publish(client, 3)
        await until(lambda: len(receiver.ok()) == 3, what="first deliveries")
        r = await client.post(f"/subscriptions/{sub['id']}/replay", json={"after": "1"})
        assert r.status_code == 202 and r.json() == {"queued": 2}
        await until(lambda: len(receiver.ok()) == 5, what="replayed deliveries")
        assert sorted(r.msg_id for r in receiver.received[3:]) == ["msg_2", "msg_3"]
        assert all(r.verified for r in receiver.received)
        r = await client.post(f"/subscriptions/{sub['id']}/replay", json={"since_ns": events[2]["created_ns"]})
        assert r.json() == {"queued": 1}
        await until(lambda: len(receiver.ok()) == 6, what="replay since a time")
        assert receiver.received[5].msg_id == "msg_3"


async def test_batching_groups_events(tmp_path: Path, receiver: Receiver) -> None:
    settings = provider_settings(tmp_path, batch_max_events=3, batch_window_ms=500)
    async with running(settings) as (app, client):
        await subscribe(client, receiver)
        await publish(client, 5)
        await until(lambda: sum(len(r.body["data"]["events"]) for r in receiver.ok()) == 5, what="5 batched events")
        ids: list[int] = []
        for r in receiver.ok():
            assert r.verified
            assert r.body["type"] == "batch" and set(r.body) == {"type", "timestamp", "data"}
            evs = r.body["data"]["events"]
            assert 1 <= len(evs) <= 3
            assert r.msg_id == f"msg_b{evs[0]['id']}_{evs[-1]['id']}"
            assert all(set(e) == {"id", "type", "created_ns", "payload"} for e in evs)
            ids += [e["id"] for e in evs]
        assert sorted(ids) == [1, 2, 3, 4, 5]
        assert len(receiver.ok()) < 5  # fewer requests than events
        # The provider records an attempt after the receiver has answered it: wait for the last one.
        await until(lambda: summary(app)["events_delivered"] == 5, what="5 events recorded as delivered")


async def test_batch_retry_keeps_its_msg_id(tmp_path: Path, receiver: Receiver) -> None:
    receiver.plan = [(500, {})]
    settings = provider_settings(tmp_path, batch_max_events=2, batch_window_ms=500)
    async with running(settings) as (app, client):
        await subscribe(client, receiver)
        await publish(client, 2)
        await until(lambda: len(receiver.ok()) == 1, what="batch after a failure")
        assert [r.msg_id for r in receiver.received] == ["msg_b1_2", "msg_b1_2"]
        assert receiver.received[0].raw == receiver.received[1].raw


async def test_thin_events_omit_payload(tmp_path: Path, receiver: Receiver) -> None:
    async with running(provider_settings(tmp_path, thin_events=True)) as (_, client):
        await subscribe(client, receiver)
        (ev,) = await publish(client, 1)
        await until(lambda: len(receiver.ok()) == 1, what="thin delivery")
        got = receiver.received[0]
        assert got.verified
        assert got.body["data"] == ev  # id, type, created_ns: no payload
        full = (await client.get(f"/events/{ev['id']}")).json()
        assert full["payload"] == {"n": 0, "text": "héllo"}


async def test_timeout_is_a_failed_attempt(tmp_path: Path, receiver: Receiver) -> None:
    receiver.delays = [0.6]
    settings = provider_settings(tmp_path, delivery_timeout_s=0.2)
    async with running(settings) as (app, client):
        await subscribe(client, receiver)
        await publish(client, 1)
        await until(lambda: summary(app)["delivered"] == 1, what="delivery after a timeout")
        rows = attempts(app)
        assert rows[0][4] is None and rows[0][5].startswith("timeout")
        assert rows[-1][4] == 200
        assert summary(app)["attempt_status_counts"]["timeout"] == 1
