"""Audiences in the provider: scoped keys read their own feed, subscriptions and streams get only their events."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from labkit.config import EVENT_STREAM as SSE
from labkit.config import StreamLimits
from labkit.provider.store import Store
from labkit.provider.streams import StreamHub
from tests.helpers.provider import provider_settings, running, until

SCOPES = {"key-a-0001": {"consumer": "a"}, "key-b-0001": {"consumer": "b"}, "key-t-0001": {"types": ["t1"]}}


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def publish(client: httpx.AsyncClient, type_: str, consumer: str | None = None) -> int:
    body: dict[str, object] = {"type": type_, "payload": {"x": 1}}
    if consumer is not None:
        body["consumer"] = consumer
    r = await client.post("/events", json=body)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def test_each_key_reads_its_own_feed_with_its_own_etag(tmp_path: Path) -> None:
    async with running(provider_settings(tmp_path, key_scopes=SCOPES)) as (_, client):
        a1 = await publish(client, "t1", "a")
        b1 = await publish(client, "t2", "b")
        t2 = await publish(client, "t2")
        page = (await client.get("/events", headers=auth("key-a-0001"))).json()
        assert [e["id"] for e in page["data"]] == [a1]
        page_b = (await client.get("/events", headers=auth("key-b-0001"))).json()
        assert [e["id"] for e in page_b["data"]] == [b1]
        page_t = (await client.get("/events", headers=auth("key-t-0001"))).json()
        assert [e["id"] for e in page_t["data"]] == [a1]  # the only t1 event
        # a request's own types filter narrows a scope, never widens it
        narrowed = (await client.get("/events?types=t2", headers=auth("key-t-0001"))).json()
        assert narrowed["data"] == []
        everything = (await client.get("/events")).json()  # an unscoped key reads every event
        assert [e["id"] for e in everything["data"]] == [a1, b1, t2]
        # a's ETag stays valid while only other consumers' events arrive
        r = await client.get(f"/events?after={a1}", headers=auth("key-a-0001"))
        etag = r.headers["etag"]
        await publish(client, "t2", "b")
        r = await client.get(f"/events?after={a1}", headers={**auth("key-a-0001"), "if-none-match": etag})
        assert r.status_code == 304
        # one event by id, and the snapshot, stay within the scope
        assert (await client.get(f"/events/{b1}", headers=auth("key-a-0001"))).status_code == 404
        assert (await client.get(f"/events/{a1}", headers=auth("key-a-0001"))).status_code == 200
        assert (await client.get("/snapshot", headers=auth("key-a-0001"))).status_code == 403
        assert (await client.get("/events", headers=auth("key-z-0001"))).status_code == 401


async def test_a_long_poll_is_woken_only_by_its_consumers_events(tmp_path: Path) -> None:
    async with running(provider_settings(tmp_path, key_scopes=SCOPES)) as (app, client):
        p = app.state.provider
        poll = asyncio.create_task(client.get("/events?wait=20", headers=auth("key-a-0001")))
        await until(lambda: p.counters["long_polls"] == 1, what="the long poll to wait")
        await publish(client, "t1", "b")
        await publish(client, "t2")  # no consumer: a broadcast event is not a's either
        assert p.counters["long_poll_wakeups"] == 0 and not poll.done()
        mine = await publish(client, "t1", "a")
        r = await asyncio.wait_for(poll, 10)
        assert [e["id"] for e in r.json()["data"]] == [mine]
        assert p.counters["long_poll_wakeups"] == 1


async def test_a_publish_queues_deliveries_only_for_matching_subscriptions(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "p.db"))
    try:
        sub_a = store.create_subscription("http://127.0.0.1/a", [], "whsec_x", consumer="a")
        sub_b = store.create_subscription("http://127.0.0.1/b", [], "whsec_x", consumer="b")
        sub_t = store.create_subscription("http://127.0.0.1/t", ["t1"], "whsec_x")
        sub_all = store.create_subscription("http://127.0.0.1/all", [], "whsec_x")
        e1, _ = store.publish("t1", b"{}", consumer="a")
        e2, _ = store.publish("t2", b"{}", consumer="b")
        e3, _ = store.publish("t1", b"{}")
    finally:
        store.close()
    got: dict[str, list[int]] = {}
    for sub, ids, _ in Store.delivery_attempts_at(str(tmp_path / "p.db")):
        got.setdefault(sub, []).extend(ids)
    assert sorted(got[sub_a.id]) == [e1]
    assert sorted(got[sub_b.id]) == [e2]
    assert sorted(got[sub_t.id]) == [e1, e3]
    assert sorted(got[sub_all.id]) == [e1, e2, e3]
    assert Store.events_routing_at(str(tmp_path / "p.db")) == {e1: ("t1", "a"), e2: ("t2", "b"), e3: ("t1", None)}


async def test_the_hub_hands_an_event_only_to_its_consumers_streams(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "p.db"))
    hub = StreamHub(store, StreamLimits())
    try:
        a = hub.attach(SSE, 0, (), "a")
        b = hub.attach(SSE, 0, (), "b")
        a_t2 = hub.attach(SSE, 0, ("t2",), "a")
        everyone = hub.attach(SSE, 0, ())
        for s in (a, b, a_t2, everyone):
            assert hub.catch_up(s) == []  # an empty log: live at once
        store.publish("t1", b"{}", consumer="a")
        hub.notify()
        assert [len(s.queue) for s in (a, b, a_t2, everyone)] == [1, 0, 0, 1]
        assert hub.fanned_out == 2
        # a stream that starts later catches up on its own consumer's events only
        store.publish("t2", b"{}", consumer="b")
        hub.notify()
        late = hub.attach(SSE, 0, (), "b")
        assert [e.id for e in hub.catch_up(late)] == [2]
        hub.detach(a)
        assert "a" in hub.by_consumer  # a_t2 is still a's
        hub.detach(a_t2)
        assert "a" not in hub.by_consumer
    finally:
        hub.close()
        store.close()


async def test_a_derived_consumer_key_reads_its_consumers_feed_only(tmp_path: Path) -> None:
    from labkit.wire.signing import consumer_key, consumer_of_key

    secret = "k" * 32
    assert consumer_of_key(secret, consumer_key(secret, "c7")) == "c7"
    assert consumer_of_key(secret, consumer_key("x" * 32, "c7")) is None  # another secret's key
    assert consumer_of_key(secret, consumer_key(secret, "c7").replace("c7", "c8")) is None  # a key renamed
    async with running(provider_settings(tmp_path, consumer_key_secret=secret)) as (_, client):
        mine = await publish(client, "t", "c7")
        await publish(client, "t", "c8")
        page = (await client.get("/events", headers=auth(consumer_key(secret, "c7")))).json()
        assert [e["id"] for e in page["data"]] == [mine]
        forged = "ck.c7." + "0" * 32
        assert (await client.get("/events", headers=auth(forged))).status_code == 401
