"""A pooled HTTP/1.1 client over labkit.wire.httpclient, with a connection policy.

``reuse`` keeps a LIFO stack of idle keep-alive connections per origin: the
most recently used connection is the warmest and the others age out after
``keepalive_expiry``. ``new`` opens a connection for every request (a TCP
handshake, and a TLS one for https), sends ``Connection: close`` and closes
it after the response, as many webhook senders do. Either way at most
``concurrency`` connections are open; a request that finds none free waits
for one until its deadline (``PoolTimeout``).

Every connection is opened through ``connect``, so the address policy (when
given) is checked each time, DNS re-resolved, and the checked address used.
Requests are never retried here: a failed attempt is the caller's to schedule.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping
from typing import Literal

from labkit.wire.addresses import AddressPolicy
from labkit.wire.errors import PoolTimeout
from labkit.wire.httpclient import (
    MAX_RESPONSE_BYTES,
    HttpConnection,
    Origin,
    Response,
    Target,
    connect,
    header_lines,
    parse_url,
    render_request,
    tls_context,
)
from labkit.wire.metering import WireCounter

ConnectionPolicy = Literal["reuse", "new"]
_CONNECTION_HEADER = {"reuse": b"Connection: keep-alive\r\n", "new": b"Connection: close\r\n"}
_URL_CACHE = 10_000  # distinct URLs whose parsed form is kept


class HttpClient:
    """Requests over at most ``concurrency`` connections, reused or new per ``connection_policy``.

    ``prelude`` is header bytes sent after ``Host`` and before ``Connection`` in every request.
    """

    def __init__(
        self,
        counter: WireCounter,
        *,
        concurrency: int = 64,
        timeout: float = 15.0,
        verify: bool | str | ssl.SSLContext = True,
        policy: AddressPolicy | None = None,
        connection_policy: ConnectionPolicy = "reuse",
        keepalive_expiry: float = 60.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        prelude: bytes = b"",
    ) -> None:
        if connection_policy not in _CONNECTION_HEADER:
            raise ValueError(f"connection_policy must be 'reuse' or 'new', not {connection_policy!r}")
        self.counter = counter
        self.max_connections = concurrency
        self.timeout = timeout
        self.policy = policy
        self.connection_policy: ConnectionPolicy = connection_policy
        self.keepalive_expiry = keepalive_expiry
        self.max_response_bytes = max_response_bytes
        self.prelude = prelude
        self._verify = verify
        self._tls: ssl.SSLContext | None = None
        self._idle: dict[Origin, list[HttpConnection]] = {}
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._targets: dict[str, Target] = {}

    @property
    def open_connections(self) -> int:
        """Connections open now, busy or idle."""
        return self._open

    # -- requests -----------------------------------------------------------------------

    async def post(
        self,
        url: str,
        *,
        content: bytes,
        headers: Mapping[str, str],
        timeout: float | None = None,
        connection_policy: ConnectionPolicy | None = None,
    ) -> Response:
        """POST ``content`` to ``url``; ``timeout`` covers waiting for a connection, connecting and the response."""
        return await self.request("POST", url, content=content, headers=headers, timeout=timeout, connection_policy=connection_policy)

    async def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        connection_policy: ConnectionPolicy | None = None,
    ) -> Response:
        """One request; ``connection_policy`` overrides the client's for it."""
        target = self._target(url)
        fresh = (connection_policy or self.connection_policy) == "new"
        lines = self.prelude + _CONNECTION_HEADER["new" if fresh else "reuse"]
        if headers:
            lines += header_lines(headers.items())
        request = render_request(method, target.path, target.host, lines, content)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        conn = await self._acquire(target.origin, deadline, fresh)
        try:
            return await conn.exchange(request, deadline)
        finally:
            if fresh:
                conn.close()
            self._release(conn)

    def _target(self, url: str) -> Target:
        target = self._targets.get(url)
        if target is None:
            target = parse_url(url)
            if len(self._targets) < _URL_CACHE:
                self._targets[url] = target
        return target

    # -- the pool -----------------------------------------------------------------------

    async def _acquire(self, origin: Origin, deadline: float, fresh: bool) -> HttpConnection:
        loop = asyncio.get_running_loop()
        while True:
            stack = self._idle.get(origin)
            now = loop.time()
            while stack and not fresh:
                conn = stack.pop()
                if not conn.closed and now < conn.expires:
                    return conn
                conn.close()
                self._open -= 1
            if self._open < self.max_connections or self._evict_idle():
                self._open += 1
                try:
                    return await self._connect(origin, deadline)
                except BaseException:
                    self._open -= 1
                    self._wake_one()
                    raise
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, max(deadline - loop.time(), 0))
            except TimeoutError:
                raise PoolTimeout("no connection free within the timeout") from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    async def _connect(self, origin: Origin, deadline: float) -> HttpConnection:
        tls = None
        if origin.scheme == "https":
            if self._tls is None:
                self._tls = tls_context(self._verify)
            tls = self._tls
        return await connect(origin, self.counter, tls=tls, policy=self.policy, deadline=deadline, max_body=self.max_response_bytes)

    def _evict_idle(self) -> bool:
        """Close the oldest idle connection (of any origin) to make room; False when none is idle."""
        for stack in self._idle.values():
            if stack:
                stack.pop(0).close()
                self._open -= 1
                return True
        return False

    def _release(self, conn: HttpConnection) -> None:
        if conn.closed:
            self._open -= 1
        else:
            conn.expires = asyncio.get_running_loop().time() + self.keepalive_expiry
            self._idle.setdefault(conn.origin, []).append(conn)
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        """Close idle connections and fail the requests waiting for one."""
        for stack in self._idle.values():
            for conn in stack:
                conn.close()
        self._idle.clear()
        self._open = 0
        for waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()
        self._waiters.clear()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
