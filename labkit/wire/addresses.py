"""Which addresses a sender may connect to: public ones, and whatever the allow-list names.

A provider that POSTs wherever a customer says can be pointed at its cloud
metadata service (169.254.169.254), its databases on private addresses, or
itself (server-side request forgery). ``AddressPolicy`` is the one rule for
that, applied twice: when a callback URL is accepted (``resolve`` then
``refusal``, labkit.provider.ssrf) and each time a connection is opened
(``connect_address``). DNS can change between the two (rebinding), so at
connect time the name is resolved again, every answer is checked, and the
connection goes to the very address that was checked.

The allow-list holds host names (matched exactly, case-insensitive, before
any resolution), addresses and CIDR networks; the lab's receivers live on
loopback, so the lab allows 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

from labkit.wire.errors import AddressRefused, ConnectError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def why_not_public(ip: IPAddress) -> str | None:
    """The kind of non-public address ``ip`` is (loopback, private, ...), or None when it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            why = why_not_public(embedded)
            return f"{why} (embedded in IPv6)" if why else None
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("non-global", not ip.is_global),
    )
    for name, hit in checks:
        if hit:
            return name
    return None


def _addresses(infos: Iterable[tuple[object, ...]]) -> list[IPAddress]:
    out: list[IPAddress] = []
    for info in infos:
        sockaddr = info[4]
        assert isinstance(sockaddr, tuple)
        out.append(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))  # drop an IPv6 zone id
    return out


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (blocking); ValueError when it does not resolve."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise ValueError(f"host {host!r} does not resolve ({exc.__class__.__name__})") from None
    out = _addresses(infos)
    if not out:
        raise ValueError(f"host {host!r} does not resolve")
    return out


class AddressPolicy:
    """Public addresses are allowed; non-public ones only when the allow-list names the host or covers the address."""

    __slots__ = ("names", "networks")

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        names: set[str] = set()
        nets: list[IPNetwork] = []
        for entry in allowed:
            text = entry.strip().strip("[]")
            try:
                nets.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                names.add(text.lower().rstrip("."))
        self.names: frozenset[str] = frozenset(names)
        self.networks: tuple[IPNetwork, ...] = tuple(nets)

    def allows_name(self, host: str) -> bool:
        """True when ``host`` is allow-listed by name (it is then not resolved nor checked)."""
        return host.strip("[]").rstrip(".").lower() in self.names

    def refusal(self, ip: IPAddress) -> str | None:
        """None when ``ip`` may be connected to, else the kind of address it is."""
        why = why_not_public(ip)
        if why is None:
            return None
        candidates = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            candidates.append(ip.ipv4_mapped)
        if any(c in net for c in candidates for net in self.networks if c.version == net.version):
            return None
        return why

    def first_refused(self, ips: Iterable[IPAddress]) -> tuple[IPAddress, str] | None:
        """The first address the policy refuses and why; None when every one is allowed."""
        for ip in ips:
            why = self.refusal(ip)
            if why is not None:
                return ip, why
        return None

    async def connect_address(self, host: str, port: int) -> str:
        """The address to connect to for ``host``, resolved now and checked (every answer must pass).

        Raises ``AddressRefused`` for a refused answer and ``ConnectError`` when the name does not resolve.
        """
        name = host.strip("[]").rstrip(".")
        if name.lower() in self.names:
            return host
        try:
            ips = [ipaddress.ip_address(name)]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_STREAM)
            except (socket.gaierror, UnicodeError, OSError) as exc:
                raise ConnectError(f"host {name!r} does not resolve ({exc.__class__.__name__})") from None
            ips = _addresses(infos)
        if not ips:
            raise ConnectError(f"host {name!r} does not resolve")
        refused = self.first_refused(ips)
        if refused is not None:
            ip, why = refused
            raise AddressRefused(f"refused by the SSRF guard (address policy): {name!r} resolves to a {why} address ({ip})")
        return str(ips[0])
