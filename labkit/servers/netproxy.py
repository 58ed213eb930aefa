"""A user-space TCP proxy on 127.0.0.1 that makes the network between two lab processes worse.

Failure runs put it between a consumer and the provider (the dispatcher ->
proxy -> receiver, or the poller -> proxy -> provider) to add:

- ``delay_ms`` one way, in each direction (so a round trip gains twice it);
- ``jitter_ms``: each chunk's delay varies uniformly by +/- this much, but a
  chunk never overtakes the one before it (TCP delivers in order);
- ``loss``: a share of chunks held back ``rto_ms`` more. A proxy above TCP
  cannot drop a segment and let the kernel retransmit it; what a consumer
  feels from a lost segment is the retransmission stall, and that is what is
  reproduced (Linux's minimum retransmission timeout is 200 ms);
- ``reset``: a share of chunks on which both connections are aborted with a
  TCP RST, as a middlebox or a crashed peer would.

This is not ``tc netem``: it needs no privileges and shapes whole reads
(up to 64 KiB) rather than packets, so results say "user-space proxy".
The proxy runs on the caller's event loop; ``active`` switches the
impairments on and off (a fault window) without touching connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Any

CHUNK = 64 * 1024
EMULATION = "user-space TCP proxy (labkit.servers.netproxy): per-chunk delay/jitter, loss as an RTO stall, resets as RST; not tc netem"


@dataclass(frozen=True)
class Impairment:
    """What the proxy does to traffic while active."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    rto_ms: float = 200.0
    reset: float = 0.0

    def __post_init__(self) -> None:
        if self.delay_ms < 0 or self.jitter_ms < 0 or self.rto_ms < 0:
            raise ValueError("delay_ms, jitter_ms and rto_ms must be >= 0")
        if not (0 <= self.loss <= 1 and 0 <= self.reset <= 1):
            raise ValueError("loss and reset are shares from 0 to 1")


@dataclass
class ProxyStats:
    """What the proxy did, for the results."""

    connections: int = 0
    chunks: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    stalled_chunks: int = 0
    resets: int = 0
    upstream_refused: int = 0
    added_delay_s: float = 0.0

    def snapshot(self) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "chunks": self.chunks,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "stalled_chunks": self.stalled_chunks,
            "resets": self.resets,
            "upstream_refused": self.upstream_refused,
            "mean_added_delay_ms": self.added_delay_s / self.chunks * 1000 if self.chunks else 0.0,
        }


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with an RST rather than a FIN (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass(eq=False)  # identity: links live in a set
class _Link:
    """One proxied connection: the two sockets and their pumps."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    aborted: bool = False

    def abort(self) -> None:
        if not self.aborted:
            self.aborted = True
            _abort(self.client)
            _abort(self.upstream)


class NetProxy:
    """Listens on 127.0.0.1 and forwards every connection to ``target``, impaired while ``active``."""

    def __init__(self, target_host: str, target_port: int, impairment: Impairment, *, seed: int = 0, active: bool = True) -> None:
        self.target = (target_host, target_port)
        self.impairment = impairment
        self.active = active
        self.stats = ProxyStats()
        self._rng = random.Random(seed)
        self._server: asyncio.base_events.Server | None = None
        self._links: set[_Link] = set()
        self.port = 0

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            for t in link.tasks:
                t.cancel()
            link.abort()
        for link in list(self._links):
            await asyncio.gather(*link.tasks, return_exceptions=True)
        self._links.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self.stats.upstream_refused += 1
            _abort(writer)  # the far side is down: the client sees a reset, as it would directly
            return
        for w in (writer, up_writer):
            sock = w.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(writer, up_writer)
        self._links.add(link)
        link.tasks = [
            asyncio.create_task(self._pump(link, reader, up_writer, up=True)),
            asyncio.create_task(self._pump(link, up_reader, writer, up=False)),
        ]
        try:
            await asyncio.gather(*link.tasks, return_exceptions=True)
        finally:
            self._links.discard(link)
            for w in (writer, up_writer):
                if not link.aborted:
                    with contextlib.suppress(Exception):
                        w.close()

    def _delay_s(self) -> tuple[float, bool, bool]:
        """(delay for this chunk, stalled as lost, reset here)."""
        imp = self.impairment
        if not self.active:
            return 0.0, False, False
        rng = self._rng
        delay = imp.delay_ms + (rng.uniform(-imp.jitter_ms, imp.jitter_ms) if imp.jitter_ms else 0.0)
        lost = imp.loss > 0 and rng.random() < imp.loss
        if lost:
            delay += imp.rto_ms
        reset = imp.reset > 0 and rng.random() < imp.reset
        return max(delay, 0.0) / 1000, lost, reset

    async def _pump(self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, up: bool) -> None:
        """Read chunks, give each its due time, write them in order when due."""
        loop = asyncio.get_running_loop()
        queue: deque[tuple[float, bytes | None]] = deque()
        ready = asyncio.Event()
        last_due = 0.0

        async def deliver() -> None:
            while True:
                while not queue:
                    ready.clear()
                    await ready.wait()
                due, data = queue.popleft()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    with contextlib.suppress(OSError, RuntimeError):
                        if writer.can_write_eof():
                            writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(deliver())
        try:
            while True:
                data = await reader.read(CHUNK)
                now = loop.time()
                if not data:
                    queue.append((max(last_due, now), None))
                    ready.set()
                    break
                delay, lost, reset = self._delay_s()
                st = self.stats
                st.chunks += 1
                st.added_delay_s += delay
                if up:
                    st.bytes_up += len(data)
                else:
                    st.bytes_down += len(data)
                if lost:
                    st.stalled_chunks += 1
                if reset:
                    st.resets += 1
                    link.abort()
                    return
                last_due = max(last_due, now + delay)
                queue.append((last_due, data))
                ready.set()
            await sender
        except (ConnectionError, OSError):
            link.abort()
        finally:
            if not sender.done():
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sender
