"""Refuse webhook URLs that would make the provider attack its own network (SSRF).

A provider that POSTs wherever a customer says can be pointed at its cloud
metadata service (169.254.169.254), its databases on private addresses, or
itself. So a callback must be http(s), and every address its host resolves
to must be public, unless the lab explicitly allows that host or network
(the lab's receivers live on loopback).

The check happens when the subscription is created. DNS can change later
(rebinding); a production dispatcher would pin the resolved address or
re-check at connect time.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

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
