"""The network profile's proxy in a process of its own, so the run's own work never delays a chunk.

In the run's process (a thread, or its event loop) the proxy shares the
interpreter with the publisher and the pipeline's reads, and on a loaded
machine each forwarded chunk waited for them: several milliseconds per
crossing. In its own process it is scheduled like the servers it sits between.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing as mp
from multiprocessing.connection import Connection
from typing import Any

import psutil

from labkit.errors import ServerError
from labkit.servers.netproxy import EMULATION, Impairment, NetProxy, applied_delays_ms

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


def _serve(host: str, port: int, impairment: Impairment, seed: int, conn: Connection) -> None:
    """The child: forward until the parent says stop (or goes away), then send the proxy's counters.

    One thread only: the stop message is watched by the event loop itself, so
    no second thread ever competes for the interpreter while chunks are due.
    """
    gc.freeze()  # what the fork inherited is never collected here: no full collection walks the parent's heap
    loop: asyncio.AbstractEventLoop
    try:
        import uvloop  # as the lab's servers use: timers and reads with less overhead

        loop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    proxy = NetProxy(host, port, impairment, seed=seed)
    conn.send(loop.run_until_complete(proxy.start()))
    loop.add_reader(conn.fileno(), loop.stop)  # "stop", or the parent gone (end of file): either is readable
    loop.run_forever()
    loop.remove_reader(conn.fileno())
    loop.run_until_complete(proxy.stop())
    with contextlib.suppress(OSError):
        conn.send(proxy.stats.snapshot(histograms=True))


class ProxyProcess:
    """A ``NetProxy`` in a child process: ``start`` (blocking) returns when it listens; ``stop`` returns its counters."""

    def __init__(self, target_host: str, target_port: int, impairment: Impairment, *, seed: int = 0) -> None:
        # fork: a spawned child would re-run the caller's main module (a script, a notebook); this one only builds a new loop
        ctx = mp.get_context("fork")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(target_host, target_port, impairment, seed, child), daemon=True)
        self.port = 0
        self.stats: dict[str, Any] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def cpu_s(self) -> float | None:
        """The child's CPU seconds so far (user + system), for a cost per unit of work that load does not distort."""
        if self._proc.pid is None or not self._proc.is_alive():
            return None
        try:
            t = psutil.Process(self._proc.pid).cpu_times()
        except psutil.Error:
            return None
        return float(t.user + t.system)

    def start(self) -> ProxyProcess:
        self._proc.start()
        if not self._conn.poll(START_TIMEOUT_S):
            self._proc.kill()
            raise ServerError(f"the network proxy did not start within {START_TIMEOUT_S:.0f} s")
        self.port = int(self._conn.recv())
        return self

    def stop(self) -> dict[str, Any]:
        if self._proc.is_alive():
            try:
                self._conn.send("stop")
                if self._conn.poll(STOP_TIMEOUT_S):
                    self.stats = dict(self._conn.recv())
            except (EOFError, OSError):
                pass
            self._proc.join(STOP_TIMEOUT_S)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(STOP_TIMEOUT_S)
        self._conn.close()
        return self.stats


def network_block(proxies: list[ProxyProcess]) -> dict[str, Any] | None:
    """The profile's proxies' counters (connections, bytes, stalls), summed over the hops, and the delay they added."""
    if not proxies:
        return None
    total: dict[str, Any] = {}
    for proxy in proxies:
        for k, v in proxy.stats.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.startswith("mean_"):
                total[k] = total.get(k, 0) + v
    # the delay really added to each chunk, per direction: the profile as applied, beside the profile declared
    added = applied_delays_ms([proxy.stats for proxy in proxies])
    return {"emulation": EMULATION, "hops": len(proxies), **total, "added_delay_ms": added}
