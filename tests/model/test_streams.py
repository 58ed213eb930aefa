"""The stream model's frame bytes against the frames the provider and websockets really produce."""

from __future__ import annotations

import math
import socket

import orjson
import pytest
from websockets.frames import Frame, Opcode

from labkit.config import EVENT_STREAM, WS
from labkit.model import streams as m
from labkit.provider.streams import encode
from tests.helpers.streams import KEY, Lab


@pytest.mark.parametrize("size", [10, 200, 5000])
def test_sse_frame_is_the_encoded_frame_plus_its_chunk(size: int) -> None:
    row = (123456, "order.updated", 1_700_000_000_000_000_000, orjson.dumps({"pad": "x" * size}))
    item = encode(row)
    data = len(item.json.encode())
    chunk = len(f"{len(item.sse):x}") + 4
    assert m.sse_frame_bytes("order.updated", 123456, data) == len(item.sse) + chunk
    assert m.sse_overhead_bytes("order.updated", 123456, data) == len(item.sse) + chunk - data


@pytest.mark.parametrize(("size", "masked"), [(10, False), (125, False), (126, False), (70000, False), (300, True)])
def test_ws_frame_matches_websockets_serialisation(size: int, masked: bool) -> None:
    wire = Frame(Opcode.TEXT, b"x" * size).serialize(mask=masked)
    assert m.ws_frame_bytes(size, masked=masked) == len(wire)


def test_latency_queueing_and_heartbeats() -> None:
    assert m.fanout_queueing_s(1, 0.001) == 0
    assert m.fanout_queueing_s(101, 0.001) == pytest.approx(0.05)
    assert m.fanout_queueing_s(101, 0.001, q=0.99) == pytest.approx(0.099)
    assert m.stream_latency_s(0.0002, 0.05) == pytest.approx(0.0502)
    # rare events: about (1 / (lambda H)) heartbeats per event; frequent events: almost none
    assert m.heartbeats_per_event(0.01, 15) == pytest.approx(math.exp(-0.15) / (1 - math.exp(-0.15)))
    assert m.heartbeats_per_event(10, 15) < 1e-60
    with pytest.raises(ValueError):
        m.fanout_queueing_s(0, 0.001)


def test_memory_parameter_is_fitted_and_labelled_measured() -> None:
    fit = m.fit_per_connection_bytes([(0, 50e6), (1000, 70e6), (2000, 90e6)])
    assert fit["kind"] == "measured" and fit["per_connection_bytes"] == pytest.approx(20_000)
    model = m.stream_model(EVENT_STREAM, one_way_s=0.0002, streams=1000, write_cost_s=1e-5, per_connection_bytes=20_000)
    assert model["kind"] == "model" and model["memory_per_connection"]["kind"] == "measured"
    assert model["memory_bytes"] == pytest.approx(20e6)
    assert m.stream_model(WS, one_way_s=0.0002)["frame_overhead_bytes"] == 4  # 256-byte JSON: 2 + 2


@pytest.mark.slow
def test_bytes_on_the_wire_match_the_model(lab: Lab) -> None:
    """Read a live SSE response raw: after the head and the opening frame, each event costs the model's bytes."""
    p = lab.provider()
    sock = socket.create_connection(("127.0.0.1", p.port or 0), timeout=10)
    try:
        sock.sendall(f"GET /stream HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n\r\n".encode())
        buf = b""
        while b"retry: 1000\n\n\r\n" not in buf:
            buf += sock.recv(65536)
        ids = lab.publish(p.url, 5)
        body = b""
        while body.count(b"\n\n") < 5:
            body += sock.recv(65536)
    finally:
        sock.close()
    # chunk framing is included: a live event travels in its own chunk (or shares one if it queued behind another)
    expected = 0.0
    seen = []
    for text in body.split(b"\r\n")[1::2]:
        frames = [f for f in text.decode().split("\n\n") if f]
        for frame in frames:
            event = orjson.loads(frame.split("data: ", 1)[1].split("\n", 1)[0])
            seen.append(event["id"])
            expected += m.sse_frame_bytes(event["type"], event["id"], len(orjson.dumps(event)), events_per_chunk=len(frames))
    assert seen == ids
    assert len(body) == pytest.approx(expected, abs=1)
