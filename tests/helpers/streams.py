"""A real provider process (uvicorn on 127.0.0.1) and small SSE / WebSocket test clients.

The ``lab`` fixture (tests/conftest.py) hands a test a ``Lab`` in its own directory.

The test clients are independent of the fleet's readers: httpx with a plain
line parser for SSE, and the ``websockets`` sync client for WebSocket.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from labkit.servers.procs import Child, ProcessGroup

KEY = "lab-key"
AUTH = {"authorization": f"Bearer {KEY}"}


@dataclass
class Lab:
    """A process group in the test's directory, with a way to start providers and publish."""

    group: ProcessGroup
    work: Path

    def provider(self, name: str = "provider", port: int = 0, **streams: Any) -> Child:
        settings = {"db_path": str(self.work / f"{name}.db"), "rate_limit_per_s": 0, "streams": streams}
        return self.group.start_server(name, "provider", settings, port=port)

    def restart(self, child: Child, name: str, **streams: Any) -> Child:
        """SIGKILL ``child`` and start a provider on the same port and database."""
        self.group.kill(child)
        settings = {"db_path": str(self.work / f"{child.name}.db"), "rate_limit_per_s": 0, "streams": streams}
        return self.group.start_server(name, "provider", settings, port=child.port or 0)

    @staticmethod
    def publish(url: str, count: int, type_: str = "order.updated", pad: int = 0) -> list[int]:
        ids = []
        with httpx.Client(base_url=url, headers=AUTH, timeout=10.0) as c:
            for i in range(count):
                r = c.post("/events", json={"type": type_, "payload": {"i": i, "pad": "x" * pad}})
                assert r.status_code == 201, r.text
                ids.append(r.json()["id"])
        return ids

    @staticmethod
    def stats(url: str) -> dict[str, Any]:
        with httpx.Client(base_url=url, headers=AUTH, timeout=10.0) as c:
            return c.get("/stats").json()


@dataclass
class Frame:
    """One SSE event or comment as a client sees it."""

    id: str | None = None
    event: str | None = None
    data: list[str] = field(default_factory=list)
    retry: int | None = None
    comment: str | None = None

    def json(self) -> Any:
        return orjson.loads("\n".join(self.data))


def read_sse(lines: Iterator[str], until: Callable[[list[Frame]], bool], timeout_s: float = 10.0) -> list[Frame]:
    """Frames from a response's ``iter_lines()`` until ``until(frames)`` holds (or the stream ends, or time runs out)."""
    frames: list[Frame] = []
    current = Frame()
    deadline = time.monotonic() + timeout_s
    for line in lines:
        if line == "":
            if current != Frame():
                frames.append(current)
            current = Frame()
            if until(frames) or time.monotonic() > deadline:
                break
            continue
        if line.startswith(":"):
            current.comment = line[1:].strip()
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            current.data.append(value)
        elif name in ("id", "event"):
            setattr(current, name, value)
        elif name == "retry":
            current.retry = int(value)
    return frames


def events(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if f.data]
