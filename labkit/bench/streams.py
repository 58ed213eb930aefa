"""``labkit bench`` case ``sse_fanout``: the provider's SSE fan-out against a bare Starlette streaming endpoint.

K streams are held open on each server by a stream consumer fleet
(``labkit.consumers.streams``, counting frames only, no records). A
repetition publishes a burst of E events and times from the first publish to
the last of the E x K frames received (the fleet's ``last_received_ns``);
the rate is E x K / that span. The provider publishes through its log and
hub (``POST /events``); the bare app (``labkit.servers.bare``, ``broadcast``)
keeps no log and puts each frame on an unbounded queue per stream. Both
sides use the same consumer, publisher and uvicorn settings and alternate,
so the ratio is the hub's own cost. A consumer process that uses most of a
core is reported: then it, not the server, set the pace. Each side also
reports its server's and its consumer's CPU time per frame.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from labkit.bench.cases import EVENT_TYPE, Lab, Plan, cv, median, paired_ratio, provider_settings, seed_events
from labkit.bench.fleets import Counters, all_connected, read_counters, wait_counters
from labkit.config import DEFAULT_API_KEY
from labkit.errors import RunError
from labkit.servers.procs import Child

# (streams K, events per burst E) by plan mode
SIZES = {"tiny": (20, 20), "quick": (200, 100), "full": (500, 200)}
WAIT_S = 120.0


def _wait(child: Child, path: Path, done: Callable[[Counters], bool], what: str) -> Counters:
    return wait_counters("sse_fanout", child, path, done, what, WAIT_S)


def _fleet(lab: Lab, name: str, url: str, streams: int) -> tuple[Child, Path]:
    stats = lab.work_dir / f"{name}.stats.json"
    child = lab.group.start_worker(
        name,
        "streams",
        {
            "base_url": url,  # the fleet's default protocol: SSE (labkit.config.StreamConsumerSettings)
            "connections": streams,
            "record": False,
            "stats_path": str(stats),
            "connect_spread_s": 1.0,
            "idle_timeout_s": 600,
        },
    )
    _wait(child, stats, all_connected(streams), f"{streams} streams not connected")
    return child, stats


def _burst(server: Child, path: str, fleet: Child, stats: Path, events: int, streams: int) -> dict[str, Any]:
    """Publish ``events`` and time until all ``events * streams`` frames are in."""
    before = read_counters(stats).get("frames", 0)
    cpu_s0, fleet_cpu0 = server.cpu_s(), fleet.cpu_s()
    body = {"type": EVENT_TYPE, "payload": {"bench": "x" * 200}}
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {DEFAULT_API_KEY}"}, timeout=30.0) as client:
        t0 = time.time_ns()
        for _ in range(events):
            r = client.post(path, json=body)
            if r.status_code != 201:
                raise RunError(f"sse_fanout: publish answered {r.status_code} {r.text[:200]}")
    want = before + events * streams
    c = _wait(fleet, stats, lambda c: c.get("frames", 0) >= want, f"{events * streams} frames not received")
    span = (c["last_received_ns"] - t0) / 1e9
    server_cpu, fleet_cpu, frames = server.cpu_s() - cpu_s0, fleet.cpu_s() - fleet_cpu0, events * streams
    return {
        "span_s": span,
        "frames_per_s": frames / span if span > 0 else math.nan,
        "server_cpu_share": server_cpu / span if span > 0 else None,
        "consumer_cpu_share": fleet_cpu / span if span > 0 else None,
        # CPU time per frame: what a loaded machine does not distort the way it distorts a rate
        "server_cpu_us_per_frame": server_cpu / frames * 1e6,
        "consumer_cpu_us_per_frame": fleet_cpu / frames * 1e6,
        "extra_frames": c.get("frames", 0) - want,
    }


def sse_fanout(lab: Lab, plan: Plan) -> dict[str, Any]:
    """Frames per second from one publish to K open SSE streams: provider hub / bare Starlette endpoint."""
    streams, events = SIZES.get(plan.mode, SIZES["full"])
    db = lab.work_dir / "fanout-provider.db"
    seed_events(db, 1, plan.payload_bytes)
    limits = {"queue_max_events": max(1000, events * 2), "heartbeat_s": 60}
    provider = lab.group.start_server("fanout-provider", "provider", provider_settings(db, streams=limits))
    bare = lab.group.start_server("fanout-bare", "bare", {"broadcast": True})
    sides = {
        "provider": (provider, "/events", *_fleet(lab, "fanout-fleet-provider", provider.url, streams)),
        "bare": (bare, "/publish", *_fleet(lab, "fanout-fleet-bare", bare.url, streams)),
    }
    runs: dict[str, list[dict[str, Any]]] = {"provider": [], "bare": []}
    steps, done = plan.reps * 2, 0
    for rep in range(plan.reps):
        order = ["provider", "bare"] if rep % 2 == 0 else ["bare", "provider"]
        for name in order:
            server, path, fleet, stats = sides[name]
            runs[name].append(_burst(server, path, fleet, stats, events, streams))
            done += 1
            lab.progress("bench: sse fan-out", done, steps)
    for server, _, fleet, _ in sides.values():
        lab.group.stop(fleet)
        lab.group.stop(server)
    out: dict[str, Any] = {"streams": streams, "events_per_burst": events}
    for name, rs in runs.items():
        rates = [r["frames_per_s"] for r in rs]
        out[name] = {
            "frames_per_s": median(rates),
            "samples_frames_per_s": [round(v, 1) for v in rates],
            "cv": cv(rates),
            "span_s": median([r["span_s"] for r in rs]),
            "server_cpu_share": median([r["server_cpu_share"] for r in rs]),
            "consumer_cpu_share": median([r["consumer_cpu_share"] for r in rs]),
            "server_cpu_us_per_frame": median([r["server_cpu_us_per_frame"] for r in rs]),
            "consumer_cpu_us_per_frame": median([r["consumer_cpu_us_per_frame"] for r in rs]),
        }
    out["ratio"] = paired_ratio([r["frames_per_s"] for r in runs["provider"]], [r["frames_per_s"] for r in runs["bare"]])
    out["consumer_bound"] = any((out[n]["consumer_cpu_share"] or 0) > 0.9 for n in runs)
    return out
