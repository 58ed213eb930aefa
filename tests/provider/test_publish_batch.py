"""``POST /events/batch``: many events in one request and one transaction, each read, stored and routed as if published alone."""

from __future__ import annotations

from pathlib import Path

import orjson

from labkit.config import EVENT_STREAM as SSE
from labkit.config import StreamLimits
from labkit.provider.publishing import BATCH_MAX_EVENTS
from labkit.provider.store import Store
from labkit.provider.streams import StreamHub
from tests.helpers.provider import provider_settings, running

SCOPES = {"key-a-0001": {"consumer": "a"}, "key-b-0001": {"consumer": "b"}}


async def test_a_batch_stores_each_event_verbatim_with_consecutive_ids_and_scoped_feeds_see_their_own(tmp_path: Path) -> None:
    # payloads as sent, byte for byte (a big integer and an escape that a re-encode would change)
    body = (
        b'{"events": [ {"type":"t1","payload":{"n":123456789012345678901234567890},"consumer":"a"},'
        b' {"type":"t2","payload":{"s":"\\u00e9"},"consumer":"b"}, {"type":"t1","payload":{ }} ]}'
    )
    async with running(provider_settings(tmp_path, key_scopes=SCOPES)) as (app, client):
        r = await client.post("/events/batch", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 201, r.text
        ids = r.json()["ids"]
        assert ids == [ids[0], ids[0] + 1, ids[0] + 2]
        page = await client.get("/events")
        raw = page.content
        assert b'"payload":{"n":123456789012345678901234567890}' in raw and b'"payload":{"s":"\\u00e9"}' in raw
        assert b'"payload":{ }' in raw
        a = (await client.get("/events", headers={"authorization": "Bearer key-a-0001"})).json()
        b = (await client.get("/events", headers={"authorization": "Bearer key-b-0001"})).json()
        assert [e["id"] for e in a["data"]] == [ids[0]] and [e["id"] for e in b["data"]] == [ids[1]]
        assert app.state.provider.counters["published"] == 3
        # a later single publish continues the log
        single = await client.post("/events", json={"type": "t1", "payload": {}})
        assert single.json()["id"] == ids[2] + 1
    assert Store.events_routing_at(str(tmp_path / "provider.db")) == {
        ids[0]: ("t1", "a"),
        ids[1]: ("t2", "b"),
        ids[2]: ("t1", None),
        ids[2] + 1: ("t1", None),
    }


async def test_a_wrong_event_refuses_the_whole_batch_naming_it(tmp_path: Path) -> None:
    async with running(provider_settings(tmp_path)) as (_, client):
        ok = {"type": "t", "payload": {}}
        cases = [
            ({"events": [ok, {"type": "t"}]}, "events[1].payload: field required"),
            ({"events": [ok, ok, {"type": 5, "payload": {}}]}, "events[2].type: must be a string"),
            ({"events": [ok, {"type": ["t"], "payload": {}}]}, "events[1].type: must be a string"),  # unhashable
            ({"events": [ok, 7]}, "events[1]: must be a JSON object"),
            ({"events": [{**ok, "extra": 1}]}, "events[0].extra: unknown field"),
            ({"events": [{**ok, "consumer": ""}]}, "events[0].consumer: must be a printable string of 1 to 100 characters"),
            ({"events": []}, f"events: must be an array of 1 to {BATCH_MAX_EVENTS} events"),
            ({"events": [ok] * (BATCH_MAX_EVENTS + 1)}, f"events: must be an array of 1 to {BATCH_MAX_EVENTS} events"),
            ({"events": [ok], "more": 1}, "body must be a JSON object with one member, events"),
            ([ok], "body must be a JSON object with one member, events"),
        ]
        for body, detail in cases:
            r = await client.post("/events/batch", json=body)
            assert (r.status_code, r.json()["detail"]) == (422, detail), body
            # a compact body (exactly its own serialisation) takes the one-loop reading: the same refusals
            r = await client.post("/events/batch", content=orjson.dumps(body), headers={"content-type": "application/json"})
            assert (r.status_code, r.json()["detail"]) == (422, detail), body
        dup = b'{"events":[{"type":"t","payload":{},"type":"u"}]}'
        r = await client.post("/events/batch", content=dup, headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["detail"].endswith("type: duplicate key")
        assert (await client.get("/events")).json()["data"] == []  # nothing was written


async def test_a_compact_batch_reads_each_event_as_a_single_publish_does(tmp_path: Path) -> None:
    events = [
        {"type": "t", "payload": {"a": [1, {"b": None}]}, "consumer": "a"},
        {"type": "never.seen.before", "payload": {}, "consumer": None},  # a new type: checked in full, then remembered
        {"type": "never.seen.before", "payload": {"x": 1.5}},
        {"consumer": "b", "payload": {}, "type": "t"},  # members in any order
    ]
    body = orjson.dumps({"events": events})
    async with running(provider_settings(tmp_path, key_scopes=SCOPES)) as (_, client):
        r = await client.post("/events/batch", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 201, r.text
        page = (await client.get("/events")).json()["data"]
        assert [(e["type"], e["payload"]) for e in page] == [(e["type"], e["payload"]) for e in events]
        b = (await client.get("/events", headers={"authorization": "Bearer key-b-0001"})).json()["data"]
        assert [e["id"] for e in b] == [page[3]["id"]]
    assert [c for _, (_, c) in sorted(Store.events_routing_at(str(tmp_path / "provider.db")).items())] == ["a", None, None, "b"]


async def test_a_batch_queues_webhooks_like_single_publishes(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "p.db"))
    try:
        sub_a = store.create_subscription("http://127.0.0.1/a", [], "whsec_x", consumer="a")
        sub_t = store.create_subscription("http://127.0.0.1/t", ["t1"], "whsec_x")
        rows = store.publish_many([("t1", b"{}", "a"), ("t2", b"{}", "b"), ("t1", b"{}", None)])
        assert [c for _, c in rows] == ["a", "b", None]
        e1, e2, e3 = (row[0] for row, _ in rows)
        assert store.head() == e3 and store.head((), "b") == e2 and store.head(("t1",), "a") == e1
    finally:
        store.close()
    got: dict[str, list[int]] = {}
    for sub, ids, _ in Store.delivery_attempts_at(str(tmp_path / "p.db")):
        got.setdefault(sub, []).extend(ids)
    assert got == {sub_a.id: [e1], sub_t.id: [e1, e3]}


async def test_the_hub_fans_out_the_rows_it_is_handed_and_reads_the_log_when_they_do_not_follow_on(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "p.db"))
    hub = StreamHub(store, StreamLimits())
    try:
        a, b = hub.attach(SSE, 0, (), "a"), hub.attach(SSE, 0, (), "b")
        for s in (a, b):
            assert hub.catch_up(s) == []
        rows = store.publish_many([("t", b'{"k":1}', "a"), ("t", b"{}", "b"), ("t", b"{}", "a")])
        hub.notify(rows)
        assert [e.id for e in a.queue] == [rows[0][0][0], rows[2][0][0]] and [e.id for e in b.queue] == [rows[1][0][0]]
        assert b'data: {"id":1,"type":"t","created_ns":' in a.queue[0].sse and a.queue[0].sse.endswith(b',"payload":{"k":1}}\nid: 1\n\n')
        # rows that do not follow on from what was fanned out (one publish not announced): the log is read instead
        first = store.publish_many([("t", b"{}", "b")])
        second = store.publish_many([("t", b"{}", "b")])
        hub.notify(second)
        assert [e.id for e in b.queue][-2:] == [first[0][0][0], second[0][0][0]]
        assert hub.seen == store.head()
    finally:
        hub.close()
        store.close()


def test_the_sse_frame_is_the_same_bytes_fastapi_formats() -> None:
    from fastapi.sse import format_sse_event

    from labkit.provider.dispatcher import event_json
    from labkit.provider.streams import encode

    rows = [(1, "t", 5, b'{"a":1}'), (99, "ord\u00e9r.x", 7, '{"s":"\u00e9 \\u00e9"}'.encode()), (3, "t", 1, b'{"a":\n1,\r\n"b":2}')]
    for row in rows:
        text = event_json(row).decode()
        assert encode(row).sse == format_sse_event(data_str=text, event=row[1], id=str(row[0]))
        assert encode(row).json == text


def test_the_depth_limit_counts_brackets_outside_strings_only() -> None:

    from labkit.provider.bodies import json_depth_exceeds

    def exceeds(value: object, limit: int, raw: bytes | None = None) -> bool:
        body = raw if raw is not None else orjson.dumps(value)
        return json_depth_exceeds(body, orjson.loads(body), limit)

    nested = {"a": [1, {"b": [[{}]]}]}  # depth 6
    assert not exceeds(nested, 6) and exceeds(nested, 5)
    many = {"events": [{"p": {"s": "[[[[{{{{"}} for _ in range(40)]}  # brackets inside strings do not nest
    assert not exceeds(many, 4) and exceeds(many, 3)
    escaped = b'{"e":[{"s":"\\"[[[[[[\\\\"},{"t":"x"}]}'  # escapes take the scanner's path
    assert not exceeds(None, 3, escaped) and exceeds(None, 2, escaped)
