"""The dispatcher's HTTP client: signed POSTs through labkit's one HTTP/1.1 client core.

A ``DeliveryClient`` is a ``labkit.wire.pool.HttpClient`` set up for webhooks:
the headers httpx sent before the caller's (so the bytes per webhook are
unchanged since the dispatcher used httpx), the provider's address policy
(``allowed_hosts``) checked on every connection it opens, TLS with the
provider's trust settings (``verify``: True, a CA file path, or a context),
and the connection policy: ``reuse`` (a keep-alive pool, the default) or
``new`` (a connection, and a TLS handshake for https, per delivery). Why not
httpx here is in labkit.wire.httpclient. No redirects (a 3xx is a failure),
and a POST is never retried here: a failed attempt is the dispatcher's to
schedule. Failures are ``WireError`` kinds (labkit.wire.errors).
"""

from __future__ import annotations

import ssl

from labkit.wire.addresses import AddressPolicy
from labkit.wire.httpclient import MAX_RESPONSE_BYTES, Response
from labkit.wire.metering import WireCounter
from labkit.wire.pool import ConnectionPolicy, HttpClient

__all__ = ["DEFAULT_HEAD", "MAX_RESPONSE_BYTES", "DeliveryClient", "DeliveryResponse"]

# The headers httpx puts between Host and Connection; sent the same so bytes per webhook do not change.
DEFAULT_HEAD = b"Accept: */*\r\nAccept-Encoding: gzip, deflate, br\r\n"

DeliveryResponse = Response


class DeliveryClient(HttpClient):
    """POSTs over at most ``concurrency`` connections to callback URLs the address policy allows."""

    def __init__(
        self,
        counter: WireCounter,
        *,
        concurrency: int = 64,
        timeout: float = 15.0,
        verify: bool | str | ssl.SSLContext = True,
        allowed_hosts: tuple[str, ...] = (),
        connection_policy: ConnectionPolicy = "reuse",
        keepalive_expiry: float = 60.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        super().__init__(
            counter,
            concurrency=concurrency,
            timeout=timeout,
            verify=verify,
            policy=AddressPolicy(allowed_hosts),
            connection_policy=connection_policy,
            keepalive_expiry=keepalive_expiry,
            max_response_bytes=max_response_bytes,
            prelude=DEFAULT_HEAD,
        )
