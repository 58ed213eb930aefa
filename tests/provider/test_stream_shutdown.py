"""Stopping a provider with streams open: each stream is ended with a stated reason, not cut off."""

from __future__ import annotations

import json

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from labkit.provider.streams import SHUTTING_DOWN
from tests.helpers.streams import AUTH, Lab, events, read_sse


def test_a_stopping_provider_ends_its_streams_with_the_reason_and_exits_cleanly(lab: Lab) -> None:
    p = lab.provider(heartbeat_s=60)
    lab.publish(p.url, 2)
    ws = connect(f"ws://127.0.0.1:{p.port}/ws", additional_headers=AUTH, compression=None, open_timeout=10, proxy=None)
    ws.send(json.dumps({"after": 0}))
    assert [json.loads(ws.recv(timeout=10))["id"] for _ in range(2)] == [1, 2]
    with httpx.Client(base_url=p.url, timeout=10.0) as c, c.stream("GET", "/stream", headers=AUTH) as r:
        lines = r.iter_lines()
        assert [int(f.id) for f in events(read_sse(lines, lambda fs: len(events(fs)) >= 2))] == [1, 2]
        code = lab.group.stop(p)  # SIGTERM; the streams are still open
        tail = read_sse(lines, lambda fs: any(f.event == "error" for f in fs))
    errors = [f.json() for f in tail if f.event == "error"]
    assert errors == [{"reason": SHUTTING_DOWN, "resume_after": 2}]
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    # a clean close that says "come back": uvicorn's own 1012 (service restart) as it stops, or the hub's 1013
    assert closed.value.rcvd is not None and closed.value.rcvd.code in (1012, 1013)
    assert code in (0, -15)  # it stopped by itself (uvicorn re-raises the SIGTERM it handled), not SIGKILLed
