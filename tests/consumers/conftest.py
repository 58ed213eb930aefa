"""Shared fixtures: a fake provider feed to poll, served by a real uvicorn on loopback (tests/helpers/loopback)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.helpers.loopback import ServerThread

API_KEY = "lab-key"


@dataclass
class Feed:
    """The fake provider's state: an event log, a request log and the faults to inject."""

    events: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    throttle_next: int = 0
    retry_after: str = "1"
    not_modified: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, n: int) -> None:
        with self.lock:
            for _ in range(n):
                i = len(self.events) + 1
                self.events.append({"id": i, "type": "order.updated", "created_ns": time.time_ns(), "payload": {"n": i}})

    @property
    def head(self) -> int:
        return len(self.events)


def feed_app(feed: Feed) -> FastAPI:
    """A minimal provider feed: cursor pages, ETag/304, 429 on demand, one event by id."""
    app = FastAPI()

    @app.get("/events")
    async def events(request: Request, after: str = "0", limit: int = 100, wait: float = 0) -> Response:
        feed.requests.append(
            {"t": time.monotonic(), "after": after, "limit": limit, "wait": wait, "if_none_match": request.headers.get("if-none-match")}
        )
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return JSONResponse({"detail": "bad key"}, status_code=401)
        if feed.throttle_next > 0:
            feed.throttle_next -= 1
            return Response(status_code=429, headers={"retry-after": feed.retry_after})
        start = int(after)
        deadline = time.monotonic() + min(wait, 30.0)
        while wait > 0 and feed.head <= start and time.monotonic() < deadline:
            if await request.is_disconnected():
                return Response(status_code=499)
            await asyncio.sleep(0.01)  # a long poll: hold until news or the wait is over
        etag = f'"h{feed.head}"'
        if request.headers.get("if-none-match") == etag:
            feed.not_modified += 1
            return Response(status_code=304, headers={"etag": etag})
        page = feed.events[start : start + limit]
        nxt = page[-1]["id"] if page else start
        body = {"data": page, "next": str(nxt), "has_more": nxt < feed.head}
        return JSONResponse(body, headers={"etag": etag, "x-poll-interval": "1"})

    @app.get("/snapshot")
    async def snapshot(request: Request) -> Response:
        feed.requests.append({"t": time.monotonic(), "snapshot": True, "if_none_match": request.headers.get("if-none-match")})
        etag = f'"v{feed.head}"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"etag": etag})
        return JSONResponse({"version": feed.head, "id": feed.head, "state": {}}, headers={"etag": etag})

    @app.get("/events/{event_id}")
    async def one(event_id: int, request: Request) -> Response:
        feed.requests.append({"t": time.monotonic(), "get": event_id})
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return JSONResponse({"detail": "bad key"}, status_code=401)
        if not 1 <= event_id <= feed.head:
            return JSONResponse({"detail": "no such event"}, status_code=404)
        return JSONResponse(feed.events[event_id - 1])

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


@pytest.fixture
def feed() -> Iterator[tuple[Feed, ServerThread]]:
    f = Feed()
    with ServerThread(feed_app(f)) as server:
        yield f, server


async def wait_until(predicate: Any, timeout: float = 15.0, every: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true; a generous timeout only guards against hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(every)
    return bool(predicate())
