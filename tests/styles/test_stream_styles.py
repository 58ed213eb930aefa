"""The sse and websocket styles: registered, refusing what a stream cannot do, summarised with the stream keys."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from labkit import styles
from labkit.cli.compare import parse_styles
from labkit.config import RunSettings
from labkit.errors import ConfigError
from labkit.lab import pipeline
from labkit.model.calibration import Calibration
from labkit.runs.experiments import parse_experiment
from labkit.styles import get, unit
from labkit.styles.stream import event_json_bytes

STREAMS = ("sse", "websocket")
STREAM_KEYS = {"reconnects", "dropped_backpressure", "connections", "provider_rss_mb"}


@pytest.mark.parametrize("name", STREAMS)
def test_registered_as_push_without_a_public_endpoint(name: str) -> None:
    info = get(name)
    assert info is not None and info.direction == "push" and not info.needs_public_endpoint
    assert info.dedup_key == "event id; resumes from its last id"
    assert info.colour not in {get("webhook").colour, get("polling").colour}  # type: ignore[union-attr]
    assert unit(name).consumer_names(RunSettings(styles=(name,), pollers=3)) == ["c0", "c1", "c2"]


@pytest.mark.parametrize("name", STREAMS)
@pytest.mark.parametrize(
    "setting", [{"batch_max_events": 5}, {"batch_window_ms": 50.0}, {"thin_events": True}, {"snapshot": True}], ids=lambda s: next(iter(s))
)
def test_a_setting_a_stream_cannot_honour_is_refused_in_one_line(name: str, setting: dict[str, Any]) -> None:
    key = next(iter(setting))
    with pytest.raises(ConfigError) as err:
        styles.check(RunSettings(styles=(name,), **setting))
    message = str(err.value)
    assert f"{name}: {key}:" in message and "\n" not in message


def test_webhook_only_faults_are_refused_for_streams() -> None:
    # a plan names families; the registry says which styles they are (labkit.styles.check)
    with pytest.raises(ConfigError, match="does not apply to 'sse'"):
        styles.check(RunSettings(styles=("sse",), fault={"kind": "receiver_errors"}))
    with pytest.raises(ConfigError, match="does not apply to 'polling'"):
        styles.check(RunSettings(styles=("polling",), fault={"kind": "stream_drop"}))
    styles.check(RunSettings(styles=STREAMS, fault={"kind": "stream_drop", "at_s": [1.0]}))


def test_compare_styles_option_parses_and_names_a_bad_style() -> None:
    assert parse_styles("webhook, polling,sse,websocket") == ("webhook", "polling", "sse", "websocket")
    with pytest.raises(ConfigError, match="--styles"):
        parse_styles(" , ")


def test_experiments_accept_the_stream_styles() -> None:
    exp = parse_experiment(
        {
            "experiment": {"name": "streams"},
            "run": {"styles": [["sse", "websocket"], ["polling"]], "pollers": [10, 30]},
            "workload": {"rate_per_s": 2.0, "duration_s": 2.0},
        }
    )
    assert len(exp) == 4 and {p.settings.styles for p in exp.points} == {("sse", "websocket"), ("polling",)}
    with pytest.raises(ConfigError, match="sse: snapshot"):
        parse_experiment(
            {"experiment": {"name": "x"}, "run": {"styles": ["sse"], "snapshot": True}, "workload": {"rate_per_s": 2.0, "duration_s": 2.0}}
        )


def _fake_run(events: int, consumers: int) -> SimpleNamespace:
    rows = [("sse", f"c{c}", e, 1_000_000 * e, 1_000_000 * e + 2_000_000 + c) for c in range(consumers) for e in range(1, events + 1)]
    return SimpleNamespace(
        consumers=[f"c{i}" for i in range(consumers)],
        events=rows,
        consumer_stats={"counters": {"connects": 5, "reconnects": 2, "http_errors": 1, "backpressure_drops_seen": 1, "lag": {}}},
        window_counters={"requests": 0},
        provider_stats={"streams_dropped_backpressure": 1, "stream_events_fanned_out": events * consumers},
        provider_cpu_s=1.5,
        provider_cpu_start_s=0.5,
        provider_rss_bytes=80 * 2**20,
        provider_rss_base_bytes=60 * 2**20,
        published_ids=list(range(1, events + 1)),
        calibration=_calibration(),
    )


def _calibration() -> Calibration:
    """A calibration as the machine's would be: 2 ms a loopback frame, 25 ms of provider CPU per frame."""
    costs = {"frame_s": 0.002, "write_cost_s": 1.0 / 40}
    return Calibration("t1", {}, "x", "now", {name: dict(costs) for name in STREAMS})


@pytest.mark.parametrize("name", STREAMS)
def test_summary_has_the_stream_keys_and_a_model_with_calibrated_parameters(name: str) -> None:
    settings = RunSettings(styles=(name,), pollers=4)
    out = unit(name).summary(_fake_run(10, 4), settings, 40, 20.0)
    assert out["connections"] == 4 and out["reconnects"] == 2 and out["dropped_backpressure"] == 1
    assert out["requests"] == 6 and out["requests_per_event"] == 0.0 and out["requests_per_event_whole_run"] == 6 / 40
    assert out["provider_memory_per_connection_kb"] == pytest.approx(20 * 1024 / 4)
    m = out["model"]
    assert m["kind"] == "model" and m["requests_per_event"] == 0.0
    assert m["memory_per_connection"]["kind"] == "measured"
    assert m["parameters"]["one_way_s"]["value"] == pytest.approx(0.002)
    assert m["parameters"]["write_cost_s"]["value"] == pytest.approx(1.0 / 40)
    assert m["parameters"]["one_way_s"]["kind"] == "calibration" and m["base_source"] == "calibration t1"
    # the connections the fleet opened (5: one reconnect beyond the 4 streams), beside the model's 4
    assert out["connections_opened"] == 5 and m["connections"] == 4
    # the model's bytes per event: the event's JSON plus the protocol's framing
    assert m["bytes_per_event"] == pytest.approx(event_json_bytes(settings.workload.event_type, 256) + m["frame_overhead_bytes"], abs=1)
    assert unit(name).fault_measures({"reconnects": 3, "events": 9, "duplicate_events": 1}, {}, {})["retries"] == 3


@pytest.mark.parametrize("name", STREAMS)
def test_the_stream_model_adds_one_way_per_event_and_shares_the_handshakes_per_connection(name: str) -> None:
    from labkit.config.network import SHIPPED
    from labkit.model.streams import fanout_queueing_s

    run = _fake_run(10, 4)  # a calibrated frame of 2 ms; each stream opened once: 10 events per connection
    q_mean, q99 = fanout_queueing_s(4, 1.0 / 40), fanout_queueing_s(4, 1.0 / 40, 0.99)
    loop = unit(name).summary(run, RunSettings(styles=(name,), pollers=4), 40, 20.0)["model"]
    assert loop["latency_mean_ms"] == pytest.approx((0.002 + q_mean) * 1000)  # loopback: nothing added
    assert loop["latency_p99_ms"] == pytest.approx((0.002 + q99) * 1000)
    assert loop["network"]["profile"] == "loopback" and loop["events_per_connection"] == 10

    cross = SHIPPED["cross-region"]  # rtt 65 ms, no loss, no rate limit
    # what the run measured is no model input: slower deliveries leave the model as it was
    run.events = [(s, c, e, cr, cr + 32_500_000 + 9_000_000) for s, c, e, cr, _ in run.events]
    tls = RunSettings(styles=(name,), pollers=4, network=cross, tls=True)
    m = unit(name).summary(run, tls, 40, 20.0)["model"]
    assert m["kind"] == "model"
    terms = m["network_terms_ms"]
    assert terms["one_way_ms"] == pytest.approx(32.5)  # one one-way trip per event
    assert terms["handshake_ms"] == pytest.approx(2 * 65 / 10)  # TCP + TLS round trips, once per connection of 10 events
    assert terms["base_ms"] == pytest.approx((0.002 + q_mean) * 1000)  # the lab's own work and the fan-out
    assert m["latency_mean_ms"] == pytest.approx(2 + q_mean * 1000 + 32.5 + 2 * 65 / 10)
    assert m["latency_p99_ms"] == pytest.approx(m["latency_mean_ms"] + (q99 - q_mean) * 1000)
    assert m["network"] == {"profile": "cross-region", "spec": cross.spec(), "tls": True, "webhook_connection": tls.webhook_connection}
    assert "cross-region" in m["assumes"]


@pytest.mark.slow  # two providers and two stream fleets on loopback
def test_sse_and_websocket_deliver_every_event_once_through_labkit_run(tmp_path: Path) -> None:
    settings = RunSettings(styles=STREAMS, pollers=5, workload={"rate_per_s": 20.0, "duration_s": 2.0, "seed": 3})
    summary = pipeline.run(settings, results_dir=tmp_path / "run").summary
    for name in STREAMS:
        s = summary["styles"][name]
        assert s["published"] > 0 and s["lost"] == 0 and s["duplicates"] == 0, s
        assert s["delivered"] == s["published"] * 5 and s["drained"]
        assert STREAM_KEYS <= set(s) and s["connections"] == 5 and s["provider_rss_mb"] > 0
        assert s["requests_per_event"] == 0.0 and s["bytes_per_event"] > s["model"]["frame_overhead_bytes"]
