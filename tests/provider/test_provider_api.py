"""The provider's HTTP API, driven in-process through httpx.ASGITransport."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from labkit.provider.app import ROUTE_SETS, create_app
from labkit.provider.routing import RouteSet
from labkit.provider.state import state_of
from labkit.wire.signing import new_secret
from tests.helpers.provider import provider_settings, running, until

pytestmark = pytest.mark.asyncio


async def publish(client: httpx.AsyncClient, n: int, type_: str = "order.updated") -> list[dict]:
    out = []
    for i in range(n):
        r = await client.post("/events", json={"type": type_, "payload": {"n": i}})
        assert r.status_code == 201, r.text
        out.append(r.json())
    return out


def store_is_empty(app: Starlette) -> bool:
    store = app.state.store
    return store.head() == 0 and not store.subscriptions() and store.delivery_summary()["deliveries"] == 0


# -- auth -------------------------------------------------------------------------------


async def test_healthz_needs_no_key(tmp_path: Path) -> None:
    async with running(provider_settings(tmp_path), key=None) as (_, client):
        r = await client.get("/healthz")
        assert r.status_code == 200 and r.json() == {"ok": True}


@pytest.mark.parametrize("key", [None, "wrong-key", ""])
async def test_401_without_or_with_wrong_key(tmp_path: Path, key: str | None) -> None:
    async with running(provider_settings(tmp_path), key=key) as (app, client):
        for method, path in [("GET", "/events"), ("POST", "/events"), ("GET", "/subscriptions"), ("GET", "/stats")]:
            r = await client.request(method, path, json={"type": "t", "payload": {}})
            assert r.status_code == 401
            assert r.json() == {"detail": "missing or invalid API key"}
            assert r.headers["www-authenticate"] == "Bearer"
        assert store_is_empty(app)


async def test_basic_scheme_is_not_a_bearer_key(provider: tuple[Starlette, httpx.AsyncClient]) -> None:
    _, client = provider
    r = await client.get("/events", headers={"authorization": "Basic lab-key"})
    assert r.status_code == 401


# -- publish and the feed -----------------------------------------------------------------


async def test_publish_returns_id_type_created(provider: tuple[Starlette, httpx.AsyncClient]) -> None:
    _, client = provider
    (ev,) = await publish(client, 1)
    assert set(ev) == {"id", "type", "created_ns"}
    assert ev["id"] == 1 and ev["type"] == "order.updated" and ev["created_ns"] > 0
    r = await client.get("/events/1")
    assert r.status_code == 200
    assert r.json() == {**ev, "payload": {"n": 0}}
    assert (await client.get("/events/2")).status_code == 404
    assert (await client.get("/events/abc")).status_code == 404
    assert (await client.get("/events/99999999999999999999")).status_code == 404


async def test_page_through_feed_with_next_and_has_more(provider: tuple[Starlette, httpx.AsyncClient]) -> None:
    _, client = provider
    await publish(client, 5)
    seen: list[int] = []
    cursor = "0"
    pages = 0
    while True:
        r = await client.get("/events", params={"after": cursor, "limit": 2})
        assert r.status_code == 200
        assert r.headers["x-poll-interval"] == "1"
        body = r.json()
        assert set(body) == {"data", "next", "has_more"}
        seen += [e["id"] for e in body["data"]]
        for e in body["data"]:
            assert set(e) == {"id", "type", "created_ns", "payload"}
        cursor = body["next"]
        assert isinstance(cursor, str)
        pages += 1
        if not body["has_more"]:
            break
    assert seen == [1, 2, 3, 4, 5]
    assert pages == 3
    # nothing new: empty page, cursor unchanged
    body = (await client.get("/events", params={"after": cursor})).json()
    assert body == {"data": [], "next": "5", "has_more": False}


async def test_type_filter(provider: tuple[Starlette, httpx.AsyncClient]) -> None:
    _, client = provider
    await publish(client, 2, "a")
    await publish(client, 2, "b")
    r = await client.get("/events", params={"types": "b"})
    assert [e["id"] for e in r.json()["data"]] == [3, 4]
    assert r.headers["etag"] == '"h4"'
    r = await client.get("/events", params={"types": "a,zzz"})
    assert [e["id"] for e in r.json()["data"]] == [1, 2]
    assert r.headers["etag"] == '"h2"'


async def test_304_when_nothing_new_then_200_after_publish(provider: tuple[Starlette, httpx.AsyncClient]) -> None:
    app, client = provider
    await publish(client, 2)
    r = await client.get("/events", params={"after": "0"})
    etag, cursor = r.headers["etag"], r.json()["next"]
    assert etag == '"h2"'
    r = await client.get("/events", params={"after": cursor}, headers={"if-none-match": etag})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == etag and r.headers["x-poll-interval"] == "1"
    # weak form matches too
    r = await client.get("/events", params={"after": cursor}, headers={"if-none-match": f"W/{etag}"})
    assert r.status_code == 304
    # an old cursor with the current tag still gets the events it has not seen
    r = await client.get("/events", params={"after": "1"}, headers={"if-none-match": etag})
    assert r.status_code == 200 and [e["id"] for e in r.json()["data"]] == [2]
    await publish(client, 1)
    r = await client.get("/events", params={"after": cursor}, headers={"if-none-match": etag})
    assert r.status_code == 200
    assert [e["id"] for e in r.json()["data"]] == [3]
    assert r.headers["etag"] == '"h3"'
    assert app.state.provider.counters["polls_304"] == 2


async def test_long_poll_returns_early_on_publish(provider: tuple[Starlette, httpx.AsyncClient]) -> None:
    app, client = provider
    counters = app.state.provider.counters
    task = asyncio.create_task(client.get("/events", params={"after": "0", "wait": "30"}))
    await until(lambda: counters["long_polls"] == 1, what="the long poll to be held")
    assert not task.done()
    await publish(client, 1)
    r = await asyncio.wait_for(task, 10)
    assert r.status_code == 200
    assert [e["id"] for e in r.json()["data"]] == [1]


async def test_long_poll_ignores_other_types_then_times_out(provider: tuple[Starlette, httpx.AsyncClient]) -> None:
    _, client = provider
    task = asyncio.create_task(client.get("/events", params={"wait": "0.3", "types": "wanted"}))
    await asyncio.sleep(0.05)
    await publish(client, 1, "other")
    r = await task
    assert r.status_code == 200
    assert r.json() == {"data": [], "next": "0", "has_more": False}


async def test_long_poll_times_out_with_304(provider: tuple[Starlette, httpx.AsyncClient]) -> None:
    _, client = provider
    r = await client.get("/events", params={"wait": "0.2"}, headers={"if-none-match": '"h0"'})
    assert r.status_code == 304
    r = await client.get("/events", params={"wait": "0.2"})
    assert r.status_code == 200 and r.json()["data"] == []


# -- rate limit ---------------------------------------------------------------------------


async def test_429_with_retry_after(tmp_path: Path) -> None:
    async with running(provider_settings(tmp_path, rate_limit_per_s=0.5, rate_limit_burst=2)) as (app, client):
        assert (await client.get("/events")).status_code == 200
        assert (await client.get("/events")).status_code == 200
        r = await client.get("/events")
        assert r.status_code == 429
        assert r.headers["retry-after"].isdigit() and int(r.headers["retry-after"]) >= 1
        assert "rate limit" in r.json()["detail"]
        # the key is limited, not the route: a publish is refused too and writes nothing
        r = await client.post("/events", json={"type": "t", "payload": {}})
        assert r.status_code == 429
        assert store_is_empty(app)
        # health checks carry no key and are never limited
        assert (await client.get("/healthz")).status_code == 200


async def test_304_is_not_charged(tmp_path: Path) -> None:
    async with running(provider_settings(tmp_path, rate_limit_per_s=0.01, rate_limit_burst=2)) as (_, client):
        r = await client.get("/events")
        etag = r.headers["etag"]
        for _ in range(10):
            r = await client.get("/events", headers={"if-none-match": etag})
            assert r.status_code == 304
        assert (await client.get("/events")).status_code == 200
        assert (await client.get("/events")).status_code == 429


# -- hostile input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"after": "abc"}, "after"),
        ({"after": "-1"}, "after"),
        ({"after": "1" * 21}, "after"),
        ({"after": "99999999999999999999"}, "after"),
        ({"after": "１２"}, "after"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"wait": "-1"}, "wait"),
        ({"wait": "31"}, "wait"),
        ({"wait": "nan"}, "wait"),
        ({"wait": "inf"}, "wait"),
        ({"wait": "soon"}, "wait"),
    ],
)
async def test_bad_feed_params_are_400_naming_the_param(
    provider: tuple[Starlette, httpx.AsyncClient], params: dict[str, str], name: str
) -> None:
    _, client = provider
    r = await client.get("/events", params=params)
    assert r.status_code == 400
    assert r.json()["detail"].startswith(f"{name}:")


@pytest.mark.parametrize(
    ("kwargs", "status", "words"),
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"content": b"", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"content": b'{"type":"t","payload":{}}', "headers": {"content-type": "text/plain"}}, 415, "content-type"),
        ({"content": b'{"type":"t","payload":{}}'}, 415, "content-type"),
        ({"json": {"type": "t", "payload": {}, "extra": 1}}, 422, "extra: unknown field"),
        ({"json": {"payload": {}}}, 422, "type:"),
        ({"json": {"type": "t"}}, 422, "payload:"),
        ({"json": {"type": "", "payload": {}}}, 422, "type:"),
        ({"json": {"type": "x" * 101, "payload": {}}}, 422, "type:"),
        ({"json": {"type": 5, "payload": {}}}, 422, "type:"),
        ({"json": {"type": "t", "payload": [1]}}, 422, "payload:"),
        ({"json": [1, 2]}, 422, "JSON object"),
        ({"content": b'{"type":"t","payload":{"n":1e999999}}', "headers": {"content-type": "application/json"}}, 422, "payload.n: number"),
        ({"content": b'{"type":"t","payload":{"n":"\\ud800"}}', "headers": {"content-type": "application/json"}}, 422, "payload.n: string"),
        (
            {"content": b'{"type":"t","payload":{},"payload":{"a":1}}', "headers": {"content-type": "application/json"}},
            422,
            "payload: duplicate",
        ),
        ({"content": b'{"type":"t","type":"u","payload":{}}', "headers": {"content-type": "application/json"}}, 422, "type: duplicate"),
    ],
)
async def test_bad_publish_is_4xx_and_writes_nothing(
    provider: tuple[Starlette, httpx.AsyncClient], kwargs: dict, status: int, words: str
) -> None:
    app, client = provider
    r = await client.post("/events", **kwargs)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert store_is_empty(app)


async def test_oversized_body_is_413(tmp_path: Path) -> None:
    async with running(provider_settings(tmp_path, max_body_bytes=256)) as (app, client):
        big = {"type": "t", "payload": {"blob": "x" * 1000}}
        r = await client.post("/events", json=big)
        assert r.status_code == 413
        assert "max_body_bytes" in r.json()["detail"]

        async def chunks():  # no Content-Length: the streamed size is what counts
            for _ in range(10):
                yield b" " * 100
            yield b'{"type":"t","payload":{}}'

        r = await client.post("/events", content=chunks(), headers={"content-type": "application/json"})
        assert "content-length" not in r.request.headers
        assert r.status_code == 413
        r = await client.post("/subscriptions", json={"url": "http://127.0.0.1/" + "x" * 1000})
        assert r.status_code == 413
        assert store_is_empty(app)


# -- subscriptions ------------------------------------------------------------------------


async def test_secret_is_shown_only_on_create(provider: tuple[Starlette, httpx.AsyncClient]) -> None:
    _, client = provider
    r = await client.post("/subscriptions", json={"url": "http://127.0.0.1:9/hook", "event_types": ["a", "b"]})
    assert r.status_code == 201, r.text
    sub = r.json()
    assert set(sub) == {"id", "url", "event_types", "status", "created_ns", "disabled_reason", "disabled_ns", "secret"}
    assert sub["id"].startswith("sub_") and sub["status"] == "active" and sub["event_types"] == ["a", "b"]
    assert sub["secret"].startswith("whsec_")
    listed = (await client.get("/subscriptions")).json()["data"]
    assert [s["id"] for s in listed] == [sub["id"]]
    assert "secret" not in listed[0]
    one = (await client.get(f"/subscriptions/{sub['id']}")).json()
    assert "secret" not in one and one["url"] == sub["url"]
    assert sub["secret"] not in (await client.get("/stats")).text
    assert (await client.get("/subscriptions/sub_nope")).status_code == 404


async def test_given_secret_is_kept_and_checked(provider: tuple[Starlette, httpx.AsyncClient]) -> None:
    app, client = provider
    secret = new_secret()
    r = await client.post("/subscriptions", json={"url": "http://127.0.0.1:9/", "secret": secret})
    assert r.status_code == 201 and r.json()["secret"] == secret
    r = await client.post("/subscriptions", json={"url": "http://127.0.0.1:9/", "secret": "nope"})
    assert r.status_code == 422 and r.json()["detail"].startswith("secret:")
    assert len(app.state.store.subscriptions()) == 1


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"url": "ftp://example.com/hook"}, "url: url scheme must be http or https"),
        ({"url": "file:///etc/passwd"}, "url: url scheme"),
        ({"url": "javascript:alert(1)"}, "url: url scheme"),
        ({"url": "http://10.0.0.5/hook"}, "private"),
        ({"url": "http://169.254.169.254/latest/meta-data"}, "link-local"),
        ({"url": "http://[::1]:8080/"}, "loopback"),
        ({"url": "http://[::ffff:10.1.2.3]/"}, "private"),
        ({"url": "http://127.0.0.2:8080/"}, "loopback"),
        ({"url": "http://0.0.0.0/"}, "unspecified"),
        ({"url": "http:///nohost"}, "host"),
        ({"url": 42}, "url:"),
        ({"url": "http://127.0.0.1/", "event_types": "a"}, "event_types:"),
        ({"url": "http://127.0.0.1/", "bogus": 1}, "bogus: unknown field"),
        ({}, "url:"),
    ],
)
async def test_bad_subscription_is_422_and_writes_nothing(provider: tuple[Starlette, httpx.AsyncClient], body: dict, words: str) -> None:
    app, client = provider
    r = await client.post("/subscriptions", json=body)
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"]
    assert store_is_empty(app)


async def test_delete_subscription(provider: tuple[Starlette, httpx.AsyncClient]) -> None:
    _, client = provider
    sub = (await client.post("/subscriptions", json={"url": "http://127.0.0.1:9/"})).json()
    r = await client.delete(f"/subscriptions/{sub['id']}")
    assert r.status_code == 204 and r.content == b""
    assert (await client.get(f"/subscriptions/{sub['id']}")).status_code == 404
    assert (await client.delete(f"/subscriptions/{sub['id']}")).status_code == 404


async def test_replay_validation(provider: tuple[Starlette, httpx.AsyncClient]) -> None:
    app, client = provider
    sub = (await client.post("/subscriptions", json={"url": "http://127.0.0.1:9/"})).json()
    path = f"/subscriptions/{sub['id']}/replay"
    for body, status in [({}, 422), ({"since_ns": 0, "after": "0"}, 422), ({"after": "x"}, 400), ({"since_ns": -1}, 422)]:
        r = await client.post(path, json=body)
        assert r.status_code == status, (body, r.text)
    assert (await client.post("/subscriptions/sub_nope/replay", json={"after": "0"})).status_code == 404
    r = await client.post(path, json={"after": "0"})
    assert r.status_code == 202 and r.json() == {"queued": 0}
    assert app.state.store.delivery_summary()["deliveries"] == 0


async def test_stats_counts_requests(provider: tuple[Starlette, httpx.AsyncClient]) -> None:
    _, client = provider
    await publish(client, 2)
    await client.get("/events")
    await client.get("/events", headers={"if-none-match": '"h2"'}, params={"after": "2"})
    await client.get("/nope")
    stats = (await client.get("/stats")).json()
    assert stats["published"] == 2 and stats["polls"] == 2 and stats["polls_304"] == 1
    assert stats["requests"]["POST /events"] == {"201": 2}
    assert stats["requests"]["GET /events"] == {"200": 1, "304": 1}
    assert stats["requests"]["GET (unmatched)"] == {"404": 1}
    assert set(stats["wire"]) == {"bytes_in", "bytes_out", "connections"}
    assert stats["dispatcher"]["in_flight"] == 0


async def test_has_more_follows_the_filtered_feed(provider: tuple[Starlette, httpx.AsyncClient]) -> None:
    _, client = provider
    for type_ in ("a", "b", "a", "b"):
        await publish(client, 1, type_)
    first = (await client.get("/events", params={"types": "a", "limit": "1"})).json()
    assert [e["id"] for e in first["data"]] == [1] and first["next"] == "1" and first["has_more"] is True
    last = (await client.get("/events", params={"types": "a", "after": "1", "limit": "1"})).json()
    assert [e["id"] for e in last["data"]] == [3] and last["next"] == "3" and last["has_more"] is False
    everything = (await client.get("/events", params={"after": "2", "limit": "2"})).json()
    assert [e["id"] for e in everything["data"]] == [3, 4] and everything["has_more"] is False


async def test_a_new_area_contributes_routes_behind_the_gate(tmp_path: Path) -> None:
    async def hello(request: Request) -> Response:
        return Response(b'{"head":%d}' % state_of(request).store.head(), media_type="application/json")

    extra = RouteSet(routes=(Route("/hello", hello, methods=["GET"]),))
    app = create_app(provider_settings(tmp_path), ROUTE_SETS + (extra,))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://provider") as client:
            assert (await client.get("/hello")).status_code == 401
            r = await client.get("/hello", headers={"authorization": "Bearer lab-key"})
            assert r.status_code == 200 and r.json() == {"head": 0}
            stats = (await client.get("/stats", headers={"authorization": "Bearer lab-key"})).json()
            assert stats["requests"]["GET /hello"] == {"200": 1}
