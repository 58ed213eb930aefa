"""The webhook's subscriptions: every consumer subscribed once, a bounded number at a time; a refusal stops it in one line.

One at a time, each creation made the provider's dispatcher re-read every
subscription, so 2,000 subscribers took 15 s to subscribe over TLS.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from labkit.errors import RunError
from labkit.styles.webhook import subscribe_all


class FakeLab:
    """What ``subscribe_all`` uses of a ``Lab``: its consumers and ``post_json``, answered after a short wait."""

    def __init__(self, consumers: int, refuse_at: int | None = None) -> None:
        self.consumers = [f"s{i}" for i in range(consumers)]
        self.settings = SimpleNamespace(audience="per-consumer")
        self.secret = "whsec"
        self.consumer_topics: list[Any] = []
        self.provider = SimpleNamespace(child=SimpleNamespace(url="https://127.0.0.1:1"))
        self.consumer_of: dict[str, str] = {}
        self.bodies: list[dict[str, Any]] = []
        self.refuse_at = refuse_at
        self.now = self.most = 0

    async def post_json(self, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any] | str]:
        self.now += 1
        self.most = max(self.most, self.now)
        await asyncio.sleep(0.001)
        self.now -= 1
        if self.refuse_at is not None and len(self.bodies) >= self.refuse_at:
            return 422, "url: not allowed"
        self.bodies.append(body)
        return 201, {"id": f"sub_{len(self.bodies)}"}


def test_every_consumer_is_subscribed_once_to_its_own_path_a_few_at_a_time() -> None:
    lab = FakeLab(100)
    asyncio.run(subscribe_all(lab, "https://127.0.0.1:2", 8))  # type: ignore[arg-type]
    assert sorted(lab.consumer_of.values()) == sorted(lab.consumers)
    assert {b["url"] for b in lab.bodies} == {f"https://127.0.0.1:2/webhook/s{i}" for i in range(100)}
    assert all(b["url"].endswith("/" + b["consumer"]) for b in lab.bodies)  # each filtered to its own events
    assert 1 < lab.most <= 8


def test_a_refused_subscription_stops_the_rest_and_says_why() -> None:
    lab = FakeLab(200, refuse_at=10)
    with pytest.raises(RunError, match="could not subscribe the receiver: 422 url: not allowed"):
        asyncio.run(subscribe_all(lab, "https://127.0.0.1:2", 4))  # type: ignore[arg-type]
    assert len(lab.bodies) < 20  # the workers stopped at the first refusal, not after every consumer
