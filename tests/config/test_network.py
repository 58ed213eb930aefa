"""Network profiles: shipped names, spec strings, tables, and one-line errors for bad input."""

from __future__ import annotations

import pytest

from labkit.config.network import SHIPPED, NetworkProfile, network_from, network_from_table, parse_network
from labkit.errors import ConfigError


def test_every_shipped_profile_cites_a_source_and_round_trips_through_its_spec() -> None:
    assert set(SHIPPED) == {"loopback", "same-region", "cross-region", "intercontinental", "mobile"}
    for name, profile in SHIPPED.items():
        assert profile.name == name
        assert len(profile.source) > 40
        again = parse_network(profile.spec())
        assert (again.rtt_ms, again.jitter_ms, again.loss, again.rate_up_bps, again.rate_down_bps) == (
            profile.rtt_ms,
            profile.jitter_ms,
            profile.loss,
            profile.rate_up_bps,
            profile.rate_down_bps,
        )
    assert SHIPPED["loopback"].is_loopback and not SHIPPED["cross-region"].is_loopback
    assert SHIPPED["mobile"].rate_down_bps == 20e6 and SHIPPED["mobile"].rate_up_bps == 5e6


def test_a_spec_string_with_units() -> None:
    p = parse_network("rtt=80ms,jitter=5ms,loss=0.5%,rate=10mbit")
    assert (p.rtt_ms, p.jitter_ms, p.loss, p.rate_up_bps, p.rate_down_bps) == (80, 5, 0.005, 10e6, 10e6)
    assert p.one_way_ms == 40
    assert p.name == "rtt=80ms,jitter=5ms,loss=0.5%,rate=10mbit"
    q = parse_network(" RTT=0.2s , jitter=500us, loss=0.01, rate_up=512kbit, rate_down=1gbit ")
    assert (q.rtt_ms, q.jitter_ms, q.loss, q.rate_up_bps, q.rate_down_bps) == (200, 0.5, 0.01, 512e3, 1e9)


def test_a_shipped_name_with_overrides_keeps_the_rest_and_drops_the_citation() -> None:
    assert parse_network("Cross-Region") is SHIPPED["cross-region"]
    p = parse_network("mobile,loss=2%")
    assert p.loss == 0.02 and p.rtt_ms == SHIPPED["mobile"].rtt_ms and p.rate_up_bps == 5e6
    assert "mobile" in p.source and "Opensignal" not in p.source


def test_tables_accept_spec_strings_or_numbers() -> None:
    assert network_from_table({"profile": "mobile", "loss": "2%"}).loss == 0.02
    assert network_from_table({"rtt": "80ms", "rate": "10mbit"}).rate_down_bps == 10e6
    t = network_from_table({"rtt_ms": 80, "loss": 0.005, "name": "my-link"})
    assert (t.rtt_ms, t.loss, t.name) == (80, 0.005, "my-link")
    assert network_from(None) is SHIPPED["loopback"]
    assert network_from("same-region") is SHIPPED["same-region"]
    assert network_from(t) is t


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("moon", "unknown profile 'moon'; choose from loopback"),
        ("", "empty"),
        ("rtt", "malformed 'rtt'"),
        ("rtt=80", "rtt: '80' is not a duration"),
        ("rtt=80ms,,", "malformed ''"),
        ("rate=10mbps", "rate: '10mbps' is not a rate"),
        ("rate=1bps", "rate: 1bps is out of range; rate must be from 1 kbit/s to 100 gbit/s"),
        ("rate_up=200gbit", "rate_up: 200gbit is out of range"),
        ("loss=60%", "loss: 60% is out of range; allowed 0 to 50%"),
        ("loss=lots", "loss: 'lots' is not a share"),
        ("rtt=80ms,jitter=50ms", "jitter: 50 ms must be at most the one-way delay"),
        ("rtt=20s", "rtt: 20s is out of range; rtt must be at most 10 s"),  # the user's key and unit (issue 24)
        ("rtt=1ms,rtt=2ms", "rtt given twice"),
        ("colour=red", "unknown key 'colour'"),
    ],
)
def test_bad_specs_are_one_line_errors_naming_the_field(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_network(text, source="--network")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("--network") and needle in msg


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ({"profile": "moon"}, "net.profile: unknown profile 'moon'"),
        ({"profile": 3}, "net.profile: must be a name"),
        ({"rtt": 80}, "net.rtt: must be a string with a unit"),
        ({"loss": 0.9}, "net.loss: 0.9 is out of range"),
        ({"rtt_ms": -1}, "net: rtt_ms: Input should be greater than or equal to 0"),
        ({"bandwidth": "1mbit"}, "net: bandwidth: unknown setting"),
    ],
)
def test_bad_tables_are_one_line_errors(table: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        network_from_table(table, source="net")
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_profiles_are_frozen() -> None:
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        SHIPPED["mobile"].rtt_ms = 1  # type: ignore[misc]
    assert NetworkProfile().is_loopback
