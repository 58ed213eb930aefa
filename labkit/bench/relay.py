"""The simplest relays this machine can run: the floor the network proxy's own cost is judged against.

A user-space hop costs every request and response one more process wake-up
and two more loopback crossings, whatever the hop does. How much that is
depends on the machine (on a VM whose idle vCPUs halt, a wake-up is
expensive), so ``labkit bench`` measures the proxy beside relays that do
nothing else, in the same run:

- ``BareRelay``: a forked process with one ``select.epoll`` loop that reads a
  socket and writes what it read to the other one, nothing more (no timers,
  no queues, no counters);
- ``SocatRelay``: ``socat`` (C, a process per connection), when it is installed.

Both bind 127.0.0.1 only, set TCP_NODELAY as the proxy does, and stop with
the bench (also on an error: the caller stops them in ``finally``).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import select
import shutil
import socket
import subprocess
import time
from multiprocessing.connection import Connection
from typing import Any

import psutil

from labkit.errors import ServerError

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
READ_BYTES = 256 * 1024


def _nodelay(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _relay_loop(target_port: int, conn: Connection) -> None:
    """The child: accept, connect through, and copy bytes both ways until the parent says stop (or goes away)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    conn.send(listener.getsockname()[1])
    ep = select.epoll()
    ep.register(listener.fileno(), select.EPOLLIN)
    ep.register(conn.fileno(), select.EPOLLIN)
    pairs: dict[int, tuple[socket.socket, socket.socket]] = {}

    def close(fd: int) -> None:
        a, b = pairs.pop(fd)
        pairs.pop(b.fileno(), None)
        for s in (a, b):
            with contextlib.suppress(OSError):
                ep.unregister(s.fileno())
            s.close()

    while True:
        for fd, _ in ep.poll():
            if fd == conn.fileno():
                return  # "stop", or the parent is gone (end of file): either is readable
            if fd == listener.fileno():
                client, _ = listener.accept()
                try:
                    upstream = socket.create_connection(("127.0.0.1", target_port))
                except OSError:
                    client.close()
                    continue
                for s in (client, upstream):
                    _nodelay(s)
                    ep.register(s.fileno(), select.EPOLLIN)
                pairs[client.fileno()], pairs[upstream.fileno()] = (client, upstream), (upstream, client)
                continue
            if fd not in pairs:
                continue
            src, dst = pairs[fd]
            try:
                data = src.recv(READ_BYTES)
                if data:
                    dst.sendall(data)
                    continue
            except OSError:
                pass
            close(fd)


class BareRelay:
    """A bare epoll relay in a forked process: ``start`` returns when it listens, ``stop`` ends it."""

    where = "bare relay: one select.epoll loop in a process of its own (Python), read and write, nothing else"

    def __init__(self, target_port: int) -> None:
        ctx = mp.get_context("fork")  # as ProxyProcess: a spawned child would re-run the caller's main module
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_relay_loop, args=(target_port, child), daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> BareRelay:
        self._proc.start()
        if not self._conn.poll(START_TIMEOUT_S):
            self.stop()
            raise ServerError(f"the bare relay did not start within {START_TIMEOUT_S:.0f} s")
        self.port = int(self._conn.recv())
        return self

    def cpu_s(self) -> float | None:
        return _cpu_s(self._proc.pid)

    def stop(self) -> None:
        if self._proc.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send("stop")
            self._proc.join(STOP_TIMEOUT_S)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(STOP_TIMEOUT_S)
        self._conn.close()


class SocatRelay:
    """``socat`` between 127.0.0.1:<port> and the target, a process per connection; only when it is installed."""

    where = "socat (C): TCP-LISTEN on 127.0.0.1 with fork, TCP_NODELAY both ways"

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def installed() -> bool:
        return shutil.which("socat") is not None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SocatRelay:
        exe = shutil.which("socat")
        if exe is None:
            raise ServerError("socat is not installed")
        with socket.socket() as probe:  # a free port for socat to listen on
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        listen = f"TCP-LISTEN:{self.port},bind=127.0.0.1,reuseaddr,fork,nodelay"
        self._proc = subprocess.Popen(
            [exe, listen, f"TCP:127.0.0.1:{self.target_port},nodelay"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServerError(f"socat exited at start (code {self._proc.returncode})")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return self
            time.sleep(0.05)
        self.stop()
        raise ServerError(f"socat did not listen within {START_TIMEOUT_S:.0f} s")

    def cpu_s(self) -> float | None:
        return _cpu_s(self._proc.pid if self._proc is not None else None, children=True)

    def stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()  # the per-connection children: socat's parent does not wait for them
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT_S)
        self._proc = None


def _cpu_s(pid: int | None, *, children: bool = False) -> float | None:
    """CPU seconds (user + system) of a process, and of its children when asked; None when it is gone."""
    if pid is None:
        return None
    try:
        proc = psutil.Process(pid)
        procs: list[Any] = [proc, *(proc.children(recursive=True) if children else [])]
        return float(sum(t.user + t.system for t in (p.cpu_times() for p in procs)))
    except psutil.Error:
        return None
