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

``Impairment.from_profile`` builds all of this from a ``labkit.config.network``
profile (one-way delay = rtt / 2 each way), and ``ProxyThread`` runs a proxy
on its own event loop for callers that are not async.

This is not ``tc netem`` (which this lab's kernel may not even have): it needs
no privileges and shapes whole reads (up to 256 KiB) rather than packets, so
results say "user-space proxy".
The proxy runs on the caller's event loop; ``active`` switches the
impairments on and off (a fault window) without touching connections.

Each connection is a pair of protocols, one per socket (``_Side``), and one
code path serves every impairment: a read that is due now with nothing
queued ahead of it is written to the other socket in the same callback (no
task, queue or timer); a delayed one joins its direction's queue, served by
one timer armed for the queue's head. With nothing to impair, or the proxy
inactive, every read takes the first branch; its cost is then that of any
user-space hop (a process wake-up and a read and a write per crossing),
which ``labkit bench``'s ``proxy_cost`` measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from hdrh.histogram import HdrHistogram

from labkit.wire.metering import histogram_summary_ms, new_histogram, record_us

if TYPE_CHECKING:
    from labkit.config.network import NetworkProfile

SLICE_S = 0.002  # a rate-limited chunk leaves in slices of this much link time (and at least MIN_SLICE bytes)
MIN_SLICE = 1460
MAX_QUEUED = 1024 * 1024  # bytes held per direction before the proxy stops reading (flow control)
DUE_SLACK_S = 0.0005  # a chunk this close to due is written now: the loop's timers keep whole milliseconds
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
    # The delay each impaired chunk really got, read to write (us), per direction: the profile as applied.
    delay_up: HdrHistogram = field(default_factory=new_histogram)
    delay_down: HdrHistogram = field(default_factory=new_histogram)

    def applied(self, up: bool, seconds: float) -> None:
        record_us(self.delay_up if up else self.delay_down, seconds * 1e6)

    def snapshot(self, *, histograms: bool = False) -> dict[str, Any]:
        """The counters; ``histograms`` adds the encoded delay histograms (for merging the hops of a run)."""
        out = {
            "connections": self.connections,
            "chunks": self.chunks,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "stalled_chunks": self.stalled_chunks,
            "resets": self.resets,
            "upstream_refused": self.upstream_refused,
            "mean_added_delay_ms": self.added_delay_s / self.chunks * 1000 if self.chunks else 0.0,
            "added_delay_ms": {"up": delay_summary_ms(self.delay_up), "down": delay_summary_ms(self.delay_down)},
        }
        if histograms:
            out["added_delay_hdr"] = {"up": self.delay_up.encode().decode("ascii"), "down": self.delay_down.encode().decode("ascii")}
        return out


def applied_delays_ms(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """The delay the proxies of a run added, per direction (mean, p50, p99, max, chunks), merged exactly over the hops."""
    out: dict[str, Any] = {}
    for direction in ("up", "down"):
        hist = new_histogram()
        for snap in snapshots:
            encoded = (snap.get("added_delay_hdr") or {}).get(direction)
            if encoded:
                hist.add(HdrHistogram.decode(encoded))
        out[direction] = delay_summary_ms(hist)
    return out


def delay_summary_ms(hist: HdrHistogram) -> dict[str, Any]:
    """mean, p50, p99, max (ms) and the chunks counted, of one direction's applied delays."""
    return {**histogram_summary_ms(hist), "chunks": hist.get_total_count()}


def _abort(transport: asyncio.BaseTransport) -> None:
    """Close with an RST rather than a FIN (SO_LINGER 0)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    cast(asyncio.Transport, transport).abort()


def _nodelay(transport: asyncio.Transport) -> None:
    """Small writes leave at once (no Nagle wait for the peer's ACK): the proxy must not batch a request."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Side(asyncio.Protocol):
    """One socket of a proxied connection: what it reads is given its due time and written to the other socket then.

    A chunk due now with nothing queued ahead of it (no impairment, or the
    proxy inactive) is written in the same callback: no task, queue or timer.
    Otherwise it joins this side's queue (in order: a chunk never overtakes
    the one before it, as TCP delivers in order) and one timer, armed for the
    head of the queue, writes whatever is due. Flow control: this side stops
    reading while more than ``MAX_QUEUED`` bytes wait in its queue, or while
    the other socket's write buffer is full (TCP then pushes back on the
    sender).
    """

    def __init__(self, proxy: NetProxy, up: bool, opened: Callable[[_Side], None] | None = None) -> None:
        self.proxy = proxy
        self.up = up  # reads what the connecting side sends
        self.opened = opened
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.early: list[bytes] = []  # read before the far side was connected (reading is paused then, so rarely any)
        self.queue: deque[tuple[float, bytes | None, float]] = deque()  # (due, chunk, read at), None for the FIN
        self.queued = 0
        self.timer: asyncio.TimerHandle | None = None
        self.last_due = 0.0
        self.link_free = 0.0  # when the rate-limited link has sent what is queued
        self.first = up  # a new connection's first chunk up also carries TCP's handshake round trip
        self.held = {"queue": False, "peer": False}  # why reading is paused
        self.closed = False  # this socket is gone
        self.fin_passed = False  # its FIN has reached the other socket

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        _nodelay(self.transport)
        self.proxy.sides.add(self)
        if self.opened is not None:
            self.transport.pause_reading()
            self.opened(self)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            self.early.append(data)
            return
        if peer.closed or peer.transport.is_closing():  # the other side is gone: no one to hand this to
            return
        proxy = self.proxy
        st = proxy.stats
        st.chunks += 1
        if self.up:
            st.bytes_up += len(data)
        else:
            st.bytes_down += len(data)
        if (proxy.noop or not proxy.active) and not self.queue:
            self.first = False
            peer.transport.write(data)  # due now, nothing ahead of it: the straight-through path
            return
        self._impair(data, peer)

    def eof_received(self) -> bool:
        """Pass the FIN on after what was read before it; keep the other direction open until it ends too."""
        if self.queue:
            self.queue.append((self.last_due, None, 0.0))
            self._arm()
        else:
            self._pass_fin()
        return True

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.hold("peer", True)

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.hold("peer", False)

    def connection_lost(self, exc: Exception | None) -> None:
        """A reset passes on as a reset; a close as a close, once what this side read has been delivered."""
        self.closed = True
        self.proxy.sides.discard(self)
        peer = self.peer
        if peer is None:
            return
        peer.drop_queue()  # nothing more can reach this socket
        if peer.transport is None or peer.closed:
            self.drop_queue()
        elif exc is not None:
            self.drop_queue()
            _abort(peer.transport)
        elif not self.queue and self.timer is None:
            peer.transport.close()

    # -- the impaired path --

    def _impair(self, data: bytes, peer: _Side) -> None:
        proxy = self.proxy
        imp = proxy.impairment
        delay, lost, reset = proxy.chunk_fate()
        if self.first and proxy.active and imp.handshake:
            delay += 2 * imp.delay_ms / 1000  # TCP's SYN, SYN-ACK
        self.first = False
        st = proxy.stats
        st.added_delay_s += delay
        if lost:
            st.stalled_chunks += 1
        if reset:
            st.resets += 1
            self.abort_both()
            return
        rate = imp.rate_bps(self.up) if proxy.active else None
        if delay == 0 and rate is None and not self.queue:
            assert peer.transport is not None
            peer.transport.write(data)
            st.applied(self.up, 0.0)
            return
        now = asyncio.get_running_loop().time()
        parts, self.link_free = slices(data, now, delay, self.link_free, rate)
        for due, piece in parts:
            self.last_due = max(self.last_due, due)  # never overtake the chunk before (TCP is in order)
            self.queue.append((self.last_due, piece, now))
        self.queued += len(data)
        if self.queued > MAX_QUEUED:
            self.hold("queue", True)
        self._arm()

    def _arm(self) -> None:
        if self.timer is None and self.queue:
            self.timer = asyncio.get_running_loop().call_at(self.queue[0][0], self._flush)

    def _flush(self) -> None:
        """Write every chunk that is due (within the loop's clock resolution), then arm for the next."""
        self.timer = None
        peer = self.peer
        if peer is None or peer.transport is None:
            return
        clock = asyncio.get_running_loop().time()
        now = clock + DUE_SLACK_S
        stats = self.proxy.stats
        while self.queue and self.queue[0][0] <= now:
            _, data, read_at = self.queue.popleft()
            if data is None:
                self._pass_fin()
                continue
            self.queued -= len(data)
            if not peer.closed and not peer.transport.is_closing():
                peer.transport.write(data)
                stats.applied(self.up, clock - read_at)
        if self.queued <= MAX_QUEUED:
            self.hold("queue", False)
        if self.queue:
            self._arm()
        elif self.closed and not peer.closed:
            peer.transport.close()  # this socket closed after its last chunk: the close follows it

    def _pass_fin(self) -> None:
        self.fin_passed = True
        peer = self.peer
        if peer is None or peer.transport is None or peer.closed:
            return
        if peer.fin_passed:  # both directions have ended
            peer.transport.close()
            if self.transport is not None:
                self.transport.close()
            return
        with contextlib.suppress(OSError, RuntimeError):
            if peer.transport.can_write_eof():
                peer.transport.write_eof()

    # -- used by the other side and the proxy --

    def hold(self, why: str, on: bool) -> None:
        """Pause reading for ``why`` (or stop pausing for it); read again once no reason is left."""
        if self.held[why] == on or self.transport is None or self.transport.is_closing():
            self.held[why] = on
            return
        self.held[why] = on
        if on:
            self.transport.pause_reading()
        elif not any(self.held.values()):
            self.transport.resume_reading()

    def drop_queue(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()
        self.queued = 0

    def abort_both(self) -> None:
        """Both connections cut with an RST, as a middlebox or a crashed peer would."""
        for side in (self, self.peer):
            if side is not None:
                side.drop_queue()
                if side.transport is not None and not side.closed:
                    _abort(side.transport)


def slices(data: bytes, now: float, delay: float, link_free: float, rate: float | None) -> tuple[list[tuple[float, bytes]], float]:
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


class NetProxy:
    """Listens on 127.0.0.1 and forwards every connection to ``target``, impaired while ``active``."""

    def __init__(self, target_host: str, target_port: int, impairment: Impairment, *, seed: int = 0, active: bool = True) -> None:
        self.target = (target_host, target_port)
        self.impairment = impairment
        self.noop = impairment.is_noop
        self.active = active
        self.stats = ProxyStats()
        self.sides: set[_Side] = set()  # every open socket of every link
        self._rng = random.Random(seed)
        self._server: asyncio.base_events.Server | None = None
        self._connecting: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self, port: int = 0) -> int:
        """Listen; each connection becomes a pair of protocols (``_Side``) once the far side is connected."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._accepted, "127.0.0.1", port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        """Stop listening and cut every open connection (an RST, as a dead middlebox would)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connecting):
            task.cancel()
        await asyncio.gather(*self._connecting, return_exceptions=True)
        for side in list(self.sides):
            side.drop_queue()
            if side.transport is not None and not side.closed:
                _abort(side.transport)
        self.sides.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    def chunk_fate(self) -> tuple[float, bool, bool]:
        """(delay for this chunk in seconds, stalled as lost, reset here)."""
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

    def _accepted(self) -> _Side:
        """The client side of a new link; it reads nothing until the far side is connected."""
        return _Side(self, up=True, opened=self._opened)

    def _opened(self, client: _Side) -> None:
        self.stats.connections += 1
        task = asyncio.get_running_loop().create_task(self._connect_through(client))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect_through(self, client: _Side) -> None:
        assert client.transport is not None
        far = _Side(self, up=False)
        try:
            await asyncio.get_running_loop().create_connection(lambda: far, *self.target)
        except OSError:
            self.stats.upstream_refused += 1
            _abort(client.transport)  # the far side is down: the client sees a reset, as it would directly
            return
        assert far.transport is not None
        if client.closed:
            far.transport.close()
            return
        client.peer, far.peer = far, client
        for side in (client, far):  # what either read before the pair was joined goes first
            early, side.early = side.early, []
            for data in early:
                side.data_received(data)
        if not any(client.held.values()):
            client.transport.resume_reading()


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
