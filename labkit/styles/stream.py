"""Held streams (Server-Sent Events, WebSocket) as delivery styles: what the two share.

A run starts one stream consumer fleet process (``labkit.consumers.streams``)
holding one stream per consumer (``RunSettings.pollers`` of them: the
consumers that open a connection to the provider, as pollers do). The fleet
records through the same records as the other consumers, so de-duplication,
``received_counts`` and ``load_events`` are unchanged; it writes a stats file
and an exact snapshot on SIGUSR1, which brackets the workload window, as the
poller fleet does. The provider pushes each committed event down every open
stream, so the style is push without a public endpoint on the consumer.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from labkit.config import RunSettings, StreamTransport, receivers_per_event
from labkit.errors import OpenFilesExhausted, ServerError
from labkit.model import fanout as model_fanout
from labkit.model import network as model_network
from labkit.model import streams as model_streams
from labkit.model.calibration import Base, base_for
from labkit.servers import openfiles
from labkit.styles.base import Lab, ProjectedScale, Role, Style, mean_latency_s, network_profile, with_base, with_network
from labkit.styles.polling import snapshot_stats, wait_for_file
from labkit.styles.registry import StyleInfo, Variant, register

# Every stream connected before the first publish, or the run says why not.
CONNECT_TIMEOUT_BASE_S = 20.0
CONNECT_TIMEOUT_PER_STREAM_S = 0.01
# A provider at its open-files limit twice this far apart, streams still missing, cannot take them all.
AT_LIMIT_S = 3.0
# First connects spread over up to this, so N streams do not arrive as one burst.
MAX_CONNECT_SPREAD_S = 2.0
STREAMS_PER_SPREAD_S = 2000
# The consumer's backoff after a dropped stream: short, so a provider restart or a cut is caught up quickly.
BACKOFF_INITIAL_S = 0.05
BACKOFF_MAX_S = 1.0
# The costs a stream's model takes from the calibration (labkit.model.calibration), in seconds.
BASE_COSTS = ("frame_s", "write_cost_s")
# Streams in a calibration run: each publish's CPU is shared by this many frames, so the write cost is mostly the write's.
CALIBRATION_STREAMS = 20
# JSON around a payload as the feed shows an event: {"id":N,"type":"...","created_ns":19 digits,"payload":...}
CREATED_NS_DIGITS = 19


def event_json_bytes(event_type: str, payload_bytes: int, event_id: int = 1000) -> int:
    """Bytes of one event's JSON as the feed and the streams carry it (labkit.provider.dispatcher.event_json)."""
    head = f'{{"id":{event_id},"type":{json.dumps(event_type)},"created_ns":{"9" * CREATED_NS_DIGITS},"payload":'
    return len(head) + payload_bytes + 1


def fleet_connected(child: Any, stats_path: Any, connections: int, timeout_s: float, provider_pid: int | None = None) -> dict[str, Any]:
    """Wait until every stream of the fleet is established; ServerError names how many are not.

    A provider found at its open-files limit while streams are missing, and again
    ``AT_LIMIT_S`` or more later with streams still missing, cannot take them all (its
    accept loop gets EMFILE; the streams it refused retry, time out and let go of
    files, so its count swings below the limit in between): that is
    ``OpenFilesExhausted`` then, with the numbers, not a wait for the whole timeout.
    """
    deadline = time.monotonic() + timeout_s
    counters: dict[str, Any] = {}
    first_full: float | None = None
    while time.monotonic() < deadline:
        if not child.alive():
            raise ServerError(f"{child.name} exited during start-up (code {child.popen.returncode}): {child.log_tail()}")
        counters = dict(snapshot_stats(child, stats_path).get("counters") or {})
        connected = int(counters.get("connected", 0))
        if connected >= connections:
            return counters
        full = openfiles.at_limit(provider_pid) if provider_pid is not None else None
        if full is not None:
            first_full = time.monotonic() if first_full is None else first_full  # never reset: see the docstring
            if time.monotonic() - first_full >= AT_LIMIT_S:
                raise provider_out_of_files(full, connected, connections)
        time.sleep(0.1)
    full = openfiles.at_limit(provider_pid) if provider_pid is not None else None
    if full is not None:
        raise provider_out_of_files(full, int(counters.get("connected", 0)), connections)
    raise ServerError(
        f"{child.name}: {counters.get('connected', 0)} of {connections} streams connected within {timeout_s:.0f} s: {child.log_tail()}"
    )


def provider_out_of_files(full: tuple[int, int], connected: int, requested: int) -> OpenFilesExhausted:
    """The error of a provider that holds every file it may open while streams are still missing."""
    open_now, limit = full
    return OpenFilesExhausted(
        f"the provider is at its open-files limit ({open_now} of {limit} open): {connected} of {requested} streams connected",
        role="provider",
        open_files=open_now,
        limit=limit,
        connected=connected,
        requested=requested,
    )


class StreamStyle(Style):
    """Push over a connection the consumer opened: one fleet process, one stream per consumer.

    SSE and WebSocket differ only in the transport the fleet speaks, so one class
    serves both, told its transport when it is made.
    """

    def __init__(self, info: StyleInfo, transport: StreamTransport) -> None:
        self.info = info
        self.transport = transport

    def refuse(self, settings: RunSettings) -> str | None:
        if settings.batch_max_events > 1:
            return "batch_max_events: a stream sends each event in its own frame; set batch_max_events = 1"
        if settings.batch_window_ms > 0:
            return "batch_window_ms: a stream sends each event as it is committed; set batch_window_ms = 0"
        if settings.thin_events:
            return "thin_events: a stream carries the whole event; set thin_events = false"
        if settings.snapshot:
            return "snapshot: a stream follows the event log, not the latest version; set snapshot = false"
        return None

    def consumer_names(self, settings: RunSettings) -> list[str]:
        return [f"c{i}" for i in range(settings.pollers)]

    def fleet_settings(self, lab: Lab, base_url: str) -> dict[str, Any]:
        """The stream consumer fleet's settings (``labkit.config.StreamConsumerSettings``) for this run."""
        n = lab.settings.pollers
        return {
            "base_url": base_url,
            "protocol": self.transport,
            "api_key": lab.consumer_key,
            "connections": n,
            "db_path": str(lab.consumer_db),
            "stats_path": str(lab.stats_path),
            "connect_spread_s": min(MAX_CONNECT_SPREAD_S, n / STREAMS_PER_SPREAD_S),
            "backoff_initial_s": BACKOFF_INITIAL_S,
            "backoff_max_s": BACKOFF_MAX_S,
            "seed": lab.settings.workload.seed,
            "api_keys": lab.consumer_keys,  # a non-broadcast audience: each stream its own scoped key
            # split over more processes still when one may not hold them all (labkit.consumers.streams.worker_settings)
            "processes": lab.settings.consumer_processes,
        }

    async def start_consumer(self, lab: Lab) -> Role:
        base = await lab.link("127.0.0.1", lab.provider.port or 0)
        s = self.fleet_settings(lab, base)
        lab.fault.tune("streams", s, lab)
        lab.consumers = self.consumer_names(lab.settings)
        role = await lab.start("streams", "streams", s, server=False)
        await asyncio.to_thread(wait_for_file, role.child, lab.stats_path)
        n = s["connections"]
        timeout = CONNECT_TIMEOUT_BASE_S + CONNECT_TIMEOUT_PER_STREAM_S * n
        await asyncio.to_thread(fleet_connected, role.child, lab.stats_path, n, timeout, lab.provider.child.pid)
        return role

    async def counters_now(self, lab: Lab) -> dict[str, Any]:
        snap = await asyncio.to_thread(snapshot_stats, lab.consumer.child, lab.stats_path)
        counters = dict(snap.get("counters") or {})
        if counters:
            # a stream costs one request when it is opened (the GET /stream or the WebSocket upgrade)
            counters["requests"] = int(counters.get("connects", 0)) + int(counters.get("http_errors", 0))
        return counters

    def summary(self, run: Any, settings: RunSettings, per: int, rate: float) -> dict[str, Any]:
        counters = run.consumer_stats.get("counters", {})
        window = run.window_counters
        pstats = run.provider_stats or {}
        connects = int(counters.get("connects", 0))
        requests = connects + int(counters.get("http_errors", 0))
        streams = max(len(run.consumers), 1)
        per_conn = None
        if run.provider_rss_bytes and run.provider_rss_base_bytes:
            per_conn = max(run.provider_rss_bytes - run.provider_rss_base_bytes, 0) / streams
        out: dict[str, Any] = {
            "protocol": self.info.name,  # the summary names the style's protocol as before
            "connections": len(run.consumers),
            "connects": connects,
            "reconnects": int(counters.get("reconnects", 0)),
            "connect_errors": int(counters.get("connect_errors", 0)),
            "dropped_backpressure": int(pstats.get("streams_dropped_backpressure", 0) or 0),
            "backpressure_drops_seen": int(counters.get("backpressure_drops_seen", 0)),
            "forced_disconnects": int(counters.get("forced_disconnects", 0)),
            "idle_timeouts": int(counters.get("idle_timeouts", 0)),
            "requests": requests,
            "requests_per_event": (window.get("requests") or 0) / per if window else requests / per,
            "requests_per_event_whole_run": requests / per,
            "provider_memory_per_connection_kb": per_conn / 1024 if per_conn is not None else None,
            "lag_ms": counters.get("lag"),
        }
        base = base_for(getattr(run, "calibration", None), self.info.name, BASE_COSTS)
        # the connections the fleet really opened (connects, reconnects included), beside the model's (model.connections)
        out["connections_opened"] = connects
        published = len(run.published_ids)
        fanout = max(1, round(per / published)) if published else None  # receivers per event (the audience's)
        out["model"] = self.model_block(settings, base, streams=streams, rate=rate, published=published, per_conn=per_conn, fanout=fanout)
        return out

    def predict(self, settings: RunSettings, calibration: Any) -> dict[str, Any] | None:
        """The model at these settings before any run: the calibrated frame, every stream opened once.

        An event's fan-out is its audience's receivers (every stream for a
        broadcast, one for a per-consumer audience), as the summary counts it after the run.
        """
        base = base_for(calibration, self.info.name, BASE_COSTS)
        wl = settings.workload
        streams = max(settings.pollers, 1)
        fanout = receivers_per_event(settings.audience, streams, settings.topics, settings.subscriptions)
        return self.model_block(
            settings,
            base,
            streams=streams,
            rate=wl.rate_per_s,
            published=round(wl.rate_per_s * wl.duration_s),
            per_conn=None,
            fanout=max(1, round(fanout)),
        )

    def model_block(
        self,
        settings: RunSettings,
        base: Base,
        *,
        streams: int,
        rate: float,
        published: int,
        per_conn: float | None,
        fanout: int | None = None,
    ) -> dict[str, Any]:
        """The stream model from the settings and the calibration (and the measured memory per connection, labelled so)."""
        wl = settings.workload
        m = model_streams.stream_model(
            self.transport,
            one_way_s=base.get("frame_s"),
            streams=streams,
            write_cost_s=base.get("write_cost_s"),
            event_type=wl.event_type,
            event_json_bytes=event_json_bytes(wl.event_type, wl.payload_bytes),
            rate_per_s=rate,
            heartbeat_s=None,
            per_connection_bytes=per_conn,
        )
        m["parameters"] = {
            "one_way_s": {
                "kind": "calibration",
                "value": base.get("frame_s"),
                "from": f"{base.source}: a loopback frame, created to recorded",
            },
            "write_cost_s": {"kind": "calibration", "value": base.get("write_cost_s"), "from": f"{base.source}: provider CPU per frame"},
        }
        m["rate_per_s"] = rate
        m["connections"] = streams  # one stream per consumer, opened once: no reconnect without a fault
        # one event's fan-out queue is its receivers: every stream for a broadcast, one for a per-consumer audience
        f = fanout or streams
        return self.network_model(m, settings, base, streams=f, events_per_connection=float(max(published, 1)) * f / streams)

    def calibration_consumers(self) -> int:
        """Enough streams that the provider's CPU per frame is mostly the frame's write, not the publish it shares."""
        return CALIBRATION_STREAMS

    def calibration_costs(self, run: Any, settings: RunSettings) -> dict[str, float]:
        """The lab's work per frame on loopback: a frame's mean latency (less the fan-out's wait) and the provider's CPU per frame."""
        mean = mean_latency_s(run)
        fanned = int((run.provider_stats or {}).get("stream_events_fanned_out", 0) or 0)
        if mean is None or not fanned:
            return {}
        write_cost = max(run.provider_cpu_s - run.provider_cpu_start_s, 0.0) / fanned
        streams = max(len(run.consumers), 1)
        return {"frame_s": max(mean - model_fanout.fanout_queueing_s(streams, write_cost), 0.0), "write_cost_s": write_cost}

    def network_model(
        self, block: dict[str, Any], settings: RunSettings, base: Base, *, streams: int, events_per_connection: float
    ) -> dict[str, Any]:
        """The stream model with the network's terms, as webhook and polling have them (``labkit.model.network``).

        A held stream pays one one-way trip per event; its handshakes (TCP, and
        TLS) are paid once per connection and shared by the events it carries.
        The calibrated loopback frame is the lab's own work; the fan-out's
        queueing (at the calibrated write cost) is the provider's and is added to it.
        """
        profile = network_profile(settings)
        write_cost = base.get("write_cost_s")
        mean_q = model_fanout.fanout_queueing_s(streams, write_cost)
        q99 = model_fanout.fanout_queueing_s(streams, write_cost, 0.99)
        terms = model_network.stream_latency(
            profile,
            base_s=base.get("frame_s") + mean_q,
            event_bytes=block["bytes_per_event"],
            tls=settings.tls,
            events_per_connection=events_per_connection,
        )
        block = with_base(with_network(block, terms, settings), base)
        block["latency_p99_ms"] = (terms.total_s - mean_q + q99) * 1000
        block["events_per_connection"] = events_per_connection if math.isfinite(events_per_connection) else None
        return block

    def fault_measures(self, counters: Mapping[str, Any], deliveries: Mapping[str, Any], retry: dict[str, Any]) -> dict[str, Any]:
        return {
            "duplicates_seen": int(counters.get("duplicate_events", 0)),
            "processed_total": int(counters.get("events", 0)),
            # a dropped stream is opened again and resumes after its last id
            "retries": int(counters.get("reconnects", 0)),
            "dead_lettered": 0,
            "disabled": 0,
            "attempt_status_counts": {},
            "failed_polls": None,
            "throttled_polls": None,
            "reconnects": int(counters.get("reconnects", 0)),
            "connect_errors": int(counters.get("connect_errors", 0)),
            "forced_disconnects": int(counters.get("forced_disconnects", 0)),
        }

    def variant(self, setting: Callable[[str], Any], assumes: str) -> str:
        return self.info.label

    def project(self, scale: ProjectedScale) -> tuple[float, str]:
        return 0.0, f"{self.info.label}: no request per event over an open stream"

    def model_curve_label(self, batch: int) -> str | None:
        return f"model: {self.info.label}, 0 requests per event"


def register_stream(name: str, label: str, *, transport: StreamTransport, colour: str, marker: str, order: int) -> StyleInfo:
    """Register a held-stream style whose consumers speak ``transport``; returns its StyleInfo."""
    info = StyleInfo(
        name=name,
        label=label,
        colour=colour,
        marker=marker,
        direction="push",
        needs_public_endpoint=False,
        dedup_key="event id; resumes from its last id",
        order=order,
        variants=(Variant(label, label, "stream"),),
    )
    return register(info, StreamStyle(info, transport=transport))
