"""The poller's HTTP client: one keep-alive connection per poller, one GET at a time.

A thin layer over labkit's HTTP/1.1 client core (``labkit.wire.httpclient``,
whose docstring has the measured reasons for not using httpx here: 25-90 µs
per request instead of 0.7-1.0 ms). It prebuilds the request head, keeps its
one connection, and replaces a kept-alive connection the server has since
closed by retrying the (idempotent) GET once. Bytes and connections are
counted in a ``WireCounter``; failures are ``WireError`` kinds
(``labkit.wire.errors``); an https base URL is served over TLS.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping

from labkit.wire.errors import WireError, WireTimeout
from labkit.wire.httpclient import HttpConnection, Response, connect, header_lines, parse_url, render_request, tls_context
from labkit.wire.metering import WireCounter

__all__ = ["Connection", "Response"]


class Connection:
    """A poller's own keep-alive connection to one origin, used for one request at a time."""

    def __init__(
        self,
        base_url: str,
        counter: WireCounter,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        target = parse_url(base_url)
        self.origin = target.origin
        self.prefix = target.prefix
        self.ssl = (ssl_context or tls_context()) if self.origin.scheme == "https" else None
        self.counter = counter
        self.timeout = timeout
        fixed = {"host": target.host.decode("ascii"), **{k.lower(): v for k, v in (headers or {}).items()}}
        self._fixed = header_lines(fixed.items())  # rendered once: the host line first, lower-case, then the caller's
        self._conn: HttpConnection | None = None

    async def get(self, path: str, headers: Mapping[str, str] | None = None, timeout: float | None = None) -> Response:
        """GET ``path``; a kept-alive connection the server has since closed is replaced once."""
        lines = self._fixed + header_lines(headers.items()) if headers else self._fixed
        request = render_request("GET", self.prefix + path.encode("ascii"), None, lines)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        for attempt in (0, 1):
            reused = self._conn is not None and not self._conn.closed
            if not reused:
                self._conn = await connect(self.origin, self.counter, tls=self.ssl, deadline=deadline)
            conn = self._conn
            assert conn is not None
            try:
                return await conn.exchange(request, deadline)
            except WireError as exc:
                # A stale keep-alive connection fails before a single byte comes back: retry once on
                # a fresh connection. A timeout, or a response that had begun, is the caller's error.
                if attempt == 0 and reused and not conn.response_started and not isinstance(exc, WireTimeout):
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
