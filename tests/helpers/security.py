"""Real servers on loopback for the security tests, and the tools an attacker would use.

The provider and the receiver run as their own uvicorn processes (``ProcessGroup``,
exactly as a run starts them), with short slow-client timeouts so the slowloris
tests finish quickly. Attacks go over real sockets: httpx for well-formed
requests, raw bytes for malformed and slow ones. ``CaptureServer`` is a
webhook endpoint in a thread that keeps every request it gets.
"""

from __future__ import annotations

import contextlib
import secrets
import select
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from standardwebhooks import Webhook

from labkit.consumers import records
from labkit.servers.procs import Child, ProcessGroup
from labkit.wire.signing import new_secret
from tests.helpers.loopback import ServerThread

KEY_A = "lk_a_" + secrets.token_urlsafe(12)
KEY_B = "lk_b_" + secrets.token_urlsafe(12)
FREE_KEY = "lk_free_" + secrets.token_urlsafe(12)  # exempt from the rate limit, for tests that are not about it
LIMITS = {"max_head_bytes": 4096, "max_headers": 40, "head_timeout_s": 1.0, "body_timeout_s": 1.0}
MAX_BODY = 4096
MAX_DEPTH = 8


@dataclass
class Lab:
    dir: Path
    provider: Child
    receiver: Child
    provider_db: Path
    receiver_db: Path
    secret: str

    def published(self) -> int:
        con = sqlite3.connect(f"file:{self.provider_db}?mode=ro", uri=True)
        try:
            return int(con.execute("SELECT count(*) FROM events").fetchone()[0])
        finally:
            con.close()

    def recorded(self, consumer: str | None = None) -> list[int]:
        return [e for c, e, _ in records.load_events(str(self.receiver_db)) if consumer is None or c == consumer]

    def messages(self) -> list[str]:
        if not self.receiver_db.exists():
            return []
        con = sqlite3.connect(f"file:{self.receiver_db}?mode=ro", uri=True)
        try:
            return [r[0] for r in con.execute("SELECT webhook_id FROM messages")]
        except sqlite3.Error:
            return []
        finally:
            con.close()


@contextlib.contextmanager
def start_lab(work: Path) -> Iterator[Lab]:
    provider_db, receiver_db = work / "provider.db", work / "receiver.db"
    secret = new_secret()
    with ProcessGroup(work) as group:
        provider = group.start_server(
            "provider",
            "provider",
            {
                "db_path": str(provider_db),
                "api_keys": [KEY_A, KEY_B, FREE_KEY],
                "rate_limit_per_s": 1.0,
                "rate_limit_burst": 2,
                "key_rate_limits": {FREE_KEY: [0, 1]},
                "allowed_callback_hosts": ["127.0.0.1"],
                "max_body_bytes": MAX_BODY,
                "max_json_depth": MAX_DEPTH,
                "time_scale": 0.001,
                "limits": LIMITS,
            },
        )
        receiver = group.start_server(
            "receiver",
            "receiver",
            {"secrets": [secret], "db_path": str(receiver_db), "max_body_bytes": MAX_BODY, "limits": LIMITS},
        )
        yield Lab(work, provider, receiver, provider_db, receiver_db, secret)


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def signed(secret: str, msg_id: str, body: bytes, when: datetime | None = None) -> dict[str, str]:
    """Standard Webhooks headers made by the independent ``standardwebhooks`` package."""
    when = when or datetime.now(tz=UTC)
    signature = Webhook(secret).sign(msg_id, when, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def message(event_id: int) -> bytes:
    return (
        b'{"type":"order.updated","timestamp":"2024-01-01T00:00:00Z","data":{"id":%d,"type":"order.updated","created_ns":1,"payload":{}}}'
        % event_id
    )


def unique_id() -> int:
    return secrets.randbelow(2**40) + 1_000_000


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll until ``predicate`` is truthy; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    return predicate()


# -- raw sockets ---------------------------------------------------------------------------


def read_all(sock: socket.socket, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    out = b""
    with contextlib.suppress(ConnectionResetError, socket.timeout):
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
    return out


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` at once and read until the server closes (or 10 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        return read_all(sock)


def trickle(port: int, data: bytes, every_s: float = 0.05) -> tuple[int, bytes]:
    """Send ``data`` one byte at a time (slowloris) until the server answers or closes.

    Returns how many bytes went out before the server spoke, and what it said.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sent = 0
        for b in data:
            readable, _, _ = select.select([sock], [], [], every_s)
            if readable:
                break
            try:
                sock.sendall(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
        return sent, read_all(sock)


def idle(port: int) -> bytes:
    """Open a connection and send nothing."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        return read_all(sock, timeout=20)


# -- a webhook endpoint in a thread --------------------------------------------------------


@dataclass
class Captured:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class CaptureServer:
    """Answers 204 to everything and keeps each request (a real uvicorn: ``ServerThread``)."""

    received: list[Captured] = field(default_factory=list)
    serving: ServerThread | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.received.append(Captured(scope["path"], headers, body))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    @property
    def url(self) -> str:
        assert self.serving is not None, "use CaptureServer as a context manager"
        return self.serving.url

    @property
    def port(self) -> int:
        assert self.serving is not None, "use CaptureServer as a context manager"
        return self.serving.port

    def __enter__(self) -> CaptureServer:
        self.serving = ServerThread(self, loop="asyncio").start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.serving is not None
        self.serving.stop()
