"""The network terms of each style's latency, with worked numbers."""

from __future__ import annotations

import math

import pytest

from labkit.config.network import SHIPPED, parse_network
from labkit.model.network import (
    handshake_s,
    long_poll_latency,
    polling_latency,
    rearm_wait_s,
    stream_latency,
    transfer_s,
    webhook_latency,
)

CROSS = SHIPPED["cross-region"]  # rtt 65 ms, no loss, no rate limit
MOBILE = SHIPPED["mobile"]  # rtt 60 ms, loss 0.5 %, 5 mbit up, 20 mbit down


def test_a_webhook_on_a_kept_alive_connection_pays_one_way() -> None:
    t = webhook_latency(CROSS, base_s=0.002)
    assert t.total_s == pytest.approx(0.002 + 0.0325)
    assert t.handshake_s == 0


def test_a_webhook_on_a_new_tls_connection_pays_two_round_trips_first() -> None:
    # 2 ms + 32.5 ms one way + 65 ms TCP + 65 ms TLS 1.3 = 164.5 ms
    assert webhook_latency(CROSS, base_s=0.002, tls=True, new_connection=True).total_s == pytest.approx(0.1645)
    assert webhook_latency(CROSS, new_connection=True).handshake_s == pytest.approx(0.065)  # plain TCP: one


def test_a_large_webhook_on_mobile_pays_the_uplink_and_the_expected_loss_stalls() -> None:
    t = webhook_latency(MOBILE, payload_bytes=100_000, tls=True, new_connection=True)
    assert t.one_way_s == pytest.approx(0.030)
    assert t.handshake_s == pytest.approx(0.120)
    assert t.transfer_s == pytest.approx(0.160)  # 100 kB * 8 / 5 mbit
    assert t.loss_s == pytest.approx(3 * 0.005 * 0.2)  # ClientHello, server flight, request: 3 ms
    assert t.total_s == pytest.approx(0.313)


def test_timetabled_polling_waits_half_a_period_then_one_way_back() -> None:
    t = polling_latency(CROSS, 1.0, base_s=0.001)
    assert t.total_s == pytest.approx(0.001 + 0.5 + 0.0325)
    # handshakes shift every poll alike: the timetable's mean does not move
    assert polling_latency(CROSS, 1.0, tls=True, new_connection=True).total_s == pytest.approx(0.5325)


def test_a_poller_that_sleeps_after_each_response_stretches_its_cycle() -> None:
    # cycle 1 s + 65 ms RTT + 130 ms handshakes = 1.195 s; half of it plus 32.5 ms one way
    t = polling_latency(CROSS, 1.0, timetabled=False, tls=True, new_connection=True)
    assert t.total_s == pytest.approx(1.195 / 2 + 0.0325)


def test_a_poll_response_pays_the_downlink() -> None:
    t = polling_latency(MOBILE, 0.5, response_bytes=250_000)
    assert t.transfer_s == pytest.approx(0.1)  # 250 kB * 8 / 20 mbit
    assert t.loss_s == pytest.approx(0.001)


def test_long_polling_pays_one_way_plus_the_rearm_gap() -> None:
    # lambda = 10/s, gap = 65 ms: lambda G = 0.65, e^-0.65 = 0.522; share 0.65 / 1.172 = 0.5546 waits 32.5 ms
    assert rearm_wait_s(10, 0.065) == pytest.approx(0.0325 * 0.65 / (0.65 + math.exp(-0.65)))
    assert rearm_wait_s(10, 0.065) == pytest.approx(0.01802, abs=1e-5)
    t = long_poll_latency(CROSS, 10)
    assert t.total_s == pytest.approx(0.0325 + 0.01802, abs=1e-5)
    # rare events almost never fall in a gap: one way is the whole story
    assert long_poll_latency(CROSS, 0.01).total_s == pytest.approx(0.0325, abs=1e-4)
    assert rearm_wait_s(0, 0.065) == 0


def test_a_stream_shares_its_handshakes_among_its_events() -> None:
    assert stream_latency(CROSS).total_s == pytest.approx(0.0325)
    assert stream_latency(CROSS, tls=True, events_per_connection=100).handshake_s == pytest.approx(0.0013)
    with pytest.raises(ValueError):
        stream_latency(CROSS, events_per_connection=0)


def test_small_helpers() -> None:
    assert transfer_s(1_000_000, 8e6) == pytest.approx(1.0)
    assert transfer_s(1_000_000, None) == 0
    assert handshake_s(CROSS, new_connection=False, tls=True) == 0
    loop = SHIPPED["loopback"]
    assert webhook_latency(loop, base_s=0.003, tls=True, new_connection=True).total_s == pytest.approx(0.003)
    with pytest.raises(ValueError):
        polling_latency(loop, 0)
    d = webhook_latency(parse_network("rtt=10ms")).as_dict()
    assert d["style"] == "push" and d["total_s"] == pytest.approx(0.005)
