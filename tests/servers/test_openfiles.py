"""Open files: what one process may hold, the ports one source address has, loopback source addresses, a server's use."""

from __future__ import annotations

import ipaddress
import os
import resource

import pytest

from labkit.servers import openfiles


def test_a_process_holds_its_open_files_less_a_reserve() -> None:
    assert openfiles.connections_per_process(20_000) == 20_000 - openfiles.RESERVE
    assert openfiles.connections_per_process(100) == 1  # never nothing
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        assert openfiles.connections_per_process() == max(1, hard - openfiles.RESERVE)  # the hard limit: a fleet raises its soft one


def test_a_source_address_has_the_ephemeral_ports_less_a_reserve() -> None:
    assert openfiles.connections_per_address(28_232) == 28_232 - openfiles.PORTS_RESERVE
    assert openfiles.connections_per_address(100) == 100  # a tiny range: all of it
    assert openfiles.ephemeral_ports() >= 1


def test_loopback_sources_are_loopback_never_the_servers_own_address() -> None:
    addresses = [openfiles.loopback_source(k) for k in range(300)]
    assert addresses[:2] == ["127.0.0.2", "127.0.0.3"]
    assert len(set(addresses)) == 300 and "127.0.0.1" not in addresses
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("127.0.0.0/8") for a in addresses)
    with pytest.raises(ValueError, match="no loopback source address"):
        openfiles.loopback_source(2**24)  # past 127.255.255.254


def test_this_process_use_is_read_and_at_limit_only_when_nearly_full() -> None:
    now = openfiles.in_use(os.getpid())
    assert now is not None and 0 < now[0] <= now[1]
    assert openfiles.at_limit(os.getpid()) is None  # a test process holds far fewer than its limit
    assert openfiles.in_use(2**22 + 12_345) is None  # no such process
