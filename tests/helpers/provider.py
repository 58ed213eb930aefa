"""Test helpers: an in-process provider and a real webhook receiver on loopback.

The receiver is a raw ASGI app served on 127.0.0.1 by ``ServerThread`` (tests/helpers/loopback.py). It
verifies every request with the independent ``standardwebhooks`` package and
can be told to fail, answer 410, or throttle with Retry-After.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from standardwebhooks import Webhook
from starlette.applications import Starlette

from labkit.config import ProviderSettings
from labkit.provider.app import create_app
from tests.helpers.loopback import ServerThread, bound_socket

KEY = "lab-key"


@dataclass
class Received:
    msg_id: str
    headers: dict[str, str]
    raw: bytes
    body: Any
    verified: bool
    status: int
    t_ns: int


@dataclass
class Receiver:
    """A webhook endpoint; ``plan`` holds responses to give first, ``default`` the rest."""

    sock: socket.socket
    secret: str | None = None
    plan: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    default: tuple[int, dict[str, str]] = (200, {})
    delays: list[float] = field(default_factory=list)  # seconds to stall the first requests
    received: list[Received] = field(default_factory=list)
    serving: ServerThread | None = None

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://{host}:{port}/hook"

    def ok(self) -> list[Received]:
        return [r for r in self.received if 200 <= r.status < 300]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            msg = await receive()
            raw += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        verified = False
        if self.secret:
            try:
                Webhook(self.secret).verify(raw, headers)
                verified = True
            except Exception:
                verified = False
        status, extra = self.plan.pop(0) if self.plan else self.default
        if self.delays:
            await asyncio.sleep(self.delays.pop(0))
        self.received.append(Received(headers.get("webhook-id", ""), headers, raw, orjson.loads(raw), verified, status, time.time_ns()))
        out = [(b"content-type", b"text/plain")] + [(k.encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": b"ok"})

    def start(self) -> None:
        self.serving = ServerThread(self, sock=self.sock, lifespan="off").start()

    def stop(self) -> None:
        if self.serving is not None:
            self.serving.stop()
            self.serving = None


@contextmanager
def receivers() -> Iterator[Callable[..., Receiver]]:
    """Make receivers (started unless start=False); all are stopped on exit."""
    made: list[Receiver] = []

    def make(start: bool = True, **kw: Any) -> Receiver:
        r = Receiver(sock=bound_socket(), **kw)
        made.append(r)
        if start:
            r.start()
        return r

    yield make
    for r in made:
        r.stop()
        r.sock.close()  # a receiver made with start=False and never started


def provider_settings(tmp_path: Path, **kw: Any) -> ProviderSettings:
    """Lab defaults for tests: loopback allowed, compressed retries, seeded jitter."""
    base: dict[str, Any] = {
        "db_path": str(tmp_path / "provider.db"),
        "allowed_callback_hosts": ("127.0.0.1",),
        "time_scale": 0.001,
        "retry_schedule_s": (0, 5, 10, 20, 40, 80),
        "seed": 7,
        "rate_limit_per_s": 0,
    }
    base.update(kw)
    return ProviderSettings(**base)


@asynccontextmanager
async def running(settings: ProviderSettings, key: str | None = KEY) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """The provider app with its lifespan running and a client that talks to it in-process."""
    app = create_app(settings)
    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://provider", headers=headers) as client:
            yield app, client


async def until(cond: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> None:
    """Wait until ``cond()`` is true; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
