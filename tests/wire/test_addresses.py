"""The one address policy: what it refuses, what the allow-list lets through, and its connect-time check."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from labkit.wire.addresses import AddressPolicy, resolve, why_not_public
from labkit.wire.errors import AddressRefused, ConnectError


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "non-global"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback (embedded in IPv6)"),
        ("fd00:ec2::254", "private"),
    ],
)
def test_non_public_addresses_are_named(address: str, kind: str) -> None:
    ip = ipaddress.ip_address(address)
    assert why_not_public(ip) == kind
    assert AddressPolicy().refusal(ip) == kind


def test_public_addresses_pass() -> None:
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"):
        assert AddressPolicy().refusal(ipaddress.ip_address(address)) is None


def test_the_allow_list_takes_networks_addresses_and_names() -> None:
    policy = AddressPolicy(("127.0.0.2/32", "10.0.0.0/8", "Receiver.Lab.", "[::1]"))
    assert policy.refusal(ipaddress.ip_address("127.0.0.2")) is None
    assert policy.refusal(ipaddress.ip_address("::ffff:127.0.0.2")) is None  # the mapped form is covered too
    assert policy.refusal(ipaddress.ip_address("10.9.9.9")) is None
    assert policy.refusal(ipaddress.ip_address("::1")) is None
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) == "loopback"
    assert policy.allows_name("receiver.lab") and policy.allows_name("RECEIVER.LAB.")
    assert not policy.allows_name("other.lab")
    ips = [ipaddress.ip_address(a) for a in ("10.0.0.1", "127.0.0.1", "192.168.0.1")]
    assert policy.first_refused(ips) == (ipaddress.ip_address("127.0.0.1"), "loopback")


def test_resolve_gives_every_address_or_a_value_error() -> None:
    assert resolve("127.0.0.1", 80) == [ipaddress.ip_address("127.0.0.1")]
    with pytest.raises(ValueError, match="does not resolve"):
        resolve("no-such-host.invalid", 80)


async def test_connect_address_checks_what_the_name_resolves_to_now(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        return real("127.0.0.1" if host == "rebind.test" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(AddressRefused, match="SSRF guard.*loopback"):
        await AddressPolicy().connect_address("rebind.test", 80)
    assert await AddressPolicy(("127.0.0.1",)).connect_address("rebind.test", 80) == "127.0.0.1"
    assert await AddressPolicy(("rebind.test",)).connect_address("rebind.test", 80) == "rebind.test"
    with pytest.raises(ConnectError, match="does not resolve"):
        await AddressPolicy().connect_address("no-such-host.invalid", 80)
