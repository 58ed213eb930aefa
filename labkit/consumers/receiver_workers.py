"""The webhook receiver as N uvicorn workers sharing one listening socket.

Why workers on one socket rather than one receiver per process with the
subscriptions split: the provider, the subscriptions and every fault plan see
one receiver URL, exactly as with one process, so nothing else in a run
changes; the kernel hands each new connection to whichever worker accepts it
first, so a busy worker takes fewer (subscriptions split by process would pin
a hot subscriber to one core). Every worker records into the same SQLite
file (WAL): the ``webhook-id`` de-duplication is one table's primary key, so
a retry that lands on another worker than the first attempt is still seen
as a duplicate, and an event is recorded once per subscriber whatever worker
took it.

Counters stay exact: each worker also listens on a private control port, and
``GET /stats`` on any worker merges its own counters with every sibling's
``GET /stats/local`` (``labkit.consumers.processes.merge_stats``). The
supervisor (the process the run started) writes the merged stats file, and
passes SIGUSR1/SIGUSR2 (faults on and off) to every worker.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from labkit.consumers.processes import Supervisor, resolve
from labkit.servers.procs import bind_loopback


def worker_settings(settings: dict[str, Any], peers: list[str]) -> list[dict[str, Any]]:
    """Worker ``k``'s settings: one process, its own fault dice, and the control URLs of the others."""
    seed = int(settings.get("seed") or 0)
    return [{**settings, "processes": 1, "seed": seed + k, "peers": [u for j, u in enumerate(peers) if j != k]} for k in range(len(peers))]


def serve_workers(settings: dict[str, Any], fd: int, certfile: str | None = None, keyfile: str | None = None) -> int:
    """Supervise ``settings["processes"]`` receiver workers on the inherited socket ``fd`` until SIGTERM."""
    n = resolve(settings.get("processes") or 1)
    controls = [bind_loopback() for _ in range(n)]
    scheme = "https" if certfile else "http"
    peers = [f"{scheme}://127.0.0.1:{c.getsockname()[1]}" for c in controls]
    tls = ["--certfile", certfile, "--keyfile", keyfile or ""] if certfile else []

    def command(k: int, settings_path: str) -> list[str]:
        base = [sys.executable, "-m", "labkit.lab.serving", "receiver", settings_path, "--fd", str(fd)]
        return [*base, "--control-fd", str(controls[k].fileno()), *tls]

    sup = Supervisor(
        "receiver",
        settings.get("stats_path"),
        worker_settings(settings, peers),
        command,
        pass_fds=[fd, *(c.fileno() for c in controls)],
        snapshot_signal=None,
    )
    try:
        return sup.run()
    finally:
        for c in controls:
            c.close()
        socket.socket(fileno=fd).close()
