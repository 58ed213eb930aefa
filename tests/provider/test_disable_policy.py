"""Issue 16, item 12: an endpoint that never recovers is disabled after sustained failure (Svix's rule).

A real receiver on loopback answers 503 to everything (the ``receiver_dead``
fault); the retry schedule and the policy's window are compressed by
``time_scale`` as in a lab run.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from labkit.provider.store import Store
from tests.helpers.provider import Receiver, provider_settings, running, until

# Attempts 50 ms apart (x time_scale 0.001), eight of them: 350 ms of failures for one event.
SCHEDULE = (0, 50, 50, 50, 50, 50, 50, 50)


async def test_a_dead_endpoint_is_disabled_with_its_reason_and_time(tmp_path: Path, receiver: Receiver) -> None:
    receiver.default = (503, {})
    settings = provider_settings(tmp_path, retry_schedule_s=SCHEDULE, retry_jitter=0, disable_after_failing_s=200.0)
    async with running(settings) as (app, client):
        r = await client.post("/subscriptions", json={"url": receiver.url})
        sub = r.json()
        await client.post("/events", json={"type": "order.updated", "payload": {"n": 1}})

        async def status() -> dict:
            return (await client.get(f"/subscriptions/{sub['id']}")).json()

        got: dict = {}

        async def disabled() -> bool:
            got.update(await status())
            return got["status"] == "disabled"

        deadline = asyncio.get_running_loop().time() + 15
        while not await disabled():
            assert asyncio.get_running_loop().time() < deadline, "the dead endpoint was never disabled"
            await asyncio.sleep(0.02)
        assert "disable policy" in got["disabled_reason"] and "200 s x time_scale 0.001" in got["disabled_reason"]
        assert isinstance(got["disabled_ns"], int) and got["disabled_ns"] >= sub["created_ns"]
        await until(lambda: app.state.store.delivery_summary()["pending"] == 0, what="pending deliveries disabled")
        summary = app.state.store.delivery_summary()
        assert summary["disabled"] == 1 and summary["dead"] == 0 and summary["delivered"] == 0
        attempts = summary["attempts"]
        assert 2 <= attempts < len(SCHEDULE)  # disabled before the delivery ran out of retries

        stats = (await client.get("/stats")).json()
        assert stats["dispatcher"]["endpoints_disabled"] == 1
        listed = app.state.store.disabled_subscriptions()
        assert [(d["id"], d["disabled_ns"]) for d in listed] == [(sub["id"], got["disabled_ns"])]
        assert "secret" not in listed[0]

        await client.post("/events", json={"type": "order.updated", "payload": {"n": 2}})
        assert app.state.store.delivery_summary()["deliveries"] == 1  # a disabled endpoint gets nothing new
    assert Store.disabled_subscriptions_at(settings.db_path)[0]["reason"] == got["disabled_reason"]


@pytest.mark.slow
async def test_a_success_restarts_the_clock(tmp_path: Path, receiver: Receiver) -> None:
    # Two streaks of three failures, each far shorter than the 1 s window, more than 1 s apart.
    receiver.plan = [(503, {})] * 3 + [(200, {})] + [(503, {})] * 3 + [(200, {})]
    settings = provider_settings(tmp_path, retry_schedule_s=SCHEDULE, retry_jitter=0, disable_after_failing_s=1000.0)
    async with running(settings) as (app, client):
        sub = (await client.post("/subscriptions", json={"url": receiver.url})).json()
        await client.post("/events", json={"type": "order.updated", "payload": {"n": 1}})
        await until(lambda: app.state.store.delivery_summary()["delivered"] == 1, what="first delivery")
        await asyncio.sleep(1.2)
        await client.post("/events", json={"type": "order.updated", "payload": {"n": 2}})
        await until(lambda: app.state.store.delivery_summary()["delivered"] == 2, what="second delivery")
        assert (await client.get(f"/subscriptions/{sub['id']}")).json()["status"] == "active"
        assert app.state.store.disabled_subscriptions() == []


async def test_the_policy_can_be_turned_off(tmp_path: Path, receiver: Receiver) -> None:
    receiver.default = (503, {})
    settings = provider_settings(tmp_path, retry_schedule_s=SCHEDULE, retry_jitter=0, disable_after_failing_s=None)
    async with running(settings) as (app, client):
        sub = (await client.post("/subscriptions", json={"url": receiver.url})).json()
        await client.post("/events", json={"type": "order.updated", "payload": {"n": 1}})
        await until(lambda: app.state.store.delivery_summary()["dead"] == 1, what="dead letter")
        assert (await client.get(f"/subscriptions/{sub['id']}")).json()["status"] == "active"
