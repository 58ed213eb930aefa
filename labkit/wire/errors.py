"""The kinds of ``WireError``: why an HTTP request of labkit's own clients got no usable response.

    WireError (labkit.errors)
     +-- InvalidURL            not an http(s) URL, or malformed (also a ValueError)
     +-- ConnectError          no connection: refused, unresolvable, TLS handshake failed
     |    +-- AddressRefused   the address policy refused the target (SSRF guard)
     +-- WireTimeout           a deadline passed
     |    +-- ConnectTimeout   ... while connecting
     |    +-- PoolTimeout      ... while waiting for a free connection
     |    +-- ReadTimeout      ... while waiting for the response
     +-- RemoteProtocolError   the server closed without answering, or answered what is not HTTP/1.1
     +-- ReadError             the connection broke in the middle of a response

The class names are httpx's, so attempt logs written before this client read the same.
"""

from __future__ import annotations

from labkit.errors import WireError

__all__ = [
    "AddressRefused",
    "ConnectError",
    "ConnectTimeout",
    "InvalidURL",
    "PoolTimeout",
    "ReadError",
    "ReadTimeout",
    "RemoteProtocolError",
    "WireError",
    "WireTimeout",
]


class InvalidURL(WireError, ValueError):
    """The URL is not an absolute http(s) URL this client can send to."""


class ConnectError(WireError):
    """No connection could be made."""


class AddressRefused(ConnectError):
    """The target resolves to an address the address policy does not allow."""


class WireTimeout(WireError):
    """A deadline passed before the exchange finished."""


class ConnectTimeout(WireTimeout):
    """Connecting (resolution, TCP, TLS) took longer than the deadline."""


class PoolTimeout(WireTimeout):
    """Every allowed connection stayed busy until the deadline."""


class ReadTimeout(WireTimeout):
    """The request was sent but its response did not arrive in time."""


class RemoteProtocolError(WireError):
    """The server closed without a response, or sent something that is not an HTTP/1.1 response."""


class ReadError(WireError):
    """The connection was lost while the response was being read."""
