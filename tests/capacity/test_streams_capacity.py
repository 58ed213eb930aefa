"""The streams capacity scenario: held SSE streams, the SLO on each event's delivery lag.

The parser test is pure; the run is a short, real one on loopback (slow): a provider process,
background events at a fixed rate, a few users each holding one stream.
"""

from __future__ import annotations

import json

import pytest

from labkit.capacity.settings import SCENARIOS, CapacitySettings
from labkit.capacity.streamlib import SseBody, stall_after_s


def test_sse_body_reads_events_across_reads_and_line_ends():
    got = []
    body = SseBody(lambda i, t, d: got.append((i, t, d)), last_id="0")
    for part in (
        b"retry: 1000\n\n: heartbeat\n\nevent: a\r",
        b'\ndata: {"x":1}\r\nid: 7\r\n\r\n',
        b"data: two\ndata: lines\nid: 8\n",
        b"\n",
    ):
        body.feed(part)
    assert got == [("7", "a", '{"x":1}'), ("8", "message", "two\nlines")]
    assert body.last_id == "8"


def test_stall_threshold_covers_several_event_gaps():
    class Opts:
        stall_after = 30.0
        event_interval = 10.0

    assert stall_after_s(Opts()) == 50.0
    Opts.event_interval = 1.0
    assert stall_after_s(Opts()) == 30.0


def test_streams_is_a_registered_scenario_judged_on_stream_lag():
    spec = SCENARIOS["streams"]
    assert spec.locustfile == "streams.py" and spec.servers == ("provider",)
    assert spec.slo_metric == ("LAG", "stream") and spec.background_events
    assert CapacitySettings(scenario="streams", max_users=10).scenario == "streams"


@pytest.mark.slow  # a provider process, Locust and ~20 s of held streams
def test_capacity_streams_finds_streams_within_the_lag_slo(tmp_path):
    from labkit.capacity.run import run_capacity

    settings = CapacitySettings(
        scenario="streams", max_users=6, step_users=3, step_seconds=8, duration_s=20,
        slo_p99_ms=5000, publish_rate=5.0, out_dir=str(tmp_path),
    )  # fmt: skip
    result = run_capacity(settings)
    s = result.summary
    assert s["scenario"] == "streams" and s["slo"]["metric"] == "LAG stream"
    assert [step["users"] for step in s["steps"]][:1] == [3]
    assert s["capacity"]["users"] >= 3, s  # a few streams on loopback meet a 5 s lag p99
    assert s["background_publisher"]["published"] > 0
    assert json.loads((result.results_dir / "capacity.json").read_text()) == s
    assert not list((result.results_dir / "servers").glob("*.db")), "server databases are not kept"
