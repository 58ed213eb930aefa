"""The streams capacity scenario: held SSE streams, the SLO on each event's delivery lag.

The parser test is pure; the run is a short, real one on loopback (slow): a provider process,
background events at a fixed rate, a few users each holding one stream.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from labkit.capacity.settings import SCENARIOS, CapacitySettings
from labkit.capacity.streamlib import HeldStream, stall_after_s


def test_held_stream_times_log_events_and_resumes_after_the_last_dispatched_id():
    fired = []
    held = HeldStream("http://127.0.0.1:8123/base/", "k", "0", 30.0, lambda *a: fired.append(a))
    assert held.request() == (
        b"GET /base/stream HTTP/1.1\r\nhost: 127.0.0.1:8123\r\naccept: text/event-stream\r\n"
        b"authorization: Bearer k\r\nlast-event-id: 0\r\n\r\n"
    )
    created = held.joined_ns + 1_000_000
    for part in (
        b"retry: 1000\n\n: heartbeat\n\nevent: a\r",
        b'\ndata: {"created_ns":%d}\r\nid: 7\r\n\r\n' % created,
        b'data: {"created_ns":1}\nid: 8\n',  # backlog: read, counted, not timed
        b"\n",
        b"event: error\ndata: backpressure\nid: 9\n",  # not dispatched before its empty line
    ):
        held.on_body(part)
    assert held.events == 2 and held.last_id == "8"
    assert [(f[0], f[1], f[4]) for f in fired] == [("LAG", "stream", None)]
    assert b"last-event-id: 8\r\n" in held.request()
    with pytest.raises(ValueError, match="http://"):
        HeldStream("https://127.0.0.1:8123", "k", "0", 30.0, lambda *a: None)


def test_the_stream_user_imports_under_gevent():
    """Locust patches the standard library with gevent first; nothing the user imports may need what that removes."""
    code = "from gevent import monkey; monkey.patch_all(); import labkit.capacity.streamlib"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-500:]


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


def test_a_scenario_is_a_unit_named_by_its_locustfile_with_its_own_verdict():
    """run_capacity asks the scenario what to start, prepare and say; no scenario is branched on by name."""
    import inspect

    from labkit.capacity import run
    from labkit.capacity.analysis import Capacity

    assert all(name == spec.locustfile.removesuffix(".py") and spec.target in spec.servers for name, spec in SCENARIOS.items())
    assert [n for n, s in SCENARIOS.items() if s.subscribes_receiver] == ["publish_fanout"]
    assert "settings.scenario ==" not in inspect.getsource(run)
    cap = Capacity(40, 39.6, 12.5, 3, "slo", False, False, "")
    said = {n: run.statement(CapacitySettings(scenario=n, interval_s=2.0, subscriptions=3), cap) for n in SCENARIOS}
    assert said["polling"] == "one provider instance holds 40 pollers at a 2 s interval (40 requests/s) within a p99 of 12.5 ms"
    assert said["webhook_ingest"].startswith("one receiver ingests 40 signed webhooks/s (40 senders, one every 2 s each)")
    assert said["publish_fanout"].startswith(
        "the dispatcher keeps the delivery lag p99 at 12.5 ms up to 40 events/s across 3 subscriptions"
    )
    with pytest.raises(ValueError, match="unknown scenario 'carrier'"):
        CapacitySettings(scenario="carrier")
