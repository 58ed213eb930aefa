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
  TCP RST, as a middlebox or a crashed peer would;
- ``rate_up_bps`` / ``rate_down_bps``: a bandwidth limit per direction and per
  connection (a token bucket on bytes that holds one slice): a chunk leaves
  only when the link has sent the chunks before it, so ``n`` bytes take
  ``n * 8 / rate`` seconds plus the delay. Up is from the connecting side
  (a poller, the dispatcher) to the listening one;
- ``handshake``: the client's connection to the proxy completes at once on
  loopback, so TCP's handshake round trip is added instead to the first chunk
  a new connection sends up (it arrives when it would have, had the client
  waited for the SYN-ACK). TLS handshakes are data and are delayed as such.

``Impairment.from_profile`` builds all of this from a ``labkit.network``
profile (one-way delay = rtt / 2 each way), and ``ProxyThread`` runs a proxy
on its own event loop for callers that are not async.

This is not ``tc netem``: it needs no privileges and shapes whole reads
(up to 64 KiB) rather than packets, so results say "user-space proxy".
The proxy runs on the caller's event loop; ``active`` switches the
impairments on and off (a fault window) without touching connections.

An impairment that does nothing (``Impairment().is_noop``) gets a
straight-through path: a pair of protocols that write each read to the other
socket in the same callback, with no task, queue or timer, and the
transports' own flow control. Its cost is then that of any user-space hop
(two more process wake-ups per exchange), which ``labkit bench``'s
``proxy_cost`` measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from labkit.network import NetworkProfile

CHUNK = 64 * 1024
SLICE_S = 0.002  # a rate-limited chunk leaves in slices of this much link time (and at least MIN_SLICE bytes)
MIN_SLICE = 1460
MAX_QUEUED = 1024 * 1024  # bytes held per direction before the proxy stops reading (flow control)
EMULATION = "user-space TCP proxy (labkit.servers.netproxy): per-chunk delay/jitter, loss as an RTO stall, resets as RST; not tc netem"


@dataclass(frozen=True)
class Impairment:
    """What the proxy does to traffic while active."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    rto_ms: float = 200.0
    reset: float = 0.0
    rate_up_bps: float | None = None
    rate_down_bps: float | None = None
    handshake: bool = False

    def __post_init__(self) -> None:
        if self.delay_ms < 0 or self.jitter_ms < 0 or self.rto_ms < 0:
            raise ValueError("delay_ms, jitter_ms and rto_ms must be >= 0")
        if not (0 <= self.loss <= 1 and 0 <= self.reset <= 1):
            raise ValueError("loss and reset are shares from 0 to 1")
        if any(r is not None and r <= 0 for r in (self.rate_up_bps, self.rate_down_bps)):
            raise ValueError("rate_up_bps and rate_down_bps are positive, or None for no limit")

    @classmethod
    def from_profile(cls, profile: NetworkProfile) -> Impairment:
        """The proxy's settings for a network profile: half the round trip each way, its jitter, loss and rates."""
        return cls(
            delay_ms=profile.rtt_ms / 2,
            jitter_ms=profile.jitter_ms,
            loss=profile.loss,
            rto_ms=profile.rto_ms,
            rate_up_bps=profile.rate_up_bps,
            rate_down_bps=profile.rate_down_bps,
            handshake=profile.rtt_ms > 0,
        )

    def rate_bps(self, up: bool) -> float | None:
        """The bandwidth limit of one direction (None: unlimited)."""
        return self.rate_up_bps if up else self.rate_down_bps

    @property
    def is_noop(self) -> bool:
        """Nothing to do to any chunk, active or not: the proxy may pass bytes straight through."""
        return (
            self.delay_ms == 0
            and self.jitter_ms == 0
            and self.loss == 0
            and self.reset == 0
            and self.rate_up_bps is None
            and self.rate_down_bps is None
            and not self.handshake
        )


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


def _abort(writer: asyncio.StreamWriter | asyncio.WriteTransport) -> None:
    """Close with an RST rather than a FIN (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport = writer.transport if isinstance(writer, asyncio.StreamWriter) else writer
    transport.abort()


def _nodelay(transport: asyncio.Transport) -> None:
    """Small writes leave at once (no Nagle wait for the peer's ACK): the proxy must not batch a request."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


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


class _Side(asyncio.Protocol):
    """One socket of a straight-through link: each read goes to the other socket as it arrives, no timer, no queue.

    Flow control is the transports' own: when the other socket's write buffer
    is full, this one stops reading (and TCP pushes back on its sender).
    """

    def __init__(self, stats: ProxyStats, up: bool, opened: Callable[[_Side], None] | None = None) -> None:
        self.stats = stats
        self.up = up  # reads what the connecting side sends
        self.opened = opened
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.early: list[bytes] = []  # read before the far side was connected (reading is paused then, so rarely any)
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        _nodelay(self.transport)
        if self.opened is not None:
            self.transport.pause_reading()
            self.opened(self)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            self.early.append(data)
            return
        if peer.transport.is_closing():  # the other side is gone: there is no one to hand this to
            return
        st = self.stats
        st.chunks += 1
        if self.up:
            st.bytes_up += len(data)
        else:
            st.bytes_down += len(data)
        peer.transport.write(data)

    def eof_received(self) -> bool:
        """Pass the FIN on; keep the other direction open until it ends too."""
        self.eof = True
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            if peer.eof:
                peer.transport.close()
                return False
            with contextlib.suppress(OSError, RuntimeError):
                if peer.transport.can_write_eof():
                    peer.transport.write_eof()
        return True

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None and not self.peer.transport.is_closing():
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        """A reset passes on as a reset; a close as a close, once what is buffered for the peer has left."""
        peer = self.peer
        if peer is None or peer.transport is None or peer.transport.is_closing():
            return
        if exc is not None:
            _abort(peer.transport)
        else:
            peer.transport.close()


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
        self._sides: weakref.WeakSet[_Side] = weakref.WeakSet()  # open straight-through links, by their client side
        self._connecting: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self, port: int = 0) -> int:
        """Listen; with nothing to impair, each connection is a straight-through pair of protocols (the cheapest path)."""
        if self.impairment.is_noop:
            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(self._passthrough, "127.0.0.1", port, reuse_address=True)
        else:
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
        for task in list(self._connecting):
            task.cancel()
        await asyncio.gather(*self._connecting, return_exceptions=True)
        for side in list(self._sides):
            for tr in (side.transport, side.peer.transport if side.peer else None):
                if tr is not None and not tr.is_closing():
                    _abort(tr)
        self._sides.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    def _passthrough(self) -> _Side:
        """The client side of a new straight-through link; it reads nothing until the far side is connected."""
        return _Side(self.stats, up=True, opened=self._opened)

    def _opened(self, client: _Side) -> None:
        self.stats.connections += 1
        task = asyncio.get_running_loop().create_task(self._connect_through(client))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect_through(self, client: _Side) -> None:
        assert client.transport is not None
        far = _Side(self.stats, up=False)
        try:
            await asyncio.get_running_loop().create_connection(lambda: far, *self.target)
        except OSError:
            self.stats.upstream_refused += 1
            _abort(client.transport)  # the far side is down: the client sees a reset, as it would directly
            return
        assert far.transport is not None
        if client.transport.is_closing():
            far.transport.close()
            return
        client.peer, far.peer = far, client
        self._sides.add(client)
        for data in client.early:
            client.data_received(data)
        client.early.clear()
        client.transport.resume_reading()

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

    def _slices(
        self, data: bytes, now: float, delay: float, link_free: float, rate: float | None
    ) -> tuple[list[tuple[float, bytes]], float]:
        """When each part of a chunk is due: after the link has sent it (at ``rate``) and the delay has passed."""
        if not rate:
            return [(now + delay, data)], link_free
        size = max(MIN_SLICE, int(rate / 8 * SLICE_S))
        out = []
        for i in range(0, len(data), size):
            piece = data[i : i + size]
            link_free = max(link_free, now) + len(piece) * 8 / rate
            out.append((link_free + delay, piece))
        return out, link_free

    async def _pump(self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, up: bool) -> None:
        """Read chunks, give each its due time (delay, and the link's rate), write them in order when due."""
        loop = asyncio.get_running_loop()
        queue: deque[tuple[float, bytes | None]] = deque()
        ready = asyncio.Event()
        space = asyncio.Event()
        queued = 0
        last_due = 0.0
        link_free = 0.0
        first = up

        async def deliver() -> None:
            nonlocal queued
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
                queued -= len(data)
                if queued <= MAX_QUEUED:
                    space.set()

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
                if first and self.active and self.impairment.handshake:
                    delay += 2 * self.impairment.delay_ms / 1000  # TCP's SYN, SYN-ACK
                first = False
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
                rate = self.impairment.rate_bps(up) if self.active else None
                if delay == 0 and rate is None and queued == 0:
                    writer.write(data)  # due now and nothing ahead of it: no hop through the delivering task
                    await writer.drain()
                    continue
                parts, link_free = self._slices(data, now, delay, link_free, rate)
                for due, piece in parts:
                    last_due = max(last_due, due)  # never overtake the chunk before (TCP is in order)
                    queue.append((last_due, piece))
                queued += len(data)
                ready.set()
                while queued > MAX_QUEUED and not sender.done():
                    space.clear()
                    await space.wait()
            await sender
        except (ConnectionError, OSError):
            link.abort()
        finally:
            if not sender.done():
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sender


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed (as the lab's servers use): less CPU per forwarded chunk."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class ProxyThread:
    """A ``NetProxy`` on its own event loop in a thread, for callers that are not async (benchmarks, sync runners).

    ``with ProxyThread(host, port, impairment) as proxy: ... proxy.url``; leaving
    the block stops the proxy and its thread, also on an error.
    """

    def __init__(self, target_host: str, target_port: int, impairment: Impairment, *, seed: int = 0) -> None:
        self.proxy = NetProxy(target_host, target_port, impairment, seed=seed)
        self._loop = _new_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="labkit-netproxy", daemon=True)

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def port(self) -> int:
        return self.proxy.port

    def start(self) -> ProxyThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.proxy.stop(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> ProxyThread:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
