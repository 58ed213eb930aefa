"""One run: the same seeded workload delivered by each style, measured end to end.

For each style the runner starts a fresh provider and that style's consumer
as separate uvicorn processes on loopback, publishes the workload on its
timetable (open loop: a slow publish never delays the next one), drains until
every consumer has every event or the drain timeout passes, reads CPU, stops
every process, and joins the provider's event log with the consumer's
records into per-event latencies.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from labkit import model
from labkit.config import DEFAULT_API_KEY, RunSettings
from labkit.consumers import records
from labkit.errors import RunError, ServerError
from labkit.hlog import latency_histogram, write_latency_logs
from labkit.provider.store import Store
from labkit.results import EVENTS, SCHEMA_VERSION, SUMMARY, environment, new_run_id, write_events, write_json
from labkit.servers.procs import Child, ProcessGroup
from labkit.wire.metering import WireCounter, counting_client, histogram_summary_ms, new_histogram, record_us
from labkit.wire.signing import new_secret
from labkit.workload import Workload, build_workload

PUBLISHER_KEY = "lab-publisher"
START_DELAY_S = 0.3

# progress(phase, done, total): the CLI draws a bar from it; the library draws nothing.
Progress = Callable[[str, int, int], None]


def _no_progress(phase: str, done: int, total: int) -> None:
    return None


@dataclass
class StyleRun:
    """What one style's run measured, before it is summarised."""

    style: str
    published_ids: list[int]
    publish_errors: int
    publish_lateness_ms: dict[str, float | None]
    consumers: list[str]
    drained: bool
    drain_s: float
    provider_cpu_s: float
    consumer_cpu_s: float
    consumer_stats: dict[str, Any]
    deliveries: dict[str, Any]
    delivery_rtt_s: float | None
    events: list[tuple[str, str, int, int, int]] = field(default_factory=list)
    # CPU already spent when publishing began (start-up: imports, app set-up), so
    # a cost model can fit the work of the run alone.
    provider_cpu_start_s: float = 0.0
    consumer_cpu_start_s: float = 0.0
    # A failure run's measurements of its fault (labkit.failures): lost, duplicates, catch-up, ...
    fault: dict[str, Any] | None = None
    # Poller counters over the publishing window only: the polls before the first
    # event and during the drain are an artefact of the run's edges, not of polling.
    window_counters: dict[str, int] = field(default_factory=dict)


@dataclass
class RunResult:
    """A finished run: its id, where it was written, and the summary other tools read."""

    run_id: str
    results_dir: Path
    summary: dict[str, Any]


def _provider_settings(settings: RunSettings, db_path: Path, poll_hint: float) -> dict[str, Any]:
    return {
        "db_path": str(db_path),
        "api_keys": [DEFAULT_API_KEY, PUBLISHER_KEY],
        "rate_limit_per_s": settings.rate_limit_per_s,
        "poll_interval_hint_s": poll_hint,
        "time_scale": settings.time_scale,
        "batch_max_events": settings.batch_max_events,
        "batch_window_ms": settings.batch_window_ms,
        "thin_events": settings.thin_events,
        "allowed_callback_hosts": ["127.0.0.1"],
        "seed": settings.workload.seed,
        "dispatch_concurrency": max(64, settings.subscribers * 8),
    }


async def _publish(
    url: str, workload: Workload, progress: Progress, label: str, on_window: Callable[[str], Any] | None = None
) -> tuple[list[int], int, dict[str, float | None]]:
    """Publish every event at its intended time; lateness is measured from that time.

    ``on_window("start")`` and ``on_window("end")`` run (in a thread) at the start and
    the end of the workload's time axis, to bracket what consumers did meanwhile.
    """
    counter = WireCounter()
    lateness = new_histogram()
    ids: list[int | None] = [None] * len(workload)
    errors = 0
    done = 0
    event_type = workload.settings.event_type
    async with counting_client(
        counter,
        concurrency=256,
        timeout=30.0,
        base_url=url,
        headers={"authorization": f"Bearer {PUBLISHER_KEY}", "content-type": "application/json"},
    ) as client:

        async def one(i: int) -> None:
            nonlocal errors, done
            body = orjson.dumps({"type": event_type, "payload": workload.payloads[i]})
            try:
                resp = await client.post("/events", content=body)
                if resp.status_code == 201:
                    ids[i] = int(resp.json()["id"])
                else:
                    errors += 1
            except Exception:
                errors += 1
            done += 1

        tasks = []
        t0 = time.monotonic() + START_DELAY_S
        total = len(workload)
        if on_window is not None:
            await asyncio.sleep(max(0.0, t0 - time.monotonic()))
            await asyncio.to_thread(on_window, "start")
        for i, off in enumerate(workload.offsets_s):
            delay = t0 + off - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            record_us(lateness, (time.monotonic() - (t0 + off)) * 1e6)
            tasks.append(asyncio.create_task(one(i)))
            if i % 16 == 0:
                progress(f"{label}: publishing", done, total)
        if on_window is not None:
            await asyncio.sleep(max(0.0, t0 + workload.settings.duration_s - time.monotonic()))
            await asyncio.to_thread(on_window, "end")
        await asyncio.gather(*tasks)
        progress(f"{label}: publishing", total, total)
    return [i for i in ids if i is not None], errors, histogram_summary_ms(lateness)


async def _drain(
    db_path: Path,
    consumers: list[str],
    expected: int,
    timeout_s: float,
    progress: Progress,
    label: str,
    watch: list[Child],
    last_id: int | None = None,
) -> tuple[bool, float]:
    """Wait until every consumer holds ``expected`` events, or the timeout passes.

    With ``last_id`` (a snapshot feed, which skips versions by design) a consumer
    is done once it has seen that last version.
    """
    start = time.monotonic()
    total = expected * len(consumers)
    while True:
        if last_id is not None:
            seen = _latest_seen(db_path)
            got = expected * sum(1 for c in consumers if seen.get(c, 0) >= last_id)
        else:
            counts = records.received_counts(str(db_path)) if db_path.exists() else {}
            got = sum(min(counts.get(c, 0), expected) for c in consumers)
        progress(f"{label}: draining", got, total)
        if got >= total:
            return True, time.monotonic() - start
        if time.monotonic() - start > timeout_s:
            return False, time.monotonic() - start
        for child in watch:
            if not child.alive():
                raise ServerError(f"{child.name} died during the run: {child.log_tail()}")
        await asyncio.sleep(0.05)


def _latest_seen(db_path: Path) -> dict[str, int]:
    """The newest event each consumer has recorded."""
    if not db_path.exists():
        return {}
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            return dict(con.execute("SELECT consumer, max(event_id) FROM events GROUP BY consumer").fetchall())
        finally:
            con.close()
    except sqlite3.Error:
        return {}


def _delivery_rtt_s(db_path: Path) -> float | None:
    """Mean duration of successful delivery attempts, from the provider's attempt log."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT avg(finished_ns - started_ns) FROM attempts WHERE status_code BETWEEN 200 AND 299").fetchone()
    except sqlite3.Error:
        return None
    finally:
        con.close()
    return row[0] / 1e9 if row and row[0] is not None else None


WINDOW_COUNTERS = ("polls", "empty_polls", "not_modified", "requests")


def _window_ratio(window: dict[str, int], num: str, den: str, fallback: float | None) -> float | None:
    """num/den over the publishing window, when the window saw any; else the whole-run figure."""
    d = window.get(den, 0)
    return window.get(num, 0) / d if d > 0 else fallback


def wait_for_file(child: Child, path: Path, timeout_s: float = 30.0) -> None:
    """Wait until a worker has written its first stats file: it is up and polling."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if not child.alive():
            raise ServerError(f"{child.name} exited during start-up (code {child.popen.returncode}): {child.log_tail()}")
        if time.monotonic() > deadline:
            raise ServerError(f"{child.name} did not start within {timeout_s:.0f} s: {child.log_tail()}")
        time.sleep(0.02)


def snapshot_stats(child: Child, stats_path: Path, timeout_s: float = 5.0) -> dict[str, Any]:
    """The poller fleet's counters at this moment: SIGUSR1 makes it write ``<stats>.snap``."""
    snap = Path(f"{stats_path}.snap")
    snap.unlink(missing_ok=True)
    child.popen.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + timeout_s
    while not snap.exists():
        if time.monotonic() > deadline or not child.alive():
            return {}
        time.sleep(0.001)
    return _read_stats(snap)


def _read_stats(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def run_style(style: str, settings: RunSettings, workload: Workload, work_dir: Path, progress: Progress = _no_progress) -> StyleRun:
    """Run one delivery style against its own fresh provider and consumer processes."""
    sdir = work_dir / style
    sdir.mkdir(parents=True, exist_ok=True)
    provider_db = sdir / "provider.db"
    consumer_db = sdir / "consumer.db"
    stats_path = sdir / "consumer.stats.json"
    with ProcessGroup(sdir) as group:
        provider = group.start_server("provider", "provider", _provider_settings(settings, provider_db, settings.poll_interval_s))
        if style == "webhook":
            secret = new_secret()
            receiver = group.start_server(
                "receiver",
                "receiver",
                {
                    "secrets": [secret],
                    "db_path": str(consumer_db),
                    "stats_path": str(stats_path),
                    "provider_url": provider.url,
                    "api_key": DEFAULT_API_KEY,
                },
            )
            consumers = [f"s{i}" for i in range(settings.subscribers)]
            import httpx

            with httpx.Client(base_url=provider.url, headers={"authorization": f"Bearer {DEFAULT_API_KEY}"}, timeout=10) as c:
                for name in consumers:
                    r = c.post("/subscriptions", json={"url": f"{receiver.url}/webhook/{name}", "secret": secret})
                    if r.status_code != 201:
                        raise RunError(f"could not subscribe the receiver: {r.status_code} {r.text[:200]}")
            consumer = receiver
        else:
            consumers = [f"p{i}" for i in range(settings.pollers)]
            consumer = group.start_worker(
                "poller",
                "poller",
                {
                    "base_url": provider.url,
                    "api_key": DEFAULT_API_KEY,
                    "pollers": settings.pollers,
                    "interval_s": settings.poll_interval_s,
                    "conditional": settings.conditional,
                    "long_poll_wait_s": settings.long_poll_wait_s,
                    "adaptive": settings.adaptive,
                    "snapshot": settings.snapshot,
                    "db_path": str(consumer_db),
                    "stats_path": str(stats_path),
                    "seed": settings.workload.seed,
                },
            )
            wait_for_file(consumer, stats_path)
        watch = [provider, consumer]
        provider_cpu_start = provider.cpu_s()
        consumer_cpu_start = consumer.cpu_s()
        snaps: dict[str, dict[str, Any]] = {}

        def bracket(edge: str) -> None:
            snaps[edge] = snapshot_stats(consumer, stats_path).get("counters", {})

        ids, errors, lateness = asyncio.run(_publish(provider.url, workload, progress, style, bracket if style == "polling" else None))
        window = {k: int(snaps["end"].get(k, 0)) - int(snaps["start"].get(k, 0)) for k in WINDOW_COUNTERS} if len(snaps) == 2 else {}
        if errors and not ids:
            raise RunError(f"{style}: the provider accepted none of {len(workload)} events: {provider.log_tail()}")
        last_id = max(ids) if style == "polling" and settings.snapshot and ids else None
        drained, drain_s = asyncio.run(_drain(consumer_db, consumers, len(ids), settings.drain_timeout_s, progress, style, watch, last_id))
        provider_cpu = provider.cpu_s()
        consumer_cpu = consumer.cpu_s()
        group.stop(consumer)
        group.stop(provider)
    created = Store.events_created_at(str(provider_db))
    rows = [
        (style, consumer_name, event_id, created[event_id], received_ns)
        for consumer_name, event_id, received_ns in records.load_events(str(consumer_db))
        if event_id in created
    ]
    return StyleRun(
        style=style,
        published_ids=ids,
        publish_errors=errors,
        publish_lateness_ms=lateness,
        consumers=consumers,
        drained=drained,
        drain_s=drain_s,
        provider_cpu_s=provider_cpu,
        consumer_cpu_s=consumer_cpu,
        consumer_stats=_read_stats(stats_path),
        deliveries=Store.delivery_summary_at(str(provider_db)) if style == "webhook" else {},
        delivery_rtt_s=_delivery_rtt_s(provider_db) if style == "webhook" else None,
        events=rows,
        provider_cpu_start_s=provider_cpu_start,
        consumer_cpu_start_s=consumer_cpu_start,
        window_counters=window if style == "polling" else {},
    )


def summarise_style(run: StyleRun, settings: RunSettings) -> dict[str, Any]:
    """The per-style block of summary.json (measured), with the model beside it."""
    published = len(run.published_ids)
    expected = published * len(run.consumers)
    delivered = len(run.events)
    hist = new_histogram()
    for _, _, _, created_ns, received_ns in run.events:
        record_us(hist, (received_ns - created_ns) / 1000)
    counters = run.consumer_stats.get("counters", {})
    wire = run.consumer_stats.get("wire", {})
    # thin events cost the receiver's fetches too
    requests = int(counters.get("requests", 0)) + int(counters.get("fetches", 0))
    bytes_total = int(wire.get("bytes_in", 0)) + int(wire.get("bytes_out", 0))
    per = max(expected, 1)
    out: dict[str, Any] = {
        "published": published,
        "publish_errors": run.publish_errors,
        "consumers": len(run.consumers),
        "delivered": delivered,
        "lost": expected - delivered,
        "duplicates": int(counters.get("duplicates", 0)) + int(counters.get("duplicate_events", 0)),
        "requests": requests,
        "requests_per_event": requests / per,
        "requests_per_event_whole_run": requests / per,
        "bytes_total": bytes_total,
        "bytes_in": int(wire.get("bytes_in", 0)),
        "bytes_out": int(wire.get("bytes_out", 0)),
        "bytes_per_event": bytes_total / per,
        "latency_ms": histogram_summary_ms(hist),
        "provider_cpu_s": run.provider_cpu_s,
        "consumer_cpu_s": run.consumer_cpu_s,
        "cpu_s_per_event": (run.provider_cpu_s + run.consumer_cpu_s) / per,
        "provider_cpu_start_s": run.provider_cpu_start_s,
        "consumer_cpu_start_s": run.consumer_cpu_start_s,
        "drained": run.drained,
        "drain_s": run.drain_s,
        "publish_lateness_ms": run.publish_lateness_ms,
    }
    wl = settings.workload
    # The model is evaluated at the rate the seeded draw really produced (events / duration),
    # so a Poisson sample with a few more events than lambda * D is not read as a model error.
    rate = published / wl.duration_s if published else wl.rate_per_s
    if run.style == "polling":
        polls = int(counters.get("polls", 0))
        empty = int(counters.get("empty_polls", 0))
        rtt_ms = (counters.get("rtt") or {}).get("mean") or 0.0
        out.update(
            {
                "poll_interval_s": settings.poll_interval_s,
                "polls": polls,
                "empty_polls": empty,
                "not_modified": int(counters.get("not_modified", 0)),
                "empty_poll_ratio": _window_ratio(run.window_counters, "empty_polls", "polls", empty / polls if polls else None),
                "polls_in_window": run.window_counters.get("polls"),
                # steady state: the requests of the publishing window per event (the edges are not polling's cost)
                "requests_per_event": run.window_counters["requests"] / per
                if run.window_counters.get("requests", 0) > 0
                else requests / per,
                "throttled": int(counters.get("throttled", 0)),
                "poll_lateness_ms": counters.get("lateness"),
                "rtt_ms": counters.get("rtt"),
            }
        )
        if settings.snapshot:
            # a snapshot poller misses intermediate versions by design (Bozdag et al. 2007): they count as lost
            out["feed"] = "snapshot"
            out["fraction_seen"] = delivered / per
        out["model"] = model.polling_model(
            rate, settings.poll_interval_s, rtt_ms / 1000, arrival=wl.arrival, page_limit=100, long_poll_wait_s=settings.long_poll_wait_s
        )
        if settings.snapshot:
            out["model"]["fraction_seen"] = model.snapshot_fraction_seen(rate, settings.poll_interval_s, wl.arrival)
        out["model"]["rate_per_s"] = rate
    else:
        d = run.deliveries
        attempts = int(d.get("attempts", 0))
        retries = int(d.get("retries", max(attempts - int(d.get("deliveries", 0)), 0)))
        out.update(
            {
                "attempts": attempts,
                "retries": retries,
                "dead": int(d.get("dead", 0)),
                "rejected": counters.get("rejected", {}),
                "delivery_rtt_ms": run.delivery_rtt_s * 1000 if run.delivery_rtt_s is not None else None,
            }
        )
        out["model"] = model.webhook_model(
            run.delivery_rtt_s or 0.0, batch=settings.batch_max_events, retries_per_event=retries / max(published, 1)
        )
    if run.fault is not None:
        out["fault"] = run.fault
    return out


def run(
    settings: RunSettings,
    *,
    progress: Progress = _no_progress,
    run_id: str | None = None,
    results_dir: Path | None = None,
    extra: dict[str, Any] | None = None,
    work_dir: Path | None = None,
) -> RunResult:
    """Run every style of ``settings`` on one seeded workload and write the results."""
    workload = build_workload(settings.workload)
    if len(workload) == 0:
        raise RunError("the workload holds no events: raise the rate or the duration")
    run_id = run_id or new_run_id(settings.workload.seed)
    out = Path(results_dir) if results_dir else Path(settings.out_dir) / run_id
    # Databases and settings files hold secrets: never under results/. A caller's work_dir is kept.
    keep = work_dir is not None
    work_dir = Path(work_dir) if keep else Path(tempfile.mkdtemp(prefix="labkit-"))
    one_style = run_style
    if settings.fault is not None:  # a failure run: the fault is injected and measured per style
        from labkit.failures.orchestrator import run_style as one_style
    try:
        style_runs = [one_style(style, settings, workload, work_dir, progress) for style in settings.styles]
    finally:
        if not keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    wl = settings.workload
    summary: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "results_dir": str(out),
        "experiment": settings.experiment,
        "workload": {
            "arrival": wl.arrival,
            "rate_per_s": wl.rate_per_s,
            "duration_s": wl.duration_s,
            "events": len(workload),
            "payload_bytes": wl.payload_bytes,
            "seed": wl.seed,
            "lambda_t": wl.rate_per_s * settings.poll_interval_s,
            "realized_rate_per_s": len(workload) / wl.duration_s,
            "realized_lambda_t": len(workload) / wl.duration_s * settings.poll_interval_s,
        },
        "styles": {r.style: summarise_style(r, settings) for r in style_runs},
        "settings": settings.model_dump(mode="json"),
        "environment": environment(),
    }
    if extra:
        summary.update(extra)
    write_events(out / EVENTS, [row for r in style_runs for row in r.events])
    write_json(out / SUMMARY, summary)
    write_latency_logs(out, {r.style: latency_histogram(r.events) for r in style_runs})
    return RunResult(run_id=run_id, results_dir=out, summary=summary)
