"""One consumer role over several processes: split the work, supervise, merge the counters exactly.

A Python process runs on one core, so a fleet of thousands of pollers (or
streams, or a receiver's ingest) saturates one core long before the machine.
With ``processes = N`` the process the run starts becomes a *supervisor*: it
starts N workers, each holding a contiguous slice of the fleet (``p<first>``
onwards, so names and cursors are those of one process), all recording into
the same SQLite file (WAL; each transaction is ``BEGIN IMMEDIATE`` and waits
for the lock). From the outside it behaves as one fleet: one stats file, one
``<stats>.snap`` on SIGUSR1, SIGUSR2 and SIGTERM passed on to every worker.

Merging is exact: counters add up, and every latency histogram travels in
the workers' stats files as an encoded HdrHistogram, so the merged one is
``HdrHistogram.add`` of them (percentiles of the whole fleet, not an average
of percentiles). A worker that dies takes the fleet down (the run sees its
consumer die), and a SIGKILLed supervisor takes its workers with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from labkit.consumers.stats import Latency, write_atomic
from labkit.wire.metering import process_cpu_s

TICK_S = 0.02
WRITE_EVERY_S = 0.5
SNAPSHOT_TIMEOUT_S = 4.0
READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 8.0


def resolve(processes: int | str) -> int:
    """A ``processes`` setting as a count: "auto" is one per core this process may run on."""
    if processes == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not Linux
            return max(1, os.cpu_count() or 1)
    return max(1, int(processes))


def split(total: int, parts: int) -> list[tuple[int, int]]:
    """``total`` items as at most ``parts`` contiguous (first, count) slices, sizes differing by at most one."""
    parts = max(1, min(parts, total))
    base, extra = divmod(total, parts)
    out, first = [], 0
    for k in range(parts):
        n = base + (1 if k < extra else 0)
        out.append((first, n))
        first += n
    return out


# -- exact merging ----------------------------------------------------------------------------


def merge_latency(parts: Sequence[Mapping[str, Any]]) -> Latency:
    """Several exported histograms as one ``Latency`` (``HdrHistogram.add``, so every percentile is exact)."""
    out = Latency()
    for part in parts:
        out.add_exported(part)
    return out


# Counters that are moments, not counts: the merge keeps the latest.
LATEST_KEYS = frozenset({"last_received_ns"})


def sum_counters(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counters of several processes: numbers add, nested mappings merge key by key, anything else: the first."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key in LATEST_KEYS and isinstance(value, (int, float)):
                out[key] = max(out.get(key, value), value)
            elif isinstance(value, bool) or not isinstance(value, (int, float, Mapping)):
                out.setdefault(key, value)
            elif isinstance(value, Mapping):
                prev = out.get(key)
                out[key] = sum_counters([prev if isinstance(prev, Mapping) else {}, value])
            else:
                prev = out.get(key, 0)
                out[key] = (prev if isinstance(prev, (int, float)) and not isinstance(prev, bool) else 0) + value
    return out


def merge_stats(snaps: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stats files of the workers of one role as the stats file of one process.

    Counters and wire bytes are summed (a moment such as ``last_received_ns``: the latest); each histogram named in ``histograms``
    is merged exactly and its summary (mean, p50, p90, p99, max) recomputed
    from the merged histogram; ``cpu_s`` is the workers' plus this process's.
    """
    snaps = [s for s in snaps if s]
    hists: dict[str, list[Mapping[str, Any]]] = {}
    for snap in snaps:
        for name, part in (snap.get("histograms") or {}).items():
            hists.setdefault(name, []).append(part)
    counters = sum_counters([s.get("counters") or {} for s in snaps])
    merged = {name: merge_latency(parts) for name, parts in hists.items()}
    for name, lat in merged.items():
        counters[name] = lat.summary_ms()
    return {
        "role": snaps[0].get("role") if snaps else None,
        "pid": os.getpid(),
        "cpu_s": sum(float(s.get("cpu_s") or 0.0) for s in snaps) + process_cpu_s(),
        "wire": sum_counters([s.get("wire") or {} for s in snaps]),
        "counters": counters,
        "histograms": {name: lat.export() for name, lat in merged.items()},
        "processes": sum(int(s.get("processes") or 1) for s in snaps),
    }


def read_json(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


# -- the supervisor ---------------------------------------------------------------------------


def _kill_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """A worker dies with its supervisor: a SIGKILLed fleet must not leave half of itself running."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def write_private(path: Path, data: Mapping[str, Any]) -> None:
    """A settings file created 0600: it holds keys and secrets."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(data))


class Supervisor:
    """N worker processes of one role, seen from outside as one process with one stats file.

    ``command(k, settings_path)`` is worker ``k``'s command line; ``snapshot_signal``
    is the signal that asks for an exact ``<stats>.snap`` (None: the role has
    none and every signal but SIGTERM/SIGINT is passed on).
    """

    def __init__(
        self,
        role: str,
        stats_path: str | None,
        workers: Sequence[dict[str, Any]],
        command: Callable[[int, str], list[str]],
        *,
        pass_fds: Sequence[int] = (),
        snapshot_signal: int | None = signal.SIGUSR1,
        wait_for_stats: bool = True,
    ) -> None:
        self.role = role
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if stats_path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"labkit-{role}-")
            base = str(Path(self._tmp.name) / "stats.json")
        else:
            base = stats_path
        self.stats_path = stats_path
        self.worker_stats = [f"{base}.w{k}" for k in range(len(workers))]
        self.settings = [{**w, "stats_path": self.worker_stats[k]} for k, w in enumerate(workers)]
        self.command = command
        self.pass_fds = tuple(pass_fds)
        self.snapshot_signal = snapshot_signal
        self.wait_for_stats = wait_for_stats
        self.procs: list[subprocess.Popen[bytes]] = []
        self.pending: list[int] = []
        self.stopping = False

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.pending.append(signum)

    def _start(self) -> None:
        for path in self.worker_stats:
            for p in (path, f"{path}.snap"):
                Path(p).unlink(missing_ok=True)
        for k, settings in enumerate(self.settings):
            settings_path = Path(f"{self.worker_stats[k]}.settings.json")
            write_private(settings_path, settings)
            self.procs.append(
                subprocess.Popen(
                    self.command(k, str(settings_path)),
                    stdin=subprocess.DEVNULL,
                    pass_fds=self.pass_fds,
                    preexec_fn=_kill_with_parent if sys.platform.startswith("linux") else None,
                )
            )

    def _check_alive(self) -> None:
        for k, proc in enumerate(self.procs):
            code = proc.poll()
            if code is not None and not self.stopping:
                raise SystemExit(f"labkit {self.role}: worker {k} of {len(self.procs)} exited with code {code}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not all(Path(p).exists() for p in self.worker_stats):
            self._check_alive()
            if time.monotonic() > deadline:
                raise SystemExit(f"labkit {self.role}: workers did not start within {READY_TIMEOUT_S:.0f} s")
            if any(s in (signal.SIGTERM, signal.SIGINT) for s in self.pending):
                return
            time.sleep(TICK_S)

    def merged(self, suffix: str = "") -> dict[str, Any]:
        return merge_stats([read_json(p + suffix) for p in self.worker_stats])

    def write(self, suffix: str = "") -> None:
        if self.stats_path:
            with contextlib.suppress(OSError):
                write_atomic(self.stats_path + suffix, orjson.dumps(self.merged(suffix)))

    def snapshot(self) -> None:
        """Every worker writes its exact snapshot; their merge is this fleet's ``<stats>.snap``."""
        snaps = [f"{p}.snap" for p in self.worker_stats]
        for p in snaps:
            Path(p).unlink(missing_ok=True)
        self._send(self.snapshot_signal or signal.SIGUSR1)
        deadline = time.monotonic() + SNAPSHOT_TIMEOUT_S
        while not all(Path(p).exists() for p in snaps) and time.monotonic() < deadline:
            time.sleep(0.001)
        self.write(".snap")

    def _send(self, signum: int) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signum)

    def stop(self) -> None:
        """SIGTERM to every worker, wait (SIGKILL after a grace period), then the final merged stats."""
        self.stopping = True
        self._send(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.write()

    def run(self) -> int:
        """Start the workers and supervise them until SIGTERM or SIGINT; 0, or 1 when a worker failed."""
        relay = (signal.SIGUSR1, signal.SIGUSR2)
        for sig in (signal.SIGTERM, signal.SIGINT, *relay):
            signal.signal(sig, self._on_signal)
        try:
            self._start()
            if self.wait_for_stats:
                self._wait_ready()
            self.write()  # the sign of life a runner waits for: every worker is up
            next_write = time.monotonic() + WRITE_EVERY_S
            while True:
                while self.pending:
                    signum = self.pending.pop(0)
                    if signum in (signal.SIGTERM, signal.SIGINT):
                        return 0
                    if signum == self.snapshot_signal:
                        self.snapshot()
                    else:
                        self._send(signum)
                self._check_alive()
                if time.monotonic() >= next_write:
                    self.write()
                    next_write = time.monotonic() + WRITE_EVERY_S
                time.sleep(TICK_S)
        except SystemExit as exc:
            sys.stderr.write(f"{exc}\n")
            return 1
        finally:
            self.stop()
            if self._tmp is not None:
                self._tmp.cleanup()


def module_command(module: str) -> Callable[[int, str], list[str]]:
    """``python -m module SETTINGS`` as every worker's command."""
    return lambda k, settings_path: [sys.executable, "-m", module, settings_path]


def fleet_workers(settings: Any, count_field: str, parts: int | None = None) -> list[dict[str, Any]]:
    """The settings of each worker of a fleet: a contiguous slice of ``count_field``, a seed of its own.

    ``parts``: how many workers (default: the settings' ``processes``).
    """
    data = settings.model_dump(mode="json")
    total = int(getattr(settings, count_field))
    return [
        {**data, count_field: count, "first_index": settings.first_index + first, "processes": 1, "seed": settings.seed + k}
        for k, (first, count) in enumerate(split(total, parts or resolve(settings.processes)))
    ]


def supervise_fleet(
    role: str, settings: Any, count_field: str, module: str, workers: list[dict[str, Any]] | None = None
) -> tuple[int, dict[str, Any], float]:
    """Run a fleet as several worker processes until SIGTERM or SIGINT: (exit code, merged stats, seconds).

    ``workers``: each worker's settings (default: ``fleet_workers`` of the settings' ``processes``).
    """
    started = time.monotonic()
    sup = Supervisor(role, settings.stats_path, workers or fleet_workers(settings, count_field), module_command(module))
    code = sup.run()
    return code, sup.merged() if settings.stats_path else {}, time.monotonic() - started
