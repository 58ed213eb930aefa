"""One capacity run: servers on loopback, Locust with the step shape, CPU samples, the verdict.

``run_capacity(settings)``:

1. starts the servers the scenario needs (``ProcessGroup``: uvicorn children
   on free 127.0.0.1 ports, or on ``server_bind``) and prepares them (events,
   subscriptions);
2. runs Locust headless as a subprocess, the scenario's locustfile plus the
   step-shape locustfile, alone or as a master with W local workers and/or
   ``expect_workers`` workers started elsewhere (``labkit capacity-worker``),
   writing its CSV files, HTML report, log and the exact latency histograms
   (``labkit.capacity.latency``) into the results directory;
3. samples the CPU and RSS of every server and Locust process once a second
   (``resources.csv``);
4. finds the capacity (``labkit.capacity.analysis``) and writes
   ``capacity.json`` and ``capacity.png``.

Every loop is bounded: the shape stops at the SLO, ``--max-users`` or the
time limit, and Locust is killed if it outlives the duration by a margin.
Every process started here is stopped on the way out, also on errors and Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from labkit.capacity import analysis
from labkit.capacity.commands import (
    SEARCH_GRACE_S,
    SEARCH_JSON,
    WORKERS_FILE,
    free_port,
    locust_command,
    scenarios_dir,
    shape_locustfile,
    worker_command,
)
from labkit.capacity.fanout import ensure_subscriptions
from labkit.capacity.lag import LagHistograms, summary_ms
from labkit.capacity.latency import LatencyLog, latency_paths, read_latency
from labkit.capacity.processes import STOP_GRACE_S, BackgroundPublisher, LocustFleet, ResourceSampler, prefill
from labkit.capacity.settings import SCENARIOS, CapacitySettings, ScenarioSpec
from labkit.config import DEFAULT_API_KEY, validated
from labkit.errors import ConfigError, RunError
from labkit.results.layout import environment, write_json
from labkit.servers.procs import ProcessGroup
from labkit.wire.signing import new_secret

LOCUST_GRACE_S = 60.0  # beyond the duration, before Locust is killed

__all__ = [
    "SCENARIOS",
    "CapacityResult",
    "CapacitySettings",
    "ScenarioSpec",
    "build_settings",
    "locust_command",
    "run_capacity",
    "scenarios_dir",
    "shape_locustfile",
    "statement",
    "worker_command",
]


@dataclass
class CapacityResult:
    summary: dict[str, Any]
    steps: pd.DataFrame
    results_dir: Path


Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# -- the run -------------------------------------------------------------------------------


def new_capacity_run_id(scenario: str) -> str:
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}-{scenario}"


def _provider_settings(settings: CapacitySettings, work: Path, consumer_key_secret: str | None = None) -> dict[str, Any]:
    extra = {"consumer_key_secret": consumer_key_secret} if consumer_key_secret else {}
    return {
        **extra,
        "db_path": str(work / "provider.db"),
        "rate_limit_per_s": 0,  # a capacity run measures the server, not its rate limiter
        "poll_interval_hint_s": settings.interval_s,
        "allowed_callback_hosts": ["127.0.0.1"],
        "time_scale": 0.001,
        **settings.server_settings.get("provider", {}),
    }


def _receiver_settings(settings: CapacitySettings, work: Path, secret: str) -> dict[str, Any]:
    return {"secrets": [secret], "db_path": str(work / "receiver.db"), **settings.server_settings.get("receiver", {})}


def _audience_env(settings: CapacitySettings, env: dict[str, str]) -> str | None:
    """Per-consumer: the secret each user's key is made from (``labkit.wire.signing.consumer_key``), put in Locust's
    environment (never on a command line) with the consumers and workers; None for a broadcast."""
    if settings.audience != "per-consumer":
        return None
    key_secret = new_secret()
    env.update(
        LABKIT_AUDIENCE="per-consumer",
        LABKIT_CONSUMER_KEY_SECRET=key_secret,
        LABKIT_CONSUMERS=str(settings.max_users),
        LABKIT_WORKERS=str(max(settings.workers, settings.expect_workers, 1)),
    )
    return key_secret


def _background(settings: CapacitySettings, host: str, key_secret: str | None, extra: list[str]) -> BackgroundPublisher:
    """Pre-fill the log (users start at its head, ``extra`` says where) and the publisher feeding it during the run.

    Per-consumer (``key_secret`` given): each event is one user's consumer's, in turn.
    """
    head = prefill(host, settings.prefill_events)
    extra += ["--start-cursor", str(head)]
    return BackgroundPublisher(host, settings.publish_rate, settings.max_users if key_secret is not None else 0)


def run_capacity(settings: CapacitySettings, progress: Progress = _quiet) -> CapacityResult:
    """Run one capacity test and write ``<out>/capacity/<run-id>/``; see the module docstring."""
    spec = SCENARIOS[settings.scenario]
    locustfile = scenarios_dir(settings.scenarios_dir) / spec.locustfile
    if not locustfile.is_file():
        raise RunError(f"{locustfile}: scenario file not found (run from a labkit checkout or set LABKIT_SCENARIOS_DIR)")
    run_id = new_capacity_run_id(settings.scenario)
    shown_dir = Path(settings.out_dir) / "capacity" / run_id
    shown_dir.mkdir(parents=True)
    results_dir = shown_dir.resolve()  # Locust runs in it: every path it is given is absolute
    # The servers' settings files hold the webhook secret and their databases the run's data: they live in a
    # private directory, removed at the end; only the servers' logs are copied under the results.
    work = Path(tempfile.mkdtemp(prefix="labkit-capacity-"))
    secret = new_secret()
    step_users, step_seconds, _ = settings.plan()
    env = dict(os.environ, PYTHONUNBUFFERED="1", LABKIT_SECRET=secret)
    key_secret = _audience_env(settings, env)
    extra: list[str] = []
    rc: int | None = None
    background: dict[str, int] = {}

    with contextlib.ExitStack() as stack:
        stack.callback(_close_work, work, results_dir / "servers")  # runs last: after every process stopped
        group = stack.enter_context(ProcessGroup(work))
        sampler = stack.enter_context(ResourceSampler(results_dir / "resources.csv"))
        servers = {}
        if "receiver" in spec.servers:
            servers["receiver"] = group.start_server(
                "receiver", "receiver", _receiver_settings(settings, work, secret), host=settings.server_bind
            )
        if "provider" in spec.servers:
            servers["provider"] = group.start_server(
                "provider", "provider", _provider_settings(settings, work, key_secret), host=settings.server_bind
            )
        for name, child in servers.items():
            sampler.add(name, "server", child.pid)
        progress(f"servers up: {', '.join(f'{n} {c.url}' for n, c in servers.items())}")
        host = servers[spec.target].url

        publisher: BackgroundPublisher | None = None
        if spec.background_events:
            publisher = _background(settings, host, key_secret, extra)
        elif spec.subscribes_receiver:
            receiver = servers["receiver"]
            ensure_subscriptions(host, receiver.url, secret, settings.subscriptions)
            extra += [
                "--subscriptions", str(settings.subscriptions), "--keep-subscriptions",
                "--receiver-url", receiver.url, "--receiver-db", str(work / "receiver.db"),
                "--lag-out", str(results_dir / "locust_lag_hdr.json"),
            ]  # fmt: skip

        fleet = stack.enter_context(LocustFleet())
        master_at: tuple[str, int] | None = None
        if settings.distributed:
            bind_host, bind_port = settings.master_address()
            master_at = (bind_host, bind_port or free_port())
        cmd = locust_command(settings, locustfile=locustfile, host=host, results_dir=results_dir, extra=extra, master=master_at)
        progress(
            f"locust: {settings.scenario}, steps of {step_users} users every {step_seconds:g} s up to "
            f"{settings.max_users} users, at most {settings.duration_s:g} s" + (f", {settings.workers} workers" if settings.workers else "")
        )
        if publisher is not None:
            stack.enter_context(publisher)
        master = fleet.start("locust", "load_generator", cmd, results_dir, env, results_dir / "locust.stdout")
        sampler.add("locust" if master_at is None else "locust-master", "load_generator", master.popen.pid)
        grow: Callable[[], None] | None = None
        if master_at is not None:
            workers = Workers(fleet, sampler, master_at, locustfile, extra, results_dir, env)
            _start_workers(settings, workers, progress)
            if settings.search:
                grow = _grower(settings, workers.start, results_dir / WORKERS_FILE, progress)
        deadline = time.monotonic() + settings.duration_s + LOCUST_GRACE_S + (settings.workers_wait_s if master_at else 0)
        rc = _wait(master.popen, deadline + (SEARCH_GRACE_S if settings.search else 0), results_dir, progress, grow)
        if publisher is not None:
            background = {"published": publisher.published, "errors": publisher.errors}
        counted = {name: server_counts(child.url) for name, child in servers.items()}
    # every process is stopped here and the private work directory is gone; what is left is reading files
    return _analyse(settings, results_dir, shown_dir, run_id, rc, background, counted)


def analyse_directory(settings: CapacitySettings, results_dir: Path) -> CapacityResult:
    """``capacity.json`` and ``capacity.png`` for a step test whose Locust master ran elsewhere, from its files alone.

    A master in a container or a cluster (``docker-compose.yml``,
    ``deploy/k8s``) is plain Locust: it writes the CSV files, the log and the
    exact histograms (``.hlog``), but starts no servers and samples no CPU.
    This reads those files with the same analysis as ``run_capacity``; the
    servers' CPU columns stay empty (``resources.csv`` is absent) and the
    summary says the files were analysed after the fact (``analysed_from``).
    """
    if not results_dir.is_dir():
        raise ConfigError(f"{results_dir}: no such directory (the master's results, e.g. docker compose cp master:/results ...)")
    if not (results_dir / analysis.HISTORY_CSV).is_file():
        raise ConfigError(f"{results_dir}: no {analysis.HISTORY_CSV} (run the master with --csv {results_dir}/locust --csv-full-history)")
    return _analyse(settings, results_dir, results_dir, results_dir.name, None, {}, {}, analysed_from="files")


@dataclass(frozen=True)
class Workers:
    """Where a distributed run's Locust workers join and what they share with the master."""

    fleet: LocustFleet
    sampler: ResourceSampler
    master_at: tuple[str, int]
    locustfile: Path
    extra: list[str]
    results_dir: Path
    env: dict[str, str]

    def start(self, i: int) -> None:
        """Local worker ``i`` (1-based), its CPU sampled like every Locust process."""
        name = f"locust-worker-{i}"
        cmd = worker_command(self.locustfile, self.master_at, self.extra)
        child = self.fleet.start(name, "load_generator", cmd, self.results_dir, self.env, self.results_dir / f"{name}.log")
        self.sampler.add(child.name, "load_generator", child.popen.pid)


def _start_workers(settings: CapacitySettings, w: Workers, progress: Progress) -> None:
    """The local workers (a search starts with one); and, for workers started elsewhere, the command that joins them."""
    for i in range(settings.search_workers()[0] if settings.search else settings.workers):
        w.start(i + 1)
    if settings.expect_workers:
        progress(
            f"waiting up to {settings.workers_wait_s:g} s for {settings.expect_workers} worker(s); start each with: "
            f"labkit capacity-worker --master {w.master_at[0]}:{w.master_at[1]} --scenario {settings.scenario}"
        )


def _grower(settings: CapacitySettings, start_worker: Callable[[int], None], wanted_file: Path, progress: Progress) -> Callable[[], None]:
    """A search's answer to its shape: start the workers it asks for (``WORKERS_FILE``), never beyond ``max_workers``."""
    started, most = settings.search_workers()
    count = [started]

    def grow() -> None:
        try:
            wanted = min(int(wanted_file.read_text().strip() or 0), most)
        except (OSError, ValueError):
            return
        while count[0] < wanted:
            count[0] += 1
            progress(f"Locust ran out of CPU: worker {count[0]} of at most {most} joins")
            start_worker(count[0])

    return grow


def _wait(
    popen: subprocess.Popen[bytes], deadline: float, results_dir: Path, progress: Progress, grow: Callable[[], None] | None = None
) -> int:
    """Wait for Locust to stop by itself; start the workers a search asks for; report progress; kill it past the deadline."""
    next_report = time.monotonic() + 10
    while True:
        try:
            return popen.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
        if grow is not None:
            grow()
        now = time.monotonic()
        if now > deadline:
            popen.kill()
            popen.wait(timeout=STOP_GRACE_S)
            raise RunError(f"Locust did not stop by itself in time and was killed; see {results_dir / 'locust.log'}")
        if now >= next_report:
            next_report = now + 10
            line = _last_history_line(results_dir / analysis.HISTORY_CSV)
            if line:
                progress(line)


def _last_history_line(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4096))
            last = f.read().decode(errors="replace").strip().splitlines()[-1].split(",")
    except (OSError, IndexError):
        return None
    if len(last) < 18 or last[3] != "Aggregated":
        return None
    return f"locust: {last[1]} users, {float(last[4]):.1f} req/s, p99 {last[13]} ms, {last[17]} requests"


def _close_work(work: Path, logs_to: Path) -> None:
    """Copy the servers' logs under the results, then remove the private work directory (secrets, databases)."""
    logs = sorted(work.glob("*.log"))
    if logs:
        logs_to.mkdir(exist_ok=True)
    for p in logs:
        with contextlib.suppress(OSError):
            shutil.copyfile(p, logs_to / p.name)
    shutil.rmtree(work, ignore_errors=True)


def _log_lines(results_dir: Path) -> list[str]:
    lines: list[str] = []
    for p in sorted(results_dir.glob("locust*.log")) + [results_dir / "locust.stdout"]:
        with contextlib.suppress(OSError):
            lines += p.read_text(errors="replace").splitlines()
    return lines


def server_counts(url: str) -> dict[str, Any]:
    """What a server counted (its ``/stats``), read before it stops: the load that reached it."""
    try:
        stats = httpx.get(f"{url}/stats", headers={"authorization": f"Bearer {DEFAULT_API_KEY}"}, timeout=5.0).json()
    except (httpx.HTTPError, ValueError):
        return {}
    if "counters" in stats:  # the receiver
        stats = stats["counters"]
    return {k: v for k, v in stats.items() if isinstance(v, int) and not isinstance(v, bool)}


def _analyse(
    settings: CapacitySettings,
    results_dir: Path,
    shown_dir: Path,
    run_id: str,
    rc: int | None,
    background: dict[str, int],
    counted: dict[str, dict[str, Any]],
    analysed_from: str = "run",
) -> CapacityResult:
    spec = SCENARIOS[settings.scenario]
    history_path = results_dir / analysis.HISTORY_CSV
    if not history_path.exists():
        tail = " | ".join(_log_lines(results_dir)[-3:])
        raise RunError(f"Locust wrote no stats (exit code {rc}): {tail}")
    step_users, step_seconds, settle = settings.plan()
    history = analysis.read_history(history_path)
    resources = analysis.read_resources(results_dir / "resources.csv")
    lag_path = results_dir / "locust_lag_hdr.json"
    lag = LagHistograms.read(lag_path) if lag_path.exists() else None
    latency = read_latency(results_dir / "locust")
    slo = analysis.Slo(settings.slo_p99_ms, settings.max_failure_ratio)
    steps_found = analysis.find_steps(history, settle)
    table = analysis.step_table(
        history, resources, steps_found, slo, slo_metric=spec.slo_metric, rate_metric=spec.rate_metric, lag=lag, latency=latency
    )
    if table.empty:
        raise RunError(f"Locust ran (exit code {rc}) but no step lasted {analysis.MIN_STEP_ROWS} s; see {results_dir / 'locust.log'}")
    search = _read_search(results_dir) if settings.search else None
    if search is not None:
        cap = analysis.find_limit(table, search)
    else:
        cap = analysis.find_capacity(table, slo, max_users=settings.max_users)
    logs = _log_lines(results_dir)
    stop_reason = next((ln.split("step shape stops: ", 1)[1] for ln in reversed(logs) if "step shape stops: " in ln), None)
    summary: dict[str, Any] = {
        "schema_version": analysis.SCHEMA_VERSION,
        "run_id": run_id,
        "scenario": settings.scenario,
        "capacity": {"users": cap.users, "rps": cap.rps, "p99_ms": cap.p99_ms, "step": cap.step},
        "slo": {
            "p99_ms": settings.slo_p99_ms,
            "max_failure_ratio": settings.max_failure_ratio,
            "metric": " ".join(spec.slo_metric).strip(),
        },
        "limited_by": cap.limited_by,
        "lower_bound": cap.lower_bound,
        "statement": statement(settings, cap) + (_search_words(cap, search, table) if search is not None else ""),
        "reason": cap.reason,
        "results_dir": str(shown_dir),
        "p99_ms": cap.p99_ms,
        "server_cpu_max": _max(table["server_cpu_percent"]),
        "load_generator_cpu_max": _max(table["load_generator_cpu_percent"]),
        "load_generator_saturated": cap.load_generator_saturated,
        "locust_cpu_warning": any("CPU usage above" in ln for ln in logs),
        "locust_exit_code": rc,
        "stop_reason": stop_reason,
        "workers": settings.workers,
        "plan": {"step_users": step_users, "step_seconds": step_seconds, "settle_seconds": settle},
        "steps": _records(table),
        "settings": settings.model_dump(exclude={"server_settings"} if not settings.server_settings else set()),
        "files": _files(results_dir, lag_path if lag is not None else None, latency is not None),
        "analysed_from": analysed_from,
        "environment": environment(),
    }
    summary.update(_search_keys(search, table))
    if latency is not None:
        summary["latency"] = latency_summary(latency)
    if settings.distributed:
        summary["distributed"] = distributed_summary(settings)
    summary["servers_counted"] = counted
    if background:
        summary["background_publisher"] = background
    write_json(results_dir / analysis.CAPACITY_JSON, summary)
    _write_figure(results_dir, settings.scenario)
    return CapacityResult(summary, table, shown_dir)


def _read_search(results_dir: Path) -> dict[str, Any] | None:
    """The search's outcome as its shape wrote it; None when the shape never got to write it (Locust killed)."""
    try:
        doc = json.loads((results_dir / SEARCH_JSON).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _search_keys(search: dict[str, Any] | None, table: pd.DataFrame) -> dict[str, Any]:
    """A search's keys of capacity.json: its outcome, and both sides' CPU in the steps that bracket the limit."""
    if search is None:
        return {}
    return {
        "search": search,
        "cpu_at_limit": {
            "held": analysis.cpu_at(table, (search.get("held") or {}).get("load")),
            "breached": analysis.cpu_at(table, (search.get("failed") or {}).get("load")),
        },
    }


def _search_words(cap: analysis.Capacity, search: dict[str, Any], table: pd.DataFrame) -> str:
    """What a search adds to the statement: the bracket, what limited it, and both sides' CPU there."""
    failed = search.get("failed")
    at = analysis.cpu_at(table, failed["load"] if failed else cap.users)
    cpu = ", ".join(
        f"{who} {v:.0f}% of a core"
        for who, v in (("server", at["server_percent"]), ("Locust's busiest process", at["load_generator_percent"]))
        if v is not None
    )
    bracket = f"; {failed['load']} users breached it" if failed else ""
    bound = " (a lower bound)" if cap.lower_bound else ""
    return f"{bracket}; limited by {cap.limited_by}{bound}" + (
        f"; CPU at {failed['load'] if failed else cap.users} users: {cpu}" if cpu else ""
    )


def _files(results_dir: Path, lag_path: Path | None, exact: bool) -> dict[str, str]:
    """The run's files by role, only those that are there (a master elsewhere writes no resources.csv)."""
    files = {
        "stats_history": analysis.HISTORY_CSV,
        "stats": "locust_stats.csv",
        "html_report": "locust_report.html",
        "locust_log": "locust.log",
        "resources": "resources.csv",
        **({"lag_histograms": lag_path.name} if lag_path is not None else {}),
        **({f"latency_{k}": p.name for k, p in latency_paths(results_dir / "locust").items()} if exact else {}),
    }
    return {k: name for k, name in files.items() if (results_dir / name).exists()}


def distributed_summary(settings: CapacitySettings) -> dict[str, Any]:
    """Who ran the load: local workers, workers expected from elsewhere, and where the master and servers listened."""
    return {
        "local_workers": settings.workers,
        "expected_workers": settings.expect_workers,
        "master_bind": "{}:{}".format(*settings.master_address()) if settings.expect_workers or settings.master_bind else None,
        "server_bind": settings.server_bind,
    }


def latency_summary(latency: LatencyLog) -> dict[str, Any]:
    """The whole run's exact request latency, and who reported it (every worker, merged on the master)."""
    w = latency.window()
    corrected, raw = summary_ms(w.corrected), summary_ms(w.raw)
    return {
        "unit": "ms",
        "source": "HdrHistogram (µs, 3 significant digits), merged from every node",
        "corrected_interval_s": latency.meta.get("corrected_interval_s"),
        "requests": w.requests,
        "late_requests": w.late,
        "dropped_requests": w.dropped,
        "failed_requests": w.failures,
        "p99_ms": corrected["p99"],
        "p99_uncorrected_ms": raw["p99"],
        "max_ms": raw["max"],
        "nodes": latency.meta.get("nodes", {}),
    }


def _write_figure(results_dir: Path, scenario: str) -> None:
    try:
        from labkit.capacity.figures import capacity_curve

        fig = capacity_curve(analysis.load_capacity(results_dir))
        fig.savefig(results_dir / "capacity.png", dpi=110)
    except ImportError:  # pragma: no cover - matplotlib is a dependency, but a figure is never worth a failed run
        pass


def _max(series: pd.Series) -> float | None:
    s = pd.to_numeric(series, errors="coerce").dropna()
    return round(float(s.max()), 1) if len(s) else None


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in table.to_dict(orient="records"):
        clean = {}
        for k, v in rec.items():
            if hasattr(v, "item"):
                v = v.item()
            if isinstance(v, float):
                v = None if math.isnan(v) else round(v, 3)
            clean[k] = v
        out.append(clean)
    return out


def statement(settings: CapacitySettings, cap: analysis.Capacity) -> str:
    """The capacity in a planner's words."""
    if cap.step is None:
        return f"no step met the SLO (p99 <= {settings.slo_p99_ms:g} ms, failures <= {settings.max_failure_ratio:.1%})"
    at_least = "at least " if cap.lower_bound else ""
    p99 = f"{cap.p99_ms:g} ms" if cap.p99_ms is not None else "n/a"
    words = SCENARIOS[settings.scenario].statement
    return words.format(
        at_least=at_least, users=cap.users, rps=cap.rps, p99=p99, t=f"{settings.interval_s:g}", subscriptions=settings.subscriptions
    )


def build_settings(data: dict[str, Any]) -> CapacitySettings:
    return validated(CapacitySettings, data)
