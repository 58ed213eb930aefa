"""The processes of a capacity run besides the servers: Locust, a CPU sampler, a background publisher.

``LocustFleet`` starts the Locust master (or single runner) and local workers
and stops every one of them on exit; ``ResourceSampler`` writes the CPU and
RSS of every process once a second; ``BackgroundPublisher`` and ``prefill``
give pollers a feed with news in it.
"""

from __future__ import annotations

import contextlib
import csv
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
import psutil

from labkit.config import DEFAULT_API_KEY
from labkit.errors import RunError
from labkit.servers.procs import die_with_parent

SAMPLE_EVERY_S = 1.0
STOP_GRACE_S = 10.0


@dataclass
class LocustProcess:
    name: str
    role: str
    popen: subprocess.Popen[bytes]


@dataclass
class LocustFleet:
    """Locust master (or the single local runner) and its workers; stopped on exit."""

    processes: list[LocustProcess] = field(default_factory=list)

    def start(self, name: str, role: str, cmd: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> LocustProcess:
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(
                cmd,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C reaches labkit, which stops Locust in order
                preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
            )
        proc = LocustProcess(name, role, popen)
        self.processes.append(proc)
        return proc

    def stop_all(self) -> None:
        for p in reversed(self.processes):
            if p.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.popen.send_signal(signal.SIGTERM)
        for p in reversed(self.processes):
            try:
                p.popen.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait(timeout=STOP_GRACE_S)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


class ResourceSampler:
    """CPU (% of one core) and RSS of the run's processes, once a second, into a CSV file."""

    COLUMNS = ("timestamp", "process", "role", "pid", "cpu_percent", "rss_bytes")

    def __init__(self, path: Path, every_s: float = SAMPLE_EVERY_S) -> None:
        self.path = path
        self.every_s = every_s
        self._procs: dict[str, tuple[str, psutil.Process]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="resource-sampler", daemon=True)

    def add(self, name: str, role: str, pid: int) -> None:
        try:
            proc = psutil.Process(pid)
            proc.cpu_percent(None)  # the first call only primes the counter
        except psutil.Error:
            return
        with self._lock:
            self._procs[name] = (role, proc)

    def __enter__(self) -> Self:
        psutil.cpu_percent(None)
        self._file = open(self.path, "w", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(self.COLUMNS)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._file.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            now = round(time.time(), 3)
            rows = [[now, "host", "host", 0, psutil.cpu_percent(None), psutil.virtual_memory().used]]
            with self._lock:
                procs = list(self._procs.items())
            for name, (role, proc) in procs:
                try:
                    with proc.oneshot():
                        rows.append([now, name, role, proc.pid, proc.cpu_percent(None), proc.memory_info().rss])
                except psutil.Error:
                    continue  # exited
            self._writer.writerows(rows)
            self._file.flush()


class BackgroundPublisher:
    """Publishes events at a modest fixed rate while pollers run, so some polls find news."""

    def __init__(self, url: str, rate_per_s: float, consumers: int = 0) -> None:
        self.url = url
        self.rate = rate_per_s
        self.consumers = consumers  # > 0: each event is one consumer's (c0..), in turn (audience per-consumer)
        self.published = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="background-publisher", daemon=True)

    def __enter__(self) -> Self:
        if self.rate > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        period = 1.0 / self.rate
        due = time.monotonic()
        with httpx.Client(base_url=self.url, headers={"authorization": f"Bearer {DEFAULT_API_KEY}"}, timeout=5.0) as client:
            while not self._stop.wait(max(0.0, due - time.monotonic())):
                due += period  # a fixed timetable, not "sleep after each publish"
                try:
                    event: dict[str, Any] = {"type": "capacity.background", "payload": {"n": self.published}}
                    if self.consumers:
                        event["consumer"] = f"c{(self.published + self.errors) % self.consumers}"
                    r = client.post("/events", json=event)
                    self.published += r.status_code == 201
                    self.errors += r.status_code != 201
                except httpx.HTTPError:
                    self.errors += 1


def prefill(url: str, count: int) -> int:
    """Publish ``count`` events; returns the id of the last one (the feed's head)."""
    head = 0
    with httpx.Client(base_url=url, headers={"authorization": f"Bearer {DEFAULT_API_KEY}"}, timeout=10.0) as client:
        for i in range(count):
            r = client.post("/events", json={"type": "capacity.prefill", "payload": {"n": i, "pad": "x" * 200}})
            if r.status_code != 201:
                raise RunError(f"could not pre-fill the provider: HTTP {r.status_code} {r.text[:200]}")
            head = int(r.json()["id"])
    return head
