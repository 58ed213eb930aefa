"""Refuse webhook URLs that would make the provider attack its own network (SSRF).

A provider that POSTs wherever a customer says can be pointed at its cloud
metadata service (169.254.169.254), its databases on private addresses, or
itself. So a callback must be http(s), and every address its host resolves
to must be public, unless the lab explicitly allows that host or network
(the lab's receivers live on loopback).

The check happens when the subscription is created, and again each time
the dispatcher opens a connection (``guard_client``): DNS can change between
the two (rebinding), so the connecting backend resolves the name itself,
refuses a non-public answer, and connects to the very address it checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_CHARS = 2048


def _why_forbidden(ip: IPAddress) -> str | None:
    """The kind of non-public address ``ip`` is, or None when it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            why = _why_forbidden(embedded)
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


def _parse_allowed(allowed: tuple[str, ...]) -> tuple[set[str], list[IPNetwork]]:
    names: set[str] = set()
    nets: list[IPNetwork] = []
    for entry in allowed:
        text = entry.strip().strip("[]")
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            names.add(text.lower().rstrip("."))
    return names, nets


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise ValueError(f"host {host!r} does not resolve ({exc.__class__.__name__})") from None
    out: list[IPAddress] = []
    for info in infos:
        addr = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
        out.append(ipaddress.ip_address(addr))
    if not out:
        raise ValueError(f"host {host!r} does not resolve")
    return out


def check_callback_url(url: str, allowed: tuple[str, ...] = ()) -> str:
    """Return ``url`` if a webhook may be sent there, else raise ValueError saying why.

    ``allowed`` names hosts, addresses or CIDR networks that may be non-public.
    This resolves the host name, so it blocks; call it from a thread in async code.
    """
    if not isinstance(url, str) or not url:
        raise ValueError("url is required")
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"url is longer than {MAX_URL_CHARS} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError("url contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"url is malformed: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("url scheme must be http or https")
    host = parts.hostname
    if not host:
        raise ValueError("url needs a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("url must not carry credentials")
    host = host.rstrip(".")
    names, nets = _parse_allowed(allowed)
    if host.lower() in names:
        return url
    if port is None:
        port = 443 if parts.scheme.lower() == "https" else 80
    for ip in _resolve(host, port):
        why = _why_forbidden(ip)
        if why is None:
            continue
        candidates = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            candidates.append(ip.ipv4_mapped)
        if any(c in net for c in candidates for net in nets if c.version == net.version):
            continue
        raise ValueError(f"url host {host!r} resolves to a {why} address ({ip}), which is not allowed")
    return url


class SSRFRefused(httpcore.ConnectError):
    """A connection the guard refused; httpx reports it as a ``ConnectError``."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that checks every address at connect time.

    The host is resolved here and the connection made to the checked address
    (TLS still verifies the name: httpcore passes the origin host as SNI), so a
    DNS answer that changes after the check cannot redirect the connection.
    """

    def __init__(self, inner: httpcore.AsyncNetworkBackend, allowed: tuple[str, ...]) -> None:
        self._inner = inner
        self._names, self._nets = _parse_allowed(allowed)

    def _permitted(self, ip: IPAddress) -> str | None:
        """None when ``ip`` may be connected to, else why not."""
        why = _why_forbidden(ip)
        if why is None:
            return None
        candidates = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            candidates.append(ip.ipv4_mapped)
        if any(c in net for c in candidates for net in self._nets if c.version == net.version):
            return None
        return why

    async def _address(self, host: str, port: int) -> str:
        name = host.strip("[]").rstrip(".")
        if name.lower() in self._names:
            return host
        try:
            ips = [ipaddress.ip_address(name)]
        except ValueError:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM)
            except (socket.gaierror, UnicodeError, OSError) as exc:
                raise httpcore.ConnectError(f"host {name!r} does not resolve ({exc.__class__.__name__})") from None
            ips = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not ips:
            raise httpcore.ConnectError(f"host {name!r} does not resolve")
        for ip in ips:  # every answer must pass, as at subscription time
            why = self._permitted(ip)
            if why is not None:
                raise SSRFRefused(f"refused by the SSRF guard: {name!r} resolves to a {why} address ({ip})")
        return str(ips[0])

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        address = await self._address(host, port)
        return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        raise SSRFRefused("refused by the SSRF guard: unix sockets are not webhook endpoints")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guard_client(client: httpx.AsyncClient, allowed: tuple[str, ...] = ()) -> httpx.AsyncClient:
    """Make ``client`` re-check the SSRF rules whenever it opens a connection; returns it."""
    pool = client._transport._pool  # type: ignore[attr-defined]  # httpx exposes no backend hook
    pool._network_backend = GuardedBackend(pool._network_backend, allowed)
    return client
