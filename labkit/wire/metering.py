"""Clocks, bytes on the wire, latency histograms and CPU.

Bytes are counted where they cross the socket, not reconstructed from
headers: servers run a uvicorn protocol whose transport counts every byte in
and out, labkit's own client core (labkit.wire.httpclient) counts in its
protocol, and httpx clients use an httpcore network backend that does the same.
Both include request lines, headers, bodies and chunk framing, both directions.
"""

from __future__ import annotations

import asyncio
import os
import resource
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar, cast

import httpcore
import httpx
from hdrh.histogram import HdrHistogram

# Latencies are kept in microseconds, from 1 us to 1 h, 3 significant digits.
HIST_MIN_US = 1
HIST_MAX_US = 3_600_000_000
HIST_DIGITS = 3


def now_ns() -> int:
    """Wall-clock nanoseconds: comparable across processes on one host."""
    return time.time_ns()


@dataclass
class WireCounter:
    """Bytes and connections seen on one side of some HTTP traffic."""

    bytes_in: int = 0
    bytes_out: int = 0
    connections: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def bytes_total(self) -> int:
        return self.bytes_in + self.bytes_out

    def snapshot(self) -> dict[str, int]:
        return {"bytes_in": self.bytes_in, "bytes_out": self.bytes_out, "connections": self.connections}


# The counter of the server in this process (one server per process).
SERVER_WIRE = WireCounter()


class _CountingTransport:
    """Wraps an asyncio transport and counts what is written through it."""

    def __init__(self, inner: Any, counter: WireCounter) -> None:
        self._inner = inner
        self._counter = counter

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._counter.bytes_out += len(data)
        self._inner.write(data)

    def writelines(self, chunks: Any) -> None:
        for c in chunks:
            self.write(c)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


P = TypeVar("P", bound=asyncio.BaseProtocol)


def counting(base: type[P], counter: WireCounter) -> type[P]:
    """A subclass of the asyncio protocol ``base`` that counts its connections and the bytes both ways in ``counter``."""

    class Counting(base):  # type: ignore[valid-type, misc]
        def connection_made(self, transport: Any) -> None:
            counter.connections += 1
            super().connection_made(cast(asyncio.Transport, _CountingTransport(transport, counter)))

        def data_received(self, data: bytes) -> None:
            counter.bytes_in += len(data)
            super().data_received(data)

    return cast(type[P], Counting)


def counting_protocol_class() -> type:
    """A uvicorn HTTP protocol (httptools when installed) that counts wire bytes in ``SERVER_WIRE``."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]
    return counting(Base, SERVER_WIRE)


class _CountingStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, counter: WireCounter) -> None:
        self._inner = inner
        self._counter = counter

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = await self._inner.read(max_bytes, timeout)
        self._counter.bytes_in += len(data)
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._counter.bytes_out += len(buffer)
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _CountingStream(await self._inner.start_tls(ssl_context, server_hostname, timeout), self._counter)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _CountingBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, inner: httpcore.AsyncNetworkBackend, counter: WireCounter) -> None:
        self._inner = inner
        self._counter = counter

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        self._counter.connections += 1
        return _CountingStream(stream, self._counter)

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_unix_socket(path, timeout, socket_options)
        self._counter.connections += 1
        return _CountingStream(stream, self._counter)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def counting_client(
    counter: WireCounter,
    *,
    concurrency: int = 100,
    timeout: float = 15.0,
    base_url: str = "",
    headers: dict[str, str] | None = None,
    verify: Any = True,
) -> httpx.AsyncClient:
    """One long-lived httpx client whose pool is sized to the concurrency and counts wire bytes."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=60)
    transport = httpx.AsyncHTTPTransport(limits=limits, verify=verify)
    # httpx does not expose the network backend; httpcore's pool takes one, so wrap it there.
    pool = transport._pool
    pool._network_backend = _CountingBackend(pool._network_backend, counter)
    return httpx.AsyncClient(transport=transport, timeout=timeout, base_url=base_url, headers=headers, follow_redirects=False)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(HIST_MIN_US, HIST_MAX_US, HIST_DIGITS)


def record_us(hist: HdrHistogram, value_us: float) -> None:
    hist.record_value(min(max(int(value_us), HIST_MIN_US), HIST_MAX_US))


def histogram_summary_ms(hist: HdrHistogram) -> dict[str, float | None]:
    """mean, p50, p90, p99, max in milliseconds (None when empty)."""
    if hist.get_total_count() == 0:
        return {"mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    return {
        "mean": hist.get_mean_value() / 1000,
        "p50": hist.get_value_at_percentile(50) / 1000,
        "p90": hist.get_value_at_percentile(90) / 1000,
        "p99": hist.get_value_at_percentile(99) / 1000,
        "max": hist.get_max_value() / 1000,
    }


def process_cpu_s() -> float:
    """CPU seconds (user + system) this process has used."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@dataclass
class ProcessStats:
    """What a server or consumer process reports about itself."""

    role: str
    pid: int = field(default_factory=os.getpid)
    cpu_s: float = 0.0
    wire: dict[str, int] = field(default_factory=dict)
    counters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
