"""Network profiles and TLS through the one pipeline: real servers, a real proxy on every hop."""

from __future__ import annotations

import json

import pytest

from labkit.config import RunSettings, WorkloadSettings
from labkit.config.faults import NetworkFault
from labkit.config.network import parse_network, shipped
from labkit.errors import ConfigError
from labkit.lab import pipeline
from labkit.lab.session import Session, network_conflict
from labkit.lab.workload import build_workload
from labkit.styles.base import network_profile, unit
from labkit.styles.polling import Polling
from labkit.styles.webhook import Webhook
from tests.helpers.cli import Ran, labkit

WEBHOOK, POLLING = Webhook(), Polling()


def _labkit(*args: str, tmp_path) -> Ran:
    return labkit(*args, cwd=tmp_path)


@pytest.mark.parametrize(
    ("value", "named"),
    [("nowhere", "unknown profile"), ("rtt=abc", "rtt"), ("loss=90%", "loss"), ("rate=5", "rate")],
)
def test_bad_network_option_is_one_line_exit_2(tmp_path, value: str, named: str) -> None:
    r = _labkit("compare", "--network", value, "--duration", "1", "--out", str(tmp_path / "out"), tmp_path=tmp_path)
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--network" in lines[0] and named in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_bad_webhook_connection_is_one_line_exit_2(tmp_path) -> None:
    r = _labkit("compare", "--webhook-connection", "sometimes", "--out", str(tmp_path / "out"), tmp_path=tmp_path)
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--webhook-connection" in lines[0], r.stderr


def test_profile_and_network_fault_are_refused_in_one_line(tmp_path) -> None:
    settings = RunSettings(network=shipped("cross-region"), fault=NetworkFault(delay_ms=10))
    reason = network_conflict(settings)
    assert reason is not None and reason.startswith("network:") and "\n" not in reason
    with pytest.raises(ConfigError, match="network profile and a network fault"):
        Session(unit("webhook"), settings, build_workload(settings.workload), tmp_path)
    assert network_conflict(RunSettings(network=shipped("loopback"), fault=NetworkFault(delay_ms=10))) is None


def test_models_add_the_profiles_terms() -> None:
    from labkit.model.calibration import Base

    wl = WorkloadSettings(rate_per_s=10, duration_s=1, payload_bytes=1000)
    plain = RunSettings(workload=wl, poll_interval_s=0.5)
    far = RunSettings(workload=wl, poll_interval_s=0.5, network=parse_network("rtt=80ms"), tls=True, webhook_connection="new")
    assert network_profile(plain).is_loopback
    # webhook: the calibrated loopback delivery (5 ms) + one way + TCP and TLS handshakes on every new connection
    base = Base("calibration x", {"delivery_s": 0.005, "attempt_s": 0.004})
    on_loopback = WEBHOOK.network_model(plain, base, rate_per_s=10, deliveries=10)
    through = WEBHOOK.network_model(far, base, rate_per_s=10, deliveries=10)
    assert on_loopback["latency_mean_ms"] == pytest.approx(5.0)
    assert through["latency_mean_ms"] == pytest.approx(5 + 40 + 160)
    assert through["network_terms_ms"]["handshake_ms"] == pytest.approx(160) == through["network_terms_ms"]["handshake_s"]
    assert through["kind"] == "model" and "TLS" in through["assumes"] and through["connections"] == 10
    assert through["base_source"] == "calibration x" and through["base"]["costs_ms"] == {"delivery_ms": 5.0, "attempt_ms": 4.0}
    # polling on a timetable: T/2 + the lab's calibrated poll + one way back
    poll = Base("calibration x", {"poll_s": 0.002})
    assert POLLING.network_model(10.0, poll, plain)["latency_mean_ms"] == pytest.approx(252)
    assert POLLING.network_model(10.0, poll, far)["latency_mean_ms"] == pytest.approx(250 + 2 + 40)


@pytest.mark.slow
def test_a_profile_raises_both_styles_latency_by_its_terms(tmp_path) -> None:
    profile = parse_network("rtt=60ms,jitter=1ms")
    settings = RunSettings(
        workload=WorkloadSettings(arrival="poisson", rate_per_s=20, duration_s=3, seed=4),
        poll_interval_s=0.2,
        network=profile,
        out_dir=str(tmp_path),
    )
    summary = pipeline.run(settings).summary
    assert summary["workload"]["network"]["rtt_ms"] == 60
    for name in ("webhook", "polling"):
        block = summary["styles"][name]
        assert block["lost"] == 0
        assert block["network_proxy"]["connections"] >= 1
        assert block["model"]["network_terms_ms"]["one_way_s"] == pytest.approx(30)
        # the event crosses the hop at least once: one way (minus the jitter) is a floor
        assert block["latency_ms"]["mean"] >= 29
        assert block["agreement"]["se"] is not None
    # a poll's round trip holds the profile's whole round trip
    assert summary["styles"]["polling"]["rtt_ms"]["mean"] >= 59
    assert summary["styles"]["polling"]["latency_ms"]["mean"] >= 100 + 29  # T/2 + one way


@pytest.mark.slow
def test_tls_run_delivers_every_event_over_https(tmp_path) -> None:
    settings = RunSettings(
        workload=WorkloadSettings(arrival="poisson", rate_per_s=20, duration_s=2, seed=5),
        poll_interval_s=0.2,
        tls=True,
        webhook_connection="new",
        out_dir=str(tmp_path),
    )
    work = tmp_path / "work"
    summary = pipeline.run(settings, work_dir=work).summary
    assert summary["workload"]["tls"] is True and summary["workload"]["webhook_connection"] == "new"
    for name in ("webhook", "polling"):
        block = summary["styles"][name]
        assert block["published"] > 0 and block["delivered"] == block["published"] and block["lost"] == 0
    # the webhook subscription and the poller's base URL were https, verified against the lab CA
    poller = json.loads((work / "polling" / "poller.settings.json").read_text())
    assert poller["base_url"].startswith("https://") and poller["ca_file"].endswith("lab-ca.pem")
    assert (work / "webhook" / "tls" / "lab-ca.pem").exists()


@pytest.mark.slow
def test_stream_styles_over_https_through_a_profile_deliver_every_event(tmp_path) -> None:
    """A stream consumer verifies the provider against the lab CA (it was refused before: 0 streams connected)."""
    settings = RunSettings(
        workload=WorkloadSettings(arrival="poisson", rate_per_s=20, duration_s=2, seed=5),
        styles=("sse", "websocket"),
        pollers=3,
        tls=True,
        network=parse_network("rtt=20ms"),
        out_dir=str(tmp_path),
    )
    work = tmp_path / "work"
    summary = pipeline.run(settings, work_dir=work).summary
    for name in ("sse", "websocket"):
        block = summary["styles"][name]
        assert block["published"] > 0 and block["delivered"] == 3 * block["published"] and block["lost"] == 0
        assert block["latency_ms"]["mean"] >= 10  # one way through the profile
        fleet = json.loads((work / name / "streams.settings.json").read_text())
        assert fleet["base_url"].startswith("https://") and fleet["ca_file"].endswith("lab-ca.pem")
