"""Child processes of a run: start on loopback, wait until ready, measure, stop.

Every process a run starts is registered in a ``ProcessGroup``; leaving the
group (normally, on an error or on Ctrl-C) stops them all: SIGTERM, a grace
period, then SIGKILL. On Linux each child also asks the kernel to send it
SIGTERM should the parent die, so not even a SIGKILLed runner leaves orphans.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import psutil

from labkit.errors import ServerError

READY_TIMEOUT_S = 30.0
STOP_GRACE_S = 10.0


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


die_with_parent = _die_with_parent  # the public name, for other modules that start children


def usable_cores() -> frozenset[int]:
    """The cores this process may run on (its affinity mask), or every core where the mask cannot be read."""
    try:
        return frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return frozenset(range(os.cpu_count() or 1))


@dataclass(frozen=True)
class CorePlan:
    """Where a run's processes may run: the provider on a core of its own, every other child on the rest.

    One single-threaded server against clients on other machines is what the
    provider's limit means; on one machine the clients' CPU would otherwise be
    taken from the provider's core by the scheduler. ``applied`` is False (and
    ``reason`` says why) when the machine has fewer than two usable cores: then
    nothing is pinned and the run says so.
    """

    applied: bool
    provider: frozenset[int] = frozenset()
    fleet: frozenset[int] = frozenset()
    reason: str = ""
    usable: int = 1  # cores the run could use at all

    def cores_for(self, role: str) -> frozenset[int] | None:
        """The cores a child of ``role`` is pinned to; None: not pinned."""
        if not self.applied:
            return None
        return self.provider if role == "provider" else self.fleet

    def describe(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "provider_cores": sorted(self.provider),
            "fleet_cores": sorted(self.fleet),
            "usable_cores": self.usable,
            **({"reason": self.reason} if self.reason else {}),
        }


def core_plan(enabled: bool, cores: frozenset[int] | None = None) -> CorePlan:
    """The provider on the highest usable core, everything else on the others; not applied below two cores."""
    cores = usable_cores() if cores is None else cores
    if not enabled:
        return CorePlan(False, reason="not asked for (provider_core is off)", usable=len(cores))
    if len(cores) < 2:
        return CorePlan(False, reason=f"{len(cores)} usable core: nothing to give the provider alone", usable=len(cores))
    provider = max(cores)
    return CorePlan(True, frozenset({provider}), frozenset(cores - {provider}), usable=len(cores))


def _pinned(cores: frozenset[int] | None) -> Any:
    """The child's set-up before exec: die with the parent, then (if asked) keep to ``cores``.

    Pinned before exec, so a supervisor's workers (started later) inherit the mask with no race.
    """
    if not sys.platform.startswith("linux"):
        return None
    if cores is None:
        return _die_with_parent

    def setup() -> None:  # pragma: no cover - runs in the child before exec
        _die_with_parent()
        os.sched_setaffinity(0, cores)

    return setup


def bind_loopback(port: int = 0, host: str = "127.0.0.1") -> socket.socket:
    """A listening socket on 127.0.0.1 (a free port when ``port`` is 0); another ``host`` only when a caller asks."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.set_inheritable(True)
    return sock


@dataclass
class Child:
    """One process of a run."""

    name: str
    role: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    settings_path: Path
    port: int | None = None
    scheme: str = "http"
    host: str = "127.0.0.1"
    _ps: psutil.Process | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_s(self) -> float:
        """CPU seconds (user + system) used so far, its worker processes' included; read before it stops."""
        try:
            if self._ps is None:
                self._ps = psutil.Process(self.popen.pid)
            t = self._ps.cpu_times()
            total = float(t.user + t.system + t.children_user + t.children_system)  # workers it has reaped
            for worker in self._ps.children(recursive=True):  # a supervisor's live workers (consumer_processes > 1)
                with contextlib.suppress(psutil.Error):
                    w = worker.cpu_times()
                    total += float(w.user + w.system)
            return total
        except psutil.Error:
            return float("nan")

    def wait_s(self) -> float:
        """Seconds its threads (its workers' included) spent runnable but waiting for a CPU (``/proc/<pid>/task/*/schedstat``).

        CPU used says what a process got; on a shared machine it can want a core and not get it.
        CPU plus this wait is what it asked for. NaN where the kernel does not say.
        """
        return self._schedstat(1)

    def run_s(self) -> float:
        """Seconds its live threads (its workers' included) ran on a CPU, in nanoseconds' resolution (``schedstat``).

        ``cpu_s`` counts in clock ticks (10 ms): a benchmark that divides a
        short burst's CPU by thousands of frames reads this instead. Threads
        that have ended are not counted. NaN where the kernel does not say.
        """
        return self._schedstat(0)

    def _schedstat(self, field: int) -> float:
        try:
            if self._ps is None:
                self._ps = psutil.Process(self.popen.pid)
            pids = [self.popen.pid, *(w.pid for w in self._ps.children(recursive=True))]
        except psutil.Error:
            return float("nan")
        total = 0
        for pid in pids:
            with contextlib.suppress(OSError):
                for task in os.listdir(f"/proc/{pid}/task"):
                    with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{pid}/task/{task}/schedstat") as fh:
                        total += int(fh.read().split()[field])
        return total / 1e9 if os.path.isdir(f"/proc/{self.popen.pid}") else float("nan")

    def rss_bytes(self) -> int:
        try:
            if self._ps is None:
                self._ps = psutil.Process(self.popen.pid)
            return int(self._ps.memory_info().rss)
        except psutil.Error:
            return 0

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])


class ProcessGroup:
    """Starts children in a private work directory and stops every one of them on exit."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.children: list[Child] = []

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop_all()

    def _spawn(
        self, name: str, role: str, settings: dict[str, Any], sock: socket.socket | None, extra: list[str], cores: frozenset[int] | None
    ) -> Child:
        settings_path = self.work_dir / f"{name}.settings.json"
        # Created 0600 (not chmod-ed after writing): the settings hold secrets, readable by no one else at any moment.
        settings_path.unlink(missing_ok=True)
        fd = os.open(settings_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(settings))
        log_path = self.work_dir / f"{name}.log"
        cmd = [sys.executable, "-m", "labkit.lab.serving", role, str(settings_path), *extra]
        fds: tuple[int, ...] = ()
        if sock is not None:
            cmd += ["--fd", str(sock.fileno())]
            fds = (sock.fileno(),)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=fds,
                start_new_session=True,  # Ctrl-C reaches the runner, which stops children in order
                preexec_fn=_pinned(cores),
                env=env,
            )
        port = sock.getsockname()[1] if sock is not None else None
        child = Child(name=name, role=role, popen=popen, log_path=log_path, settings_path=settings_path, port=port)
        self.children.append(child)
        return child

    def start_server(
        self,
        name: str,
        role: str,
        settings: dict[str, Any],
        *,
        port: int = 0,
        tls: tuple[str, str] | None = None,
        host: str = "127.0.0.1",
        cores: frozenset[int] | None = None,
    ) -> Child:
        """Start a uvicorn server on loopback (or ``host``) and wait until ``/healthz`` answers; ``cores``: pinned there."""
        sock = bind_loopback(port, host)
        try:
            extra = ["--certfile", tls[0], "--keyfile", tls[1]] if tls else []
            child = self._spawn(name, role, settings, sock, extra, cores)
        finally:
            sock.close()  # the child holds its own copy
        child.host = host
        if tls:
            child.scheme = "https"
        self.wait_ready(child, verify=tls[0] if tls else True)
        return child

    def start_worker(self, name: str, role: str, settings: dict[str, Any], *, cores: frozenset[int] | None = None) -> Child:
        """Start a non-server child (the poller fleet); ``cores``: pinned there."""
        return self._spawn(name, role, settings, None, [], cores)

    def wait_ready(self, child: Child, timeout: float = READY_TIMEOUT_S, verify: Any = True) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0, verify=False if child.scheme == "https" else True) as client:
            while time.monotonic() < deadline:
                if not child.alive():
                    raise ServerError(f"{child.name} exited during start-up (code {child.popen.returncode}): {child.log_tail()}")
                try:
                    if client.get(f"{child.url}/healthz").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        raise ServerError(f"{child.name} did not become ready within {timeout:.0f} s: {child.log_tail()}")

    def stop(self, child: Child, grace: float = STOP_GRACE_S) -> int | None:
        """SIGTERM, wait, then SIGKILL; returns the exit code."""
        if child.alive():
            try:
                child.popen.send_signal(signal.SIGTERM)
                child.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                child.popen.kill()
                child.popen.wait(timeout=grace)
            except ProcessLookupError:
                pass
        return child.popen.returncode

    def kill(self, child: Child) -> None:
        """SIGKILL, as a crash would: no shutdown code runs.

        A supervisor's workers (consumer_processes > 1) die with it; they are waited for too, so a
        restart on the same port finds it free.
        """
        if child.alive():
            try:
                workers = psutil.Process(child.pid).children(recursive=True)
            except psutil.Error:
                workers = []
            child.popen.kill()
            child.popen.wait(timeout=STOP_GRACE_S)
            for w in workers:
                with contextlib.suppress(psutil.Error):
                    w.kill()
            psutil.wait_procs(workers, timeout=STOP_GRACE_S)

    def stop_all(self) -> None:
        # Consumers first, then providers: a receiver still up while the provider drains is harmless.
        for child in reversed(self.children):
            try:
                self.stop(child)
            except Exception:  # pragma: no cover - keep stopping the rest
                child.popen.kill()
