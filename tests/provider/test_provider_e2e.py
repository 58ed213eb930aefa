"""The provider served by a real uvicorn on loopback, delivering to a real receiver."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from labkit.provider.app import create_app
from labkit.provider.store import Store
from tests.helpers.loopback import ServerThread
from tests.helpers.provider import KEY, Receiver, provider_settings, until

pytestmark = pytest.mark.asyncio


async def test_uvicorn_end_to_end(tmp_path: Path, receiver: Receiver) -> None:
    settings = provider_settings(tmp_path, poll_interval_hint_s=0.5)
    with ServerThread(create_app(settings)) as server:
        headers = {"authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as client:
            sub = (await client.post("/subscriptions", json={"url": receiver.url})).json()
            receiver.secret = sub["secret"]
            waiting = asyncio.create_task(client.get("/events", params={"wait": "20"}))
            await until(lambda: _long_polls(server) == 1, what="long poll held")
            r = await client.post("/events", json={"type": "t", "payload": {"k": "v"}})
            assert r.status_code == 201
            page = await waiting
            assert page.status_code == 200 and [e["id"] for e in page.json()["data"]] == [1]
            assert page.headers["x-poll-interval"] == "0.5"
            r = await client.get("/events", params={"after": "1"}, headers={"if-none-match": page.headers["etag"]})
            assert r.status_code == 304
            await until(lambda: len(receiver.ok()) == 1, what="webhook over real sockets")
            assert receiver.received[0].verified and receiver.received[0].msg_id == "msg_1"
            stats = (await client.get("/stats")).json()
            assert stats["wire"]["connections"] >= 1
    # the lifespan closed the store cleanly; the runner reads the file afterwards
    assert Store.delivery_summary_at(settings.db_path)["delivered"] == 1
    assert list(Store.events_created_at(settings.db_path)) == [1]


def _long_polls(server: ServerThread) -> int:
    app = server.server.config.app
    return app.state.provider.counters["long_polls"]
