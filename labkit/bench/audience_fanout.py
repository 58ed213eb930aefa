"""``labkit bench`` case ``per_consumer_fanout``: provider CPU per delivered SSE frame, per-consumer against broadcast.

K SSE streams are held open on one provider per case by a stream consumer
fleet (``labkit.consumers.streams``, counting frames only). The broadcast
case publishes E events, each handed to all K streams (E x K frames). The
per-consumer case gives every stream its own consumer key (``c<i>``, made from
the provider's consumer-key secret, ``labkit.wire.signing.consumer_key``) and
publishes E x K events, each to one consumer in turn: the same E x K frames,
each routed through the hub's consumer index to its one stream. A third
provider, with no stream open, takes the same E x K publishes: what a publish
costs by itself (a request and a SQLite insert), which a broadcast shares
among K frames and a per-consumer event does not.

Two ratios of provider CPU per delivered frame, per-consumer / broadcast:
``ratio`` with each event's publish taken out (the delivery and routing of a
frame: judged, at most 1.5; a hub that scanned every stream per event would
multiply it by K), and ``ratio_with_publish`` as measured (recorded, not
judged: one publish per frame against one per K frames is the audience's cost,
not the hub's). The cases alternate.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx

from labkit.bench.cases import EVENT_TYPE, Lab, Plan, median, provider_settings, seed_events
from labkit.config import DEFAULT_API_KEY
from labkit.errors import RunError
from labkit.servers.procs import Child
from labkit.wire.signing import consumer_key

# (streams K, events per stream E) by plan mode
SIZES = {"tiny": (20, 5), "quick": (1000, 3), "full": (10_000, 2)}
WAIT_S = 300.0
KEY_SECRET = "bench-consumer-key-secret-0001"  # a benchmark's throw-away secret: loopback only, no data


def read_counters(path: Path) -> dict[str, Any]:
    for _ in range(20):
        try:
            return dict(json.loads(path.read_text())["counters"])
        except (OSError, ValueError, KeyError):
            time.sleep(0.02)
    return {}


def wait_for(child: Child, path: Path, done: Any, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while True:
        c = read_counters(path)
        if c and done(c):
            return c
        if not child.alive():
            raise RunError(f"per_consumer_fanout: {child.name} exited: {child.log_tail()}")
        if time.monotonic() > deadline:
            raise RunError(f"per_consumer_fanout: {what} within {WAIT_S:.0f} s")
        time.sleep(0.05)


def start_fleet(lab: Lab, name: str, url: str, streams: int, keys: list[str]) -> tuple[Child, Path]:
    stats = lab.work_dir / f"{name}.stats.json"
    settings: dict[str, Any] = {
        "base_url": url,
        "connections": streams,
        "record": False,
        "stats_path": str(stats),
        "connect_spread_s": min(5.0, max(1.0, streams / 2000)),
        "idle_timeout_s": 600,
        "connect_timeout_s": 60,
    }
    if keys:
        settings["api_keys"] = keys
    child = lab.group.start_worker(name, "streams", settings)
    wait_for(child, stats, lambda c: c.get("connected") == streams and c.get("connects") == streams, f"{streams} streams not connected")
    return child, stats


def burst(server: Child, fleet: Child, stats: Path, owners: list[str | None], streams: int) -> dict[str, Any]:
    """Publish one event per entry of ``owners`` (its consumer, or None: every stream's) and time the frames' arrival."""
    before = read_counters(stats).get("frames", 0)
    cpu0, fleet_cpu0 = server.cpu_s(), fleet.cpu_s()
    frames = frames_expected(owners, streams)
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {DEFAULT_API_KEY}"}, timeout=30.0) as client:
        t0 = time.time_ns()
        for owner in owners:
            body: dict[str, Any] = {"type": EVENT_TYPE, "payload": {"bench": "x" * 200}}
            if owner is not None:
                body["consumer"] = owner
            r = client.post("/events", json=body)
            if r.status_code != 201:
                raise RunError(f"per_consumer_fanout: publish answered {r.status_code} {r.text[:200]}")
    c = wait_for(fleet, stats, lambda c: c.get("frames", 0) >= before + frames, f"{frames} frames not received")
    span = (c["last_received_ns"] - t0) / 1e9
    server_cpu, fleet_cpu = server.cpu_s() - cpu0, fleet.cpu_s() - fleet_cpu0
    return {
        "frames": frames,
        "span_s": span,
        "server_cpu_us_per_frame": server_cpu / frames * 1e6,
        "consumer_cpu_us_per_frame": fleet_cpu / frames * 1e6,
        "frames_per_s": frames / span if span > 0 else None,
    }


def frames_expected(owners: list[str | None], streams: int) -> int:
    """Frames a burst delivers: every stream's for a broadcast event, one for an event of one consumer."""
    return sum(streams if owner is None else 1 for owner in owners)


def publish_cost(server: Child, owners: list[str | None]) -> dict[str, Any]:
    """Provider CPU per publish of these events with no stream open: the publish alone."""
    cpu0 = server.cpu_s()
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {DEFAULT_API_KEY}"}, timeout=30.0) as client:
        for owner in owners:
            r = client.post("/events", json={"type": EVENT_TYPE, "payload": {"bench": "x" * 200}, "consumer": owner})
            if r.status_code != 201:
                raise RunError(f"per_consumer_fanout: publish answered {r.status_code} {r.text[:200]}")
    return {"events": len(owners), "server_cpu_us_per_event": (server.cpu_s() - cpu0) / max(len(owners), 1) * 1e6}


def per_consumer_fanout(lab: Lab, plan: Plan) -> dict[str, Any]:
    """Provider CPU per delivered frame to K SSE streams: per-consumer events / broadcast events, same frames."""
    streams, per_stream = SIZES.get(plan.mode, SIZES["full"])
    limits = {"queue_max_events": 1000, "heartbeat_s": 60, "max_streams": max(streams * 2, 1000)}
    names = [f"c{i}" for i in range(streams)]
    cases: dict[str, tuple[Child, Child, Path, list[str | None]]] = {}
    broadcast: list[str | None] = [None] * per_stream
    own: list[str | None] = [n for _ in range(per_stream) for n in names]
    for case, keys, owners in (("broadcast", [], broadcast), ("per_consumer", [consumer_key(KEY_SECRET, n) for n in names], own)):
        db = lab.work_dir / f"audience-{case}.db"
        seed_events(db, 1, plan.payload_bytes)
        server = lab.group.start_server(
            f"audience-{case}", "provider", provider_settings(db, streams=limits, consumer_key_secret=KEY_SECRET)
        )
        fleet, stats = start_fleet(lab, f"audience-fleet-{case}", server.url, streams, keys)
        cases[case] = (server, fleet, stats, owners)
    db = lab.work_dir / "audience-publish-only.db"
    seed_events(db, 1, plan.payload_bytes)
    alone = lab.group.start_server("audience-publish-only", "provider", provider_settings(db, streams=limits))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
    publishes: list[dict[str, Any]] = []
    steps, done = plan.reps * 3, 0
    for rep in range(plan.reps):
        order = list(cases) if rep % 2 == 0 else list(reversed(cases))
        for name in order:
            server, fleet, stats, owners = cases[name]
            runs[name].append(burst(server, fleet, stats, owners, streams))
            done += 1
            lab.progress("bench: per-consumer fan-out", done, steps)
        publishes.append(publish_cost(alone, own))
        done += 1
        lab.progress("bench: per-consumer fan-out", done, steps)
    for server, fleet, _, _ in cases.values():
        lab.group.stop(fleet)
        lab.group.stop(server)
    lab.group.stop(alone)
    out: dict[str, Any] = {"streams": streams, "frames_per_stream": per_stream}
    for name, rs in runs.items():
        out[name] = {
            "frames": rs[0]["frames"] if rs else 0,
            "server_cpu_us_per_frame": median([r["server_cpu_us_per_frame"] for r in rs]),
            "consumer_cpu_us_per_frame": median([r["consumer_cpu_us_per_frame"] for r in rs]),
            "span_s": median([r["span_s"] for r in rs]),
            "samples_server_cpu_us_per_frame": [round(r["server_cpu_us_per_frame"], 2) for r in rs],
        }
    out["publish_only"] = {"server_cpu_us_per_event": median([r["server_cpu_us_per_event"] for r in publishes])}
    # CPU time is read in clock ticks: a case too short to take one is given one (the tiny smoke run)
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    b, p = (max(out[n]["server_cpu_us_per_frame"], tick_us / max(out[n]["frames"], 1)) for n in ("broadcast", "per_consumer"))
    publish = out["publish_only"]["server_cpu_us_per_event"]
    out["ratio_with_publish"] = p / b
    out["ratio"] = max(p - publish, tick_us / max(out["per_consumer"]["frames"], 1)) / b
    return out
