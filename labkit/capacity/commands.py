"""Locust command lines: the master (or single runner) with the step shape, and its workers.

Shared by ``labkit capacity`` (which starts them) and ``labkit capacity-worker``
(which starts one worker that joins a master elsewhere). Every path given to
Locust is absolute, so the processes can run in the results directory.
"""

from __future__ import annotations

import math
import os
import socket
import sys
from pathlib import Path

from labkit.capacity import analysis
from labkit.capacity.settings import SCENARIOS, CapacitySettings
from labkit.servers.procs import bind_loopback

WORKERS_FILE = "locust_workers_wanted"  # a search's shape writes the workers it wants; the runner starts them
SEARCH_JSON = "locust_search.json"  # a search's outcome, written by the shape when it stops
SEARCH_GRACE_S = 30  # Locust's own -t beyond a search's time limit: the shape stops first and writes its outcome


def free_port(host: str = "127.0.0.1") -> int:
    sock: socket.socket = bind_loopback(0, host)
    try:
        return int(sock.getsockname()[1])
    finally:
        sock.close()


def scenarios_dir(explicit: str | None = None) -> Path:
    """The locustfiles' folder: a setting, LABKIT_SCENARIOS_DIR, or the checkout's scenarios/."""
    if explicit:
        path = Path(explicit)
    elif os.environ.get("LABKIT_SCENARIOS_DIR"):
        path = Path(os.environ["LABKIT_SCENARIOS_DIR"])
    else:
        path = Path(__file__).resolve().parents[2] / "scenarios"
    return path


def shape_locustfile() -> Path:
    return Path(__file__).resolve().parent / "locustfiles" / "step_shape.py"


def locust_command(
    settings: CapacitySettings,
    *,
    locustfile: Path,
    host: str,
    results_dir: Path,
    extra: list[str],
    master: tuple[str, int] | None = None,
) -> list[str]:
    """The master's (or single runner's) command line."""
    spec = SCENARIOS[settings.scenario]
    step_users, step_seconds, settle = settings.plan()
    cmd = [
        sys.executable, "-m", "locust",
        "-f", f"{locustfile},{shape_locustfile()}",
        "--headless", "--only-summary",
        "--host", host,
        "-u", str(settings.max_users),
        "-r", str(max(step_users, 2)),
        "-t", f"{max(1, math.ceil(settings.duration_s)) + (SEARCH_GRACE_S if settings.search else 0)}s",
        "--csv", str(results_dir / "locust"), "--csv-full-history",
        "--html", str(results_dir / "locust_report.html"),
        "--logfile", str(results_dir / "locust.log"), "--loglevel", "INFO",
        "--step-users", str(step_users),
        "--step-seconds", f"{step_seconds:g}",
        "--settle-seconds", f"{settle:g}",
        "--slo-p99-ms", f"{settings.slo_p99_ms:g}",
        "--slo-failure-ratio", f"{settings.max_failure_ratio:g}",
        "--slo-metric", " ".join(spec.slo_metric) if spec.slo_metric != analysis.AGGREGATED else "Aggregated",
        spec.interval_option, f"{settings.interval_s:g}",
        *extra,
    ]  # fmt: skip
    if settings.search:
        cmd += [
            "--search", "--shape-time-limit", f"{settings.duration_s:g}",
            "--search-factor", f"{settings.search_factor:g}", "--search-tolerance", f"{settings.search_tolerance:g}",
            "--max-workers", str(settings.search_workers()[1]),
            "--workers-file", str(results_dir / WORKERS_FILE), "--search-out", str(results_dir / SEARCH_JSON),
            "--enable-rebalancing",  # a worker that joins mid-run takes its share of the users
        ]  # fmt: skip
    if master is not None:
        cmd += [
            "--master", "--master-bind-host", master[0], "--master-bind-port", str(master[1]),
            "--expect-workers", str((settings.search_workers()[0] if settings.search else settings.workers) + settings.expect_workers),
            "--expect-workers-max-wait", f"{settings.workers_wait_s:g}",
        ]  # fmt: skip
    return cmd


def worker_command(locustfile: Path, master: tuple[str, int], extra: list[str], source: str | None = None) -> list[str]:
    """A worker's command line; ``source`` is the local address it connects to the master from."""
    host = f"[{master[0]}]" if ":" in master[0] else master[0]
    if source:  # ZeroMQ's "source;destination" endpoint: Locust passes the host through to it
        host = f"{source}:0;{host}"
    return [
        sys.executable, "-m", "locust",
        "-f", f"{locustfile},{shape_locustfile()}",
        "--worker", "--master-host", host, "--master-port", str(master[1]),
        *extra,
    ]  # fmt: skip
