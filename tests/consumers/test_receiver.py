"""The webhook receiver, driven in-process: verification, de-duplication, faults, limits."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

from labkit.config import ReceiverSettings
from labkit.consumers.receiver import create_app
from labkit.wire.signing import Signer, new_secret

from .conftest import Feed, ServerThread, feed_app

SECRET = new_secret()


def message(event_id: int, *, thin: bool = False) -> bytes:
    data: dict[str, Any] = {"id": event_id, "type": "order.updated", "created_ns": time.time_ns()}
    if not thin:
        data["payload"] = {"n": event_id}
    return orjson.dumps({"type": "order.updated", "timestamp": "2024-05-01T12:00:00Z", "data": data})


def batch(ids: list[int]) -> bytes:
    events = [{"id": i, "type": "order.updated", "created_ns": time.time_ns(), "payload": {"n": i}} for i in ids]
    return orjson.dumps({"type": "batch", "timestamp": "2024-05-01T12:00:00Z", "data": {"events": events}})


def signed(body: bytes, msg_id: str = "msg_1", secrets: tuple[str, ...] = (SECRET,), ts: int | None = None) -> dict[str, str]:
    return Signer(list(secrets)).headers(msg_id, body, ts) | {"content-type": "application/json"}


@asynccontextmanager
async def receiver(**overrides: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    settings = ReceiverSettings(**({"secrets": (SECRET,)} | overrides))
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            yield client, app.state.receiver


def recorded(rx: Any) -> dict[str, int]:
    return rx.store.counts()


async def test_valid_webhook_is_accepted_and_recorded() -> None:
    async with receiver() as (client, rx):
        body = message(7)
        r = await client.post("/webhook/s0", content=body, headers=signed(body, "msg_7"))
        assert r.status_code in (200, 204)
        assert recorded(rx) == {"s0": 1}
        assert [e[:2] for e in rx.store.events()] == [("s0", 7)]
        assert rx.counters()["accepted"] == 1 and rx.counters()["events_recorded"] == 1


async def test_default_subscriber() -> None:
    async with receiver() as (client, rx):
        body = message(1)
        r = await client.post("/webhook", content=body, headers=signed(body))
        assert r.status_code == 204
        assert recorded(rx) == {"default": 1}


def _forged(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, signed(body, secrets=(new_secret(),))


def _tampered(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body.replace(b'"n":1', b'"n":2'), signed(body)


def _stale(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, signed(body, ts=int(time.time()) - 6 * 60)


def _missing(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, {"content-type": "application/json"}


def _garbage(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, signed(body) | {"webhook-signature": "v1"}


def _bad_timestamp(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body, signed(body) | {"webhook-timestamp": "yesterday"}


def _not_utf8(body: bytes) -> tuple[bytes, dict[str, str]]:
    return b"\xff\xfe" + body, signed(body)


async def test_bad_requests_are_401_and_record_nothing() -> None:
    cases = {
        "forged": _forged,
        "tampered": _tampered,
        "stale": _stale,
        "missing headers": _missing,
        "garbage signature": _garbage,
        "bad timestamp": _bad_timestamp,
        "not utf-8": _not_utf8,
    }
    async with receiver() as (client, rx):
        for name, make in cases.items():
            body, headers = make(message(1))
            r = await client.post("/webhook/s0", content=body, headers=headers)
            assert r.status_code == 401, name
            assert isinstance(r.json()["detail"], str) and r.json()["detail"], name
        assert recorded(rx) == {}
        assert rx.store.messages() == []
        c = rx.counters()
        assert sum(c["rejected"].values()) == len(cases)
        assert c["accepted"] == 0 and c["requests"] == len(cases)
        assert "message timestamp too old" in c["rejected"]


async def test_replay_is_acknowledged_and_processed_once() -> None:
    async with receiver() as (client, rx):
        body = message(5)
        headers = signed(body, "msg_5")
        first = await client.post("/webhook/s0", content=body, headers=headers)
        again = await client.post("/webhook/s0", content=body, headers=headers)
        assert first.status_code == 204
        assert again.status_code == 200
        c = rx.counters()
        assert c["duplicates"] == 1 and c["accepted"] == 1 and c["events_recorded"] == 1
        assert recorded(rx) == {"s0": 1}
        # The same message id for another subscriber is a different message.
        other = await client.post("/webhook/s1", content=body, headers=headers)
        assert other.status_code == 204
        assert recorded(rx) == {"s0": 1, "s1": 1}


async def test_same_event_in_a_new_message_is_a_duplicate_event() -> None:
    async with receiver() as (client, rx):
        body = message(3)
        await client.post("/webhook/s0", content=body, headers=signed(body, "msg_3"))
        b = batch([3, 4])
        r = await client.post("/webhook/s0", content=b, headers=signed(b, "msg_b3_4"))
        assert r.status_code == 204
        assert recorded(rx) == {"s0": 2}
        assert rx.counters()["duplicate_events"] == 1


async def test_secret_rotation_accepts_either_secret() -> None:
    old, new = new_secret(), new_secret()
    async with receiver(secrets=(old, new)) as (client, rx):
        for i, secrets in enumerate([(old,), (new,), (old, new)], start=1):
            body = message(i)
            r = await client.post("/webhook/s0", content=body, headers=signed(body, f"msg_{i}", secrets))
            assert r.status_code == 204
        body = message(9)
        r = await client.post("/webhook/s0", content=body, headers=signed(body, "msg_9", (new_secret(),)))
        assert r.status_code == 401
        assert recorded(rx) == {"s0": 3}


async def test_batch_records_every_event() -> None:
    async with receiver() as (client, rx):
        body = batch([10, 11, 12, 13])
        r = await client.post("/webhook/s0", content=body, headers=signed(body, "msg_b10_13"))
        assert r.status_code == 204
        assert [e[1] for e in rx.store.events()] == [10, 11, 12, 13]
        assert rx.counters()["events_recorded"] == 4


async def test_faults_answer_before_anything_is_recorded() -> None:
    cases: list[tuple[dict[str, Any], int]] = [
        ({"down_windows": ((0.0, 3600.0),)}, 503),
        ({"fail_rate": 1.0}, 500),
        ({"gone": True}, 410),
        ({"fail_rate": 1.0, "fail_status": 429, "retry_after_s": 2}, 429),
    ]
    for overrides, status in cases:
        async with receiver(**overrides) as (client, rx):
            body = message(1)
            r = await client.post("/webhook/s0", content=body, headers=signed(body))
            assert r.status_code == status, overrides
            if status == 429:
                assert r.headers["retry-after"] == "2"
            assert recorded(rx) == {}
            assert rx.store.messages() == []
            assert rx.counters()["faults"] == {str(status): 1}


async def test_fail_rate_is_seeded() -> None:
    async def statuses() -> list[int]:
        async with receiver(fail_rate=0.5, seed=3) as (client, _):
            out = []
            for i in range(20):
                body = message(i)
                r = await client.post("/webhook/s0", content=body, headers=signed(body, f"msg_{i}"))
                out.append(r.status_code)
            return out

    first, second = await statuses(), await statuses()
    assert first == second
    assert {204, 500} == set(first)


async def test_oversized_body_is_413() -> None:
    async with receiver(max_body_bytes=256) as (client, rx):
        big = orjson.dumps({"type": "x", "data": {"id": 1, "payload": "a" * 1000}})
        r = await client.post("/webhook/s0", content=big, headers=signed(big))
        assert r.status_code == 413

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the streamed size decides
            for _ in range(10):
                yield b"a" * 100

        r = await client.post("/webhook/s0", content=chunks(), headers=signed(big))
        assert r.status_code == 413
        assert recorded(rx) == {}
        assert rx.counters()["rejected"] == {"body too large": 2}


async def test_hostile_bodies_are_4xx_never_500() -> None:
    bodies = [
        b"not json",
        b"[]",
        b'{"data": 5}',
        b'{"type": "x", "data": {"id": "7"}}',
        b'{"type": "x", "data": {"id": true}}',
        b'{"type": "x", "data": {"id": 99999999999999999999999}}',
        b'{"type": "x", "data": {"id": -1}}',
        b'{"type": "batch", "data": {"events": []}}',
        b'{"type": "batch", "data": {"events": [1, 2]}}',
        b'{"type": "batch", "data": {"events": "no"}}',
    ]
    async with receiver() as (client, rx):
        for i, body in enumerate(bodies):
            r = await client.post("/webhook/s0", content=body, headers=signed(body, f"msg_{i}"))
            assert r.status_code == 400, body
        assert recorded(rx) == {}
        assert rx.store.messages() == []
    async with receiver(verify=False) as (client, rx):
        r = await client.post("/webhook/s0", content=b"\xff", headers={"webhook-id": "msg_1"})
        assert r.status_code == 400
        r = await client.post("/webhook/" + "s" * 300, content=message(1), headers={"webhook-id": "msg_1"})
        assert r.status_code == 400
        r = await client.post("/webhook/s0", content=message(1), headers={"webhook-id": "x" * 300})
        assert r.status_code == 400
        r = await client.post("/webhook/s0", content=message(1), headers={"webhook-id": "msg_1"})
        assert r.status_code == 204
        # Without verification a bare POST (no webhook-id) is keyed on its events.
        r = await client.post("/webhook/s0", content=message(2))
        assert r.status_code == 204
        r = await client.post("/webhook/s0", content=message(2))
        assert r.status_code == 200
        assert recorded(rx) == {"s0": 2}


async def test_thin_events_are_fetched_from_the_provider() -> None:
    feed = Feed()
    feed.publish(3)
    with ServerThread(feed_app(feed)) as server:
        async with receiver(provider_url=server.url) as (client, rx):
            body = message(2, thin=True)
            r = await client.post("/webhook/s0", content=body, headers=signed(body, "msg_2"))
            assert r.status_code == 204
            assert [q.get("get") for q in feed.requests] == [2]
            c = rx.counters()
            assert c["fetches"] == 1 and c["fetch_wire"]["bytes_in"] > 0
            assert rx.wire()["bytes_in"] >= c["fetch_wire"]["bytes_in"]
            # An id the provider does not know is refused and not recorded.
            body = message(99, thin=True)
            r = await client.post("/webhook/s0", content=body, headers=signed(body, "msg_99"))
            assert r.status_code == 400
            assert recorded(rx) == {"s0": 1}


async def test_healthz_stats_and_stats_file(tmp_path: Path) -> None:
    stats_path = tmp_path / "receiver.stats.json"
    db = tmp_path / "receiver.db"
    async with receiver(stats_path=str(stats_path), db_path=str(db)) as (client, _):
        assert (await client.get("/healthz")).status_code == 200
        body = message(1)
        await client.post("/webhook/s0", content=body, headers=signed(body))
        await client.post("/webhook/s0", content=body, headers=signed(body))
        stats = (await client.get("/stats")).json()
        assert stats["role"] == "receiver"
        assert stats["counters"]["duplicates"] == 1
    on_disk = json.loads(stats_path.read_text())
    assert on_disk["role"] == "receiver"
    assert set(on_disk) == {"role", "pid", "cpu_s", "wire", "counters"}
    assert set(on_disk["wire"]) == {"bytes_in", "bytes_out", "connections"}
    for key in ("requests", "accepted", "duplicates", "events_recorded", "duplicate_events", "rejected", "faults"):
        assert key in on_disk["counters"]
    assert on_disk["counters"]["requests"] == 2
    assert SECRET not in stats_path.read_text()
