"""Refuse webhook URLs that would make the provider attack its own network (SSRF).

A callback must be an http(s) URL without credentials or control characters,
and every address its host resolves to must pass the provider's address
policy (``labkit.wire.addresses.AddressPolicy``: public, or allow-listed; the
lab's receivers live on loopback). This is the check when a subscription is
created. The same policy is checked again each time the dispatcher opens a
connection (``labkit.provider.delivery``): DNS can change between the two
(rebinding), so the connecting client resolves the name itself, refuses a
non-public answer, and connects to the very address it checked.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from labkit.wire.addresses import AddressPolicy, IPAddress, resolve

__all__ = ["MAX_URL_CHARS", "IPAddress", "check_callback_url"]

MAX_URL_CHARS = 2048


def _resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses ``host`` has now; one seam, so tests can make a name look public when subscribing."""
    return resolve(host, port)


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
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("url scheme must be http or https")
    host = parts.hostname
    if not host:
        raise ValueError("url needs a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("url must not carry credentials")
    host = host.rstrip(".")
    policy = AddressPolicy(allowed)
    if policy.allows_name(host):
        return url
    refused = policy.first_refused(_resolve(host, port or (443 if scheme == "https" else 80)))
    if refused is not None:
        ip, why = refused
        raise ValueError(f"url host {host!r} resolves to a {why} address ({ip}), which is not allowed")
    return url
