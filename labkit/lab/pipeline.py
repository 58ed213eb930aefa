"""A whole run: the same seeded workload through each style's session, summarised and written.

``arun`` is the public async entry point (``await labkit.arun(settings)``);
``run`` wraps it for callers without an event loop. Each style gets a fresh
provider and its own consumer (``labkit.lab.session``); a run whose settings
carry a ``fault`` is the same pipeline with the fault's injector hooked in.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from labkit.config import RunSettings
from labkit.errors import RunError
from labkit.lab.audience import audience_summary
from labkit.lab.calibrate import calibration_for_run
from labkit.lab.measures import cpu_shares
from labkit.lab.outcome import StyleRun
from labkit.lab.session import Progress, Session, no_progress, raise_if_cancelled
from labkit.lab.workload import Workload, build_workload
from labkit.model.agreement import latency_agreement
from labkit.model.calibration import Calibration
from labkit.results.hlog import latency_histogram, write_latency_logs
from labkit.results.layout import EVENTS, SCHEMA_VERSION, SUMMARY, environment, new_run_id, write_events, write_json
from labkit.styles.base import unit
from labkit.styles.registry import check as check_styles
from labkit.styles.registry import resolve as resolve_styles
from labkit.wire.metering import histogram_summary_ms, new_histogram, record_us


@dataclass
class RunResult:
    """A finished run: its id, where it was written, and the summary other tools read."""

    run_id: str
    results_dir: Path
    summary: dict[str, Any]


def summarise_style(run: StyleRun, settings: RunSettings) -> dict[str, Any]:
    """The per-style block of summary.json (measured), with the model beside it."""
    published = len(run.published_ids)
    # what the consumers should have received: every event each (a broadcast), or each one's audience share
    expected = published * len(run.consumers) if run.expected is None else sum(run.expected.values())
    hist = new_histogram()
    for _, _, _, created_ns, received_ns in run.events:
        record_us(hist, (received_ns - created_ns) / 1000)
    counters = run.consumer_stats.get("counters", {})
    wire = run.consumer_stats.get("wire", {})
    # thin events cost the receiver's fetches too
    requests = int(counters.get("requests", 0)) + int(counters.get("fetches", 0))
    bytes_in, bytes_out = int(wire.get("bytes_in", 0)), int(wire.get("bytes_out", 0))
    per = max(expected, 1)
    out: dict[str, Any] = {
        "published": published,
        "publish_errors": run.publish_errors,
        "consumers": len(run.consumers),
        "delivered": len(run.events),
        "lost": expected - (len(run.events) - run.misdelivered),
        # repeated receipts, consumer by consumer, of the events each should have received (as "lost" counts)
        "duplicates": sum(run.duplicates_by_consumer.values())
        if run.duplicates_by_consumer is not None
        else int(counters.get("duplicates", 0)) + int(counters.get("duplicate_events", 0)),
        "requests": requests,
        "requests_per_event": requests / per,
        "requests_per_event_whole_run": requests / per,
        "requests_in_window": run.window_counters.get("requests"),
        "bytes_total": bytes_in + bytes_out,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "bytes_per_event": (bytes_in + bytes_out) / per,
        "latency_ms": histogram_summary_ms(hist),
        "provider_cpu_s": run.provider_cpu_s,
        # resident memory of the provider after the drain, its consumers still connected
        "provider_rss_mb": run.provider_rss_bytes / 2**20 if run.provider_rss_bytes else None,
        "consumer_cpu_s": run.consumer_cpu_s,
        "cpu_s_per_event": (run.provider_cpu_s + run.consumer_cpu_s) / per,
        "provider_cpu_start_s": run.provider_cpu_start_s,
        "consumer_cpu_start_s": run.consumer_cpu_start_s,
        "drained": run.drained,
        "drain_s": run.drain_s,
        "publish_lateness_ms": run.publish_lateness_ms,
        # the provider's share of its core and the consumer fleet's of its cores over publish + drain
        "cpu": cpu_shares(
            run.provider_cpu_s - run.provider_cpu_start_s,
            run.consumer_cpu_s - run.consumer_cpu_start_s,
            run.cpu_window_s,
            run.cores,
            settings.consumer_processes,
            wait_s=run.cpu_wait_s,
        ),
    }
    wl = settings.workload
    # The model is evaluated at the rate the seeded draw really produced (events / duration),
    # so a Poisson sample with a few more events than lambda * D is not read as a model error.
    rate = published / wl.duration_s if published else wl.rate_per_s
    out.update(unit(run.style).summary(run, settings, per, rate))
    out["latency_ms"]["sd"] = hist.get_stddev() / 1000 if hist.get_total_count() else None
    agreement = latency_agreement_block(out, hist.get_total_count())
    if agreement is not None:
        out["agreement"] = agreement
    if run.audience:
        out["audience"] = audience_summary(run, settings, rate, expected, pulled=unit(run.style).info.direction == "pull")
        if "model" in out["audience"] and isinstance(out.get("model"), dict):
            out["model"]["audience"] = out["audience"]["model"]
            # each consumer polls its own feed: the run's empty polls are the mean over consumers of
            # e^(-lambda_i T), not one stream's e^(-lambda T) at the whole publish rate
            if out["audience"]["model"].get("empty_poll_ratio") is not None and "empty_poll_ratio" in out["model"]:
                out["model"]["empty_poll_ratio"] = out["audience"]["model"]["empty_poll_ratio"]
    if run.network is not None:
        out["network_proxy"] = run.network
    if run.fault is not None:
        out["fault"] = run.fault
    return out


def latency_agreement_block(style_block: dict[str, Any], n: int) -> dict[str, Any] | None:
    """Measured mean latency against the model: its bound, standard error, width in errors, and whether it agrees.

    The standard error is the measured per-event standard deviation over the
    square root of the events (``labkit.model.agreement``); a point is sized when its
    bound is at least four of them wide.
    """
    model_ms = (style_block.get("model") or {}).get("latency_mean_ms")
    lat = style_block.get("latency_ms") or {}
    if model_ms is None or lat.get("mean") is None or n < 2:
        return None
    a = latency_agreement(float(model_ms), float(lat["sd"] or 0.0), n, measured_ms=float(lat["mean"]))
    out = {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in a.as_dict().items()}
    # the model's only measured input: the machine's calibration (never the judged run), or none
    out["base_source"] = (style_block.get("model") or {}).get("base_source", "none")
    return out


def _summary(settings: RunSettings, workload: Workload, run_id: str, out: Path, style_runs: list[StyleRun]) -> dict[str, Any]:
    wl = settings.workload
    return {
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
            # where the run happened: the network on every consumer-provider hop, HTTPS, the sender's connections
            "network": settings.network.describe() if settings.network is not None else None,
            "tls": settings.tls,
            "webhook_connection": settings.webhook_connection,
            # who receives which event: each style's block says how it was spread over its consumers
            "audience": {
                "kind": settings.audience,
                "consumer_skew": settings.consumer_skew,
                "topics": settings.topics,
                "subscriptions": settings.subscriptions,
            },
        },
        "styles": {r.style: summarise_style(r, settings) for r in style_runs},
        "settings": settings.model_dump(mode="json"),
        "environment": environment(),
    }


async def arun(
    settings: RunSettings,
    *,
    progress: Progress = no_progress,
    run_id: str | None = None,
    results_dir: Path | None = None,
    extra: dict[str, Any] | None = None,
    work_dir: Path | None = None,
    calibration: Calibration | None | Literal["auto"] = "auto",
) -> RunResult:
    """Run every style of ``settings`` on one seeded workload and write the results (from an event loop).

    ``calibration`` is the machine's calibration the models take their base from: ``"auto"`` (the
    default) uses the cached one, measuring it first on this machine's first run (``labkit.lab.calibrate``).
    """
    settings = resolve_styles(settings)
    check_styles(settings)
    workload = build_workload(settings.workload)
    if len(workload) == 0:
        raise RunError("the workload holds no events: raise the rate or the duration")
    runnable = [unit(name) for name in settings.styles]
    run_id = run_id or new_run_id(settings.workload.seed)
    out = Path(results_dir) if results_dir else Path(settings.out_dir) / run_id
    # Databases and settings files hold secrets: never under results/. A caller's work_dir is kept.
    keep = work_dir is not None
    work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="labkit-"))
    try:
        base = await calibration_for_run(progress) if calibration == "auto" else calibration
        style_runs = [await Session(one, settings, workload, work, progress).arun() for one in runnable]
        raise_if_cancelled()
        for r in style_runs:
            r.calibration = base
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    summary = _summary(settings, workload, run_id, out, style_runs)
    if extra:
        summary.update(extra)
    write_events(out / EVENTS, [row for r in style_runs for row in r.events])
    write_json(out / SUMMARY, summary)
    write_latency_logs(out, {r.style: latency_histogram(r.events) for r in style_runs})
    return RunResult(run_id=run_id, results_dir=out, summary=summary)


def run(
    settings: RunSettings,
    *,
    progress: Progress = no_progress,
    run_id: str | None = None,
    results_dir: Path | None = None,
    extra: dict[str, Any] | None = None,
    work_dir: Path | None = None,
    calibration: Calibration | None | Literal["auto"] = "auto",
) -> RunResult:
    """``arun`` for a caller without a running event loop (the CLI, scripts, sweeps)."""
    return asyncio.run(
        arun(settings, progress=progress, run_id=run_id, results_dir=results_dir, extra=extra, work_dir=work_dir, calibration=calibration)
    )
