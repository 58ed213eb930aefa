"""``labkit bench`` case ``per_consumer_fanout``: provider CPU per delivered SSE frame, per-consumer against broadcast.

K SSE streams are held open on one provider per case by a stream consumer
fleet (``labkit.consumers.streams``, counting frames only). The broadcast
case publishes E events, each handed to all K streams (E x K frames). The
per-consumer case gives every stream its own consumer key (``c<i>``, made from
the provider's consumer-key secret, ``labkit.wire.signing.consumer_key``) and
publishes E x K events, each to one consumer: the same E x K frames, each
routed through the hub's consumer index to its one stream.

Both cases publish the way a provider producing events at a high rate does,
through ``POST /events/batch`` (one request and one transaction for many
events), in rounds that hand every stream exactly one frame: a broadcast round
is one event (for all K streams), a per-consumer round is K events, one per
consumer, sent in batches of at most ``BATCH_MAX_EVENTS``. So each case makes
one socket write per frame and about one publish request per K frames; what
differs is what the audience costs: a per-consumer frame needs an event of its
own, read, stored, indexed, encoded and routed, where a broadcast event's work
is shared by K frames.

The judged ``ratio`` is provider CPU per delivered frame, per-consumer /
broadcast, with everything the provider did in the burst: taking the events
in, storing, routing and writing. A third provider, with no stream open,
takes the same per-consumer batches: what taking in and storing an event costs
by itself, the ``breakdown`` of a per-consumer frame into that publish and the
rest (routing and the write), and ``ratio_publish_excluded`` (the rest over a
broadcast frame, recorded, not judged). The cases alternate, and each
repetition runs one burst of each back to back: the judged ratio is the median
of the repetitions' own ratios (``ratio_samples``, with a 95 % interval of
that median), so a machine that slows down between repetitions (a shared VM
does) moves both sides of a pair, not one side of the comparison;
``ratio_of_medians`` is recorded beside it.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from labkit.bench.cases import EVENT_TYPE, Lab, Plan, median, median_interval, provider_settings, seed_events
from labkit.bench.fleets import all_connected, read_counters, wait_counters
from labkit.config import DEFAULT_API_KEY
from labkit.errors import RunError
from labkit.provider.publishing import BATCH_MAX_EVENTS
from labkit.servers.procs import Child
from labkit.wire.signing import consumer_key

# (streams K, events per stream E) by plan mode. The quick plan's bursts are 10,000 frames (a few hundred ms of
# provider CPU), so that one burst disturbed by the machine moves a median less; with 3,000-frame bursts and three
# repetitions, single quick runs of the same code ranged 1.04 to 1.5.
SIZES = {"tiny": (20, 5), "quick": (1000, 10), "full": (10_000, 2)}
MIN_REPS = 11  # bursts per case at least (the tiny smoke run excepted): with 7, single quick runs of the same code spread 1.28 to 1.50
WAIT_S = 300.0
KEY_SECRET = "bench-consumer-key-secret-0001"  # a benchmark's throw-away secret: loopback only, no data
PAYLOAD = {"bench": "x" * 200}
MAX_BODY_BYTES = 1024 * 1024  # a batch of BATCH_MAX_EVENTS such events is about 280 KB


def rounds(owners: list[str | None], per_stream: int) -> list[bytes]:
    """The request bodies of a burst: ``per_stream`` rounds of one event per owner (a consumer, or None: every stream), batched."""
    bodies = []
    for _ in range(per_stream):
        for i in range(0, len(owners), BATCH_MAX_EVENTS):
            events = [
                {"type": EVENT_TYPE, "payload": PAYLOAD} | ({"consumer": o} if o is not None else {})
                for o in owners[i : i + BATCH_MAX_EVENTS]
            ]
            bodies.append(orjson.dumps({"events": events}))
    return bodies


def publish(client: httpx.Client, bodies: list[bytes]) -> int:
    """Send the batches in order; how many events the provider took."""
    n = 0
    for body in bodies:
        r = client.post("/events/batch", content=body, headers={"content-type": "application/json"})
        if r.status_code != 201:
            raise RunError(f"per_consumer_fanout: publish answered {r.status_code} {r.text[:200]}")
        n += len(r.json()["ids"])
    return n


def cpu_s(child: Child) -> float:
    """CPU seconds of ``child`` in nanoseconds' resolution where the kernel says (a burst is tens of ms: clock ticks are 10 ms)."""
    run = child.run_s()
    return run if math.isfinite(run) else child.cpu_s()


def client_of(server: Child) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {DEFAULT_API_KEY}"}, timeout=60.0)


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
    wait_counters("per_consumer_fanout", child, stats, all_connected(streams), f"{streams} streams not connected", WAIT_S)
    return child, stats


def burst(server: Child, fleet: Child, stats: Path, bodies: list[bytes], frames: int) -> dict[str, Any]:
    """Publish the burst's batches and time the ``frames`` frames' arrival; the provider's and the fleet's CPU per frame."""
    before = read_counters(stats).get("frames", 0)
    cpu0, fleet_cpu0 = cpu_s(server), cpu_s(fleet)
    with client_of(server) as client:
        t0 = time.time_ns()
        events = publish(client, bodies)
    c = wait_counters(
        "per_consumer_fanout", fleet, stats, lambda c: c.get("frames", 0) >= before + frames, f"{frames} frames not received", WAIT_S
    )
    span = (c["last_received_ns"] - t0) / 1e9
    server_cpu, fleet_cpu = cpu_s(server) - cpu0, cpu_s(fleet) - fleet_cpu0
    return {
        "frames": frames,
        "events": events,
        "requests": len(bodies),
        "span_s": span,
        "server_cpu_us_per_frame": server_cpu / frames * 1e6,
        "consumer_cpu_us_per_frame": fleet_cpu / frames * 1e6,
        "frames_per_s": frames / span if span > 0 else None,
    }


def publish_cost(server: Child, bodies: list[bytes]) -> dict[str, Any]:
    """Provider CPU per event of these batches with no stream open: taking the events in and storing them, alone."""
    cpu0 = cpu_s(server)
    with client_of(server) as client:
        events = publish(client, bodies)
    return {"events": events, "server_cpu_us_per_event": (cpu_s(server) - cpu0) / max(events, 1) * 1e6}


def per_consumer_fanout(lab: Lab, plan: Plan) -> dict[str, Any]:
    """Provider CPU per delivered frame to K SSE streams: per-consumer events / broadcast events, same frames, same writes."""
    streams, per_stream = SIZES.get(plan.mode, SIZES["full"])
    limits = {"queue_max_events": 1000, "heartbeat_s": 60, "max_streams": max(streams * 2, 1000)}
    names = [f"c{i}" for i in range(streams)]
    broadcast, own = rounds([None], per_stream), rounds(list(names), per_stream)
    cases: dict[str, tuple[Child, Child, Path, list[bytes]]] = {}
    for case, keys, bodies in (("broadcast", [], broadcast), ("per_consumer", [consumer_key(KEY_SECRET, n) for n in names], own)):
        db = lab.work_dir / f"audience-{case}.db"
        seed_events(db, 1, plan.payload_bytes)
        settings = provider_settings(db, streams=limits, consumer_key_secret=KEY_SECRET, max_body_bytes=MAX_BODY_BYTES)
        server = lab.group.start_server(f"audience-{case}", "provider", settings)
        fleet, stats = start_fleet(lab, f"audience-fleet-{case}", server.url, streams, keys)
        cases[case] = (server, fleet, stats, bodies)
    db = lab.work_dir / "audience-publish-only.db"
    seed_events(db, 1, plan.payload_bytes)
    alone = lab.group.start_server(
        "audience-publish-only", "provider", provider_settings(db, streams=limits, max_body_bytes=MAX_BODY_BYTES)
    )
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
    publishes: list[dict[str, Any]] = []
    reps = plan.reps if plan.mode == "tiny" else max(plan.reps, MIN_REPS)
    steps, done = reps * 3, 0
    for rep in range(reps):
        order = list(cases) if rep % 2 == 0 else list(reversed(cases))
        for name in order:
            server, fleet, stats, bodies = cases[name]
            runs[name].append(burst(server, fleet, stats, bodies, streams * per_stream))
            done += 1
            lab.progress("bench: per-consumer fan-out", done, steps)
        publishes.append(publish_cost(alone, own))
        done += 1
        lab.progress("bench: per-consumer fan-out", done, steps)
    for server, fleet, _, _ in cases.values():
        lab.group.stop(fleet)
        lab.group.stop(server)
    lab.group.stop(alone)
    return summarise(runs, publishes, streams, per_stream)


def summarise(runs: dict[str, list[dict[str, Any]]], publishes: list[dict[str, Any]], streams: int, per_stream: int) -> dict[str, Any]:
    """The case's record: each side's medians, the publish alone, the ratios and the breakdown of a per-consumer frame."""
    out: dict[str, Any] = {
        "streams": streams,
        "frames_per_stream": per_stream,
        "publishing": {
            "path": "POST /events/batch",
            "why": "both cases publish in rounds that hand every stream one frame: a broadcast round is one event,"
            f" a per-consumer round one event per consumer in batches of at most {BATCH_MAX_EVENTS}",
            "batch_max_events": BATCH_MAX_EVENTS,
        },
    }
    for name, rs in runs.items():
        out[name] = {
            "frames": rs[0]["frames"] if rs else 0,
            "events": rs[0]["events"] if rs else 0,
            "requests": rs[0]["requests"] if rs else 0,
            "server_cpu_us_per_frame": median([r["server_cpu_us_per_frame"] for r in rs]),
            "consumer_cpu_us_per_frame": median([r["consumer_cpu_us_per_frame"] for r in rs]),
            "span_s": median([r["span_s"] for r in rs]),
            "samples_server_cpu_us_per_frame": [round(r["server_cpu_us_per_frame"], 2) for r in rs],
        }
    out["publish_only"] = {
        "server_cpu_us_per_event": median([r["server_cpu_us_per_event"] for r in publishes]),
        "path": "POST /events/batch",
    }
    # CPU time is read in clock ticks: a case too short to take one is given one (the tiny smoke run)
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    b, p = (max(out[n]["server_cpu_us_per_frame"] or 0.0, tick_us / max(out[n]["frames"], 1)) for n in ("broadcast", "per_consumer"))
    publish = out["publish_only"]["server_cpu_us_per_event"] or 0.0

    # judged: everything the provider did for the frames, the events' intake included, as the median of each
    # repetition's ratio (its two bursts ran back to back, so the machine's drift between repetitions cancels)
    def per_frame(r: dict[str, Any]) -> float:
        return float(max(r["server_cpu_us_per_frame"], tick_us / max(r["frames"], 1)))

    pairs = [per_frame(x) / per_frame(y) for x, y in zip(runs["per_consumer"], runs["broadcast"], strict=True)]
    out["ratio"] = median(pairs) or p / b
    out["ratio_with_publish"] = out["ratio"]
    out["ratio_samples"] = [round(r, 3) for r in pairs]
    out["ratio_interval_95"] = median_interval(pairs)
    out["ratio_of_medians"] = p / b
    out["ratio_publish_excluded"] = max(p - publish, tick_us / max(out["per_consumer"]["frames"], 1)) / b
    out["breakdown_us_per_frame"] = {"per_consumer": p, "publish": publish, "route_and_write": p - publish, "broadcast": b}
    return out
