"""Issue 24, item 1's measurement: 300 catching-up streams that never read, over a backlog of 4 KB events.

Before, each such stream held its whole catch-up page (500 events) in the
provider for ever: 300 SSE streams took a provider from 202 MB to 2.5 GB. Now
a catch-up write is at most ``catchup_max_bytes`` and a stream whose write
waits ``stall_timeout_s`` is dropped and reset. This measures, with the
default limits, the provider's RSS before the streams, at its peak while they
are held, and after they are gone, and how long until the last one was cut.

``python -m pytest -s -m slow tests/provider/test_stalled_streams_memory.py``
prints the numbers (run it on a quiet machine; the backlog is also read into
the kernel's socket buffers, up to a few MB per stream, which is not the
provider's RSS).
"""

from __future__ import annotations

import socket
import time

import httpx
import psutil
import pytest

from tests.helpers.streams import AUTH, Lab
from tests.provider.test_catchup_bounds import _stalled_sse, _stalled_ws, _stored_backlog, _tcp_state

pytestmark = pytest.mark.slow

STREAMS = 300
BACKLOG = 2500  # events of 4 KB: 10 MB, more than a socket's kernel buffers take
MB = 1024 * 1024
TCP_ESTABLISHED = 1


@pytest.mark.parametrize("opener", [_stalled_sse, _stalled_ws], ids=["sse", "websocket"])
def test_300_stalled_catch_up_streams_stay_bounded_and_are_cut(lab: Lab, opener) -> None:
    _stored_backlog(lab, BACKLOG)
    p = lab.provider()  # the default limits: stall_timeout_s 30, drop_grace_s 1, catchup_max_bytes 64 KiB
    proc = psutil.Process(p.pid)
    client = httpx.Client(base_url=p.url, headers=AUTH, timeout=60.0)  # the provider is busy: the backlog goes into 300 sockets
    client.get("/stats")
    before = proc.memory_info().rss
    socks: list[socket.socket] = []
    started = time.monotonic()
    peak = before
    try:
        for _ in range(STREAMS):
            socks.append(opener(p.port or 0))
        deadline = started + 180
        cut_at = None
        while time.monotonic() < deadline:
            peak = max(peak, proc.memory_info().rss)
            stats = client.get("/stats").json()
            if stats["streams_dropped_stalled"] >= STREAMS and all(_tcp_state(s) != TCP_ESTABLISHED for s in socks):
                cut_at = time.monotonic() - started
                break
            time.sleep(0.5)
        after = proc.memory_info().rss
        stats = client.get("/stats").json()
    finally:
        for s in socks:
            s.close()
        client.close()
    per_stream = (peak - before) / STREAMS
    print(
        f"\n{opener.__name__}: {STREAMS} streams, backlog {BACKLOG} x 4 KB; provider RSS {before / MB:.0f} MB before, "
        f"peak {peak / MB:.0f} MB (+{per_stream / 1024:.0f} KB per stream), {after / MB:.0f} MB after; "
        f"all dropped and reset after {cut_at if cut_at is None else round(cut_at, 1)} s; "
        f"dropped_stalled={stats['streams_dropped_stalled']} open={stats['streams_open']}; load {psutil.getloadavg()}"
    )
    assert stats["streams_dropped_stalled"] == STREAMS and stats["streams_open"] == 0
    assert cut_at is not None
    assert per_stream < MB
