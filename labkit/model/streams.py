"""Closed forms for held streams (Server-Sent Events and WebSocket), beside ``labkit.model``.

A stream is push over a connection that is already open, so an event costs
no request and no handshake:

- latency = one one-way trip (provider to consumer) + queueing. Queueing is
  the fan-out: the provider writes an event to K streams one after another,
  so the k-th waits k writes; with a per-write cost ``c`` the wait is uniform
  on [0, (K-1) c]: mean (K-1) c / 2, q-quantile q (K-1) c
  (``labkit.model.fanout``, which the webhook's dispatcher shares).
- bytes per event = frame overhead + the event's JSON. SSE: the ``event:``,
  ``data:`` and ``id:`` lines and the blank line that ends the event, inside
  one HTTP/1.1 chunk (hex size and two CRLFs). WebSocket: a 2-byte header,
  +2 from 126 bytes, +8 from 64 KiB (server frames are not masked; a client
  frame adds a 4-byte mask). Idle heartbeats and the connection's handshake
  are shared by the events that cross it.
- memory = a base + a cost per open connection. The per-connection cost is
  a parameter this module does not derive: it is measured (provider RSS
  against open streams) and every output that uses it says so.

Every function here is a model; results and figures label its outputs so.
The network between consumer and provider is not in these forms: the stream
styles (``labkit.styles.stream``) add its terms from ``labkit.model.network``
as webhook and polling do, one one-way trip per event and the handshakes once
per connection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from labkit.config import EVENT_STREAM, WS
from labkit.model.fanout import fanout_queueing_s

SSE_CHUNK_CRLF = 4  # "\r\n" after the chunk size and after the chunk
WS_SERVER_HEADER = 2
WS_MASK = 4


def stream_latency_s(one_way_s: float, queueing_s: float = 0.0) -> float:
    """Publish to receipt on an open stream: one one-way trip plus queueing."""
    return one_way_s + queueing_s


def sse_frame_bytes(event_type: str, event_id: int, data_bytes: int, *, data_lines: int = 1, events_per_chunk: float = 1.0) -> float:
    """Bytes of one SSE event on the wire: ``event: T\\n``, ``data: ...\\n`` per line, ``id: N\\n``, ``\\n``,
    and its share of the HTTP/1.1 chunk that carries it (several when a stream catches up)."""
    fields = (len("event: ") + len(event_type.encode()) + 1) + data_lines * (len("data: ") + 1) + data_bytes
    fields += len("id: ") + len(str(event_id)) + 1 + 1
    chunk_size = fields * events_per_chunk
    chunk_overhead = len(f"{int(chunk_size):x}") + SSE_CHUNK_CRLF
    return fields + chunk_overhead / events_per_chunk


def sse_overhead_bytes(event_type: str, event_id: int, data_bytes: int, **kw: Any) -> float:
    """SSE framing alone: the frame minus the event's JSON."""
    return sse_frame_bytes(event_type, event_id, data_bytes, **kw) - data_bytes


def ws_header_bytes(payload_bytes: int, *, masked: bool = False) -> int:
    """A WebSocket frame header (RFC 6455): 2 bytes, +2 or +8 for longer payloads, +4 when masked."""
    extra = 0 if payload_bytes < 126 else 2 if payload_bytes < 65536 else 8
    return WS_SERVER_HEADER + extra + (WS_MASK if masked else 0)


def ws_frame_bytes(payload_bytes: int, *, masked: bool = False) -> int:
    """One unfragmented, uncompressed text message: header + payload."""
    return ws_header_bytes(payload_bytes, masked=masked) + payload_bytes


def heartbeats_per_event(rate_per_s: float, heartbeat_s: float) -> float:
    """Idle heartbeats per event for Poisson arrivals: a gap X holds floor(X/H) of them,
    E[floor(X/H)] = e^(-lambda H) / (1 - e^(-lambda H))."""
    if rate_per_s <= 0 or heartbeat_s <= 0:
        raise ValueError("rate and heartbeat interval must be positive")
    p = math.exp(-rate_per_s * heartbeat_s)
    return p / (1 - p)


def stream_bytes_per_event(
    frame_bytes: float,
    *,
    rate_per_s: float,
    heartbeat_s: float | None = None,
    heartbeat_bytes: float = 0.0,
    handshake_bytes: float = 0.0,
    events_per_connection: float = math.inf,
) -> float:
    """Bytes per event per consumer: the frame, its share of idle heartbeats and of the connection's handshake."""
    total = frame_bytes
    if heartbeat_s and heartbeat_bytes:
        total += heartbeats_per_event(rate_per_s, heartbeat_s) * heartbeat_bytes
    if handshake_bytes and math.isfinite(events_per_connection) and events_per_connection > 0:
        total += handshake_bytes / events_per_connection
    return total


def connection_memory_bytes(connections: int, per_connection_bytes: float, base_bytes: float = 0.0) -> float:
    """Provider memory holding ``connections`` streams; ``per_connection_bytes`` is a measured parameter."""
    return base_bytes + connections * per_connection_bytes


def fit_per_connection_bytes(points: Sequence[tuple[int, float]]) -> dict[str, Any]:
    """Least-squares line through (open connections, RSS bytes): the measured memory parameter."""
    if len(points) < 2 or len({n for n, _ in points}) < 2:
        raise ValueError("need RSS at two or more different connection counts")
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    slope = sum((p[0] - mx) * (p[1] - my) for p in points) / sxx
    return {"kind": "measured", "per_connection_bytes": slope, "base_bytes": my - slope * mx, "points": n}


def stream_model(
    transport: str,
    *,
    one_way_s: float,
    streams: int = 1,
    write_cost_s: float = 0.0,
    event_type: str = "order.updated",
    event_json_bytes: int = 256,
    rate_per_s: float = 1.0,
    heartbeat_s: float | None = 15.0,
    per_connection_bytes: float | None = None,
) -> dict[str, Any]:
    """The model's prediction for one stream run over ``transport`` (``labkit.config.EVENT_STREAM`` or ``WS``), in the summary's units."""
    if transport == EVENT_STREAM:
        frame = sse_frame_bytes(event_type, 10**6, event_json_bytes)
        heartbeat = sse_frame_bytes("", 0, 0) if heartbeat_s else 0.0  # ": heartbeat" costs about an empty frame
        overhead = frame - event_json_bytes
    elif transport == WS:
        frame = float(ws_frame_bytes(event_json_bytes))
        heartbeat, heartbeat_s = 0.0, None  # the server's pings are control frames, not counted per event here
        overhead = frame - event_json_bytes
    else:
        raise ValueError(f"unknown stream transport {transport!r}")
    mean_q = fanout_queueing_s(streams, write_cost_s)
    out: dict[str, Any] = {
        "kind": "model",
        "latency_mean_ms": stream_latency_s(one_way_s, mean_q) * 1000,
        "latency_p99_ms": stream_latency_s(one_way_s, fanout_queueing_s(streams, write_cost_s, 0.99)) * 1000,
        "requests_per_event": 0.0,
        "frame_overhead_bytes": overhead,
        "bytes_per_event": stream_bytes_per_event(frame, rate_per_s=rate_per_s, heartbeat_s=heartbeat_s, heartbeat_bytes=heartbeat),
        "assumes": "an open stream: one one-way trip plus the fan-out's queueing; frame overhead plus payload",
    }
    if per_connection_bytes is not None:
        out["memory_bytes"] = connection_memory_bytes(streams, per_connection_bytes)
        out["memory_per_connection"] = {"kind": "measured", "bytes": per_connection_bytes}
    return out
