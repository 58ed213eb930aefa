"""The dispatcher's HTTP/1.1 client: signed POSTs over pooled keep-alive connections.

Why not httpx: httpcore's pool re-examines every connection for every request
(``_assign_requests_to_connections`` is quadratic in the pool size and asks
each idle socket whether it is readable), so at the dispatcher's concurrency
of 64 the provider spent 90 % of a core in the pool and delivered about 100
webhooks per second (``labkit bench``, dispatcher). This client keeps a LIFO
stack of idle connections per origin, writes each request in one call, parses
responses with ``httptools`` (the parser uvicorn uses) and costs tens of µs
per delivery.

It keeps what the dispatcher relies on: the same request headers httpx sent
(so bytes on the wire are unchanged), no redirects (a 3xx is a failure),
TLS with the provider's trust settings, the SSRF guard on every connection
it opens (``ssrf.GuardedBackend``: resolve, check every answer, connect to the
checked address), byte counting in a ``WireCounter``, one deadline per
request, and httpx's exception types, so the dispatcher's error handling and
the attempt log read as before. Responses are read to the end, but at most
``max_response_bytes`` of a body is kept. A POST is never retried here: a
failed attempt is the dispatcher's to schedule.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import httpcore
import httptools
import httpx

from labkit.provider.ssrf import GuardedBackend
from labkit.wire.metering import WireCounter

# The headers httpx puts before the caller's; sent the same so bytes per webhook do not change.
_DEFAULT_HEAD = b"Accept: */*\r\nAccept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\n"
MAX_RESPONSE_BYTES = 64 * 1024
_PRINTABLE = "".join(chr(c) for c in range(33, 127))

Origin = tuple[str, str, int]  # scheme, host, port


class Headers(dict[str, str]):
    """Response headers by lower-case name; ``raw`` as httpx has it."""

    raw: list[tuple[bytes, bytes]]


class DeliveryResponse:
    """What the dispatcher reads from a response, plus the exact bytes both ways."""

    __slots__ = ("bytes_received", "bytes_sent", "content", "headers", "reason_phrase", "status_code")

    def __init__(self, status_code: int, headers: Headers, content: bytes, bytes_sent: int, bytes_received: int) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.reason_phrase = ""
        self.bytes_sent = bytes_sent
        self.bytes_received = bytes_received


class _Connection(asyncio.Protocol):
    """One keep-alive connection: a request at a time, its response parsed as it arrives."""

    def __init__(self, counter: WireCounter, origin: Origin, max_body: int) -> None:
        self.counter = counter
        self.origin = origin
        self.max_body = max_body
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[DeliveryResponse] | None = None
        self.closed = False
        self.expires = 0.0
        self._reset()

    def _reset(self) -> None:
        self._raw: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._kept = 0
        self._in = 0
        self._sent = 0
        self._headers_done = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.counter.bytes_in += len(data)
        self._in += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("unexpected protocol upgrade"))
            self.close()
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is None:
            return
        if self._in == 0:
            self._fail(httpx.RemoteProtocolError("Server disconnected without sending a response."))
        elif self._headers_done and not any(k.lower() in (b"content-length", b"transfer-encoding") for k, _ in self._raw):
            self.on_message_complete()  # a body delimited by the end of the connection
        else:
            self._fail(httpx.ReadError("connection closed in the middle of the response"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        if self._kept < self.max_body:
            piece = body[: self.max_body - self._kept]
            self._body.append(piece)
            self._kept += len(piece)

    def on_message_complete(self) -> None:
        headers = Headers((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in self._raw)
        headers.raw = self._raw
        response = DeliveryResponse(self.parser.get_status_code(), headers, b"".join(self._body), self._sent, self._in)
        if not self.parser.should_keep_alive():
            self.close()
        waiter, self.waiter = self.waiter, None
        self._reset()
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    # helpers
    def send(self, request: bytes, waiter: asyncio.Future[DeliveryResponse]) -> None:
        assert self.transport is not None
        self.waiter = waiter
        self._sent = len(request)
        self.counter.bytes_out += len(request)
        self.transport.write(request)

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class DeliveryClient:
    """POSTs over at most ``concurrency`` pooled connections; an httpx-like ``post`` and ``aclose``."""

    def __init__(
        self,
        counter: WireCounter,
        *,
        concurrency: int = 64,
        timeout: float = 15.0,
        verify: Any = True,
        allowed_hosts: tuple[str, ...] = (),
        keepalive_expiry: float = 60.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.counter = counter
        self.max_connections = concurrency
        self.timeout = timeout
        self.keepalive_expiry = keepalive_expiry
        self.max_response_bytes = max_response_bytes
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        self._guard = GuardedBackend(None, allowed_hosts)  # type: ignore[arg-type]  # only its checks are used
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._heads: dict[str, tuple[Origin, bytes, bytes]] = {}

    # -- the request ------------------------------------------------------------------

    async def post(self, url: str, *, content: bytes, headers: Mapping[str, str], timeout: float | None = None) -> DeliveryResponse:
        origin, target, host = self._parse(url)
        head = b"POST %s HTTP/1.1\r\nHost: %s\r\n%s" % (target, host, _DEFAULT_HEAD)
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode("latin-1")
        request = head + b"Content-Length: %d\r\n\r\n" % len(content) + content
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        conn = await self._acquire(origin, deadline)
        waiter: asyncio.Future[DeliveryResponse] = loop.create_future()
        timer = loop.call_at(deadline, self._expire, conn, waiter)
        ok = False
        try:
            conn.send(request, waiter)
            response = await waiter
            ok = True
            return response
        finally:
            timer.cancel()
            if not ok:
                conn.close()  # a half-read response leaves the connection useless
            self._release(conn)

    def _parse(self, url: str) -> tuple[Origin, bytes, bytes]:
        """(origin, request target, Host header) of ``url``; a malformed URL is an ``httpx.InvalidURL``."""
        cached = self._heads.get(url)
        if cached is not None:
            return cached
        try:
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            if scheme not in ("http", "https") or not parts.hostname:
                raise httpx.UnsupportedProtocol(f"not an http(s) URL: {url!r}")
            port = parts.port or (443 if scheme == "https" else 80)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            # As httpx does: anything but printable ASCII is percent-encoded (UTF-8).
            target_bytes = quote(target, safe=_PRINTABLE).encode("ascii")
            host = parts.netloc.rsplit("@", 1)[-1]
            host_bytes = host.encode("ascii") if host.isascii() else host.encode("idna")
        except httpx.HTTPError:
            raise
        except (ValueError, UnicodeError) as exc:
            raise httpx.InvalidURL(f"malformed URL: {exc}") from None
        out = ((scheme, parts.hostname, port), target_bytes, host_bytes)
        if len(self._heads) < 10_000:
            self._heads[url] = out
        return out

    @staticmethod
    def _expire(conn: _Connection, waiter: asyncio.Future[DeliveryResponse]) -> None:
        if not waiter.done():
            waiter.set_exception(httpx.ReadTimeout("no response within the delivery timeout"))
            conn.close()

    # -- the pool ---------------------------------------------------------------------

    async def _acquire(self, origin: Origin, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        while True:
            stack = self._idle.get(origin)
            now = loop.time()
            while stack:
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
                raise httpx.PoolTimeout("no connection free within the delivery timeout") from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _evict_idle(self) -> bool:
        """Close one idle connection (of any origin) to make room; False when none is idle."""
        for stack in self._idle.values():
            if stack:
                stack.pop(0).close()
                self._open -= 1
                return True
        return False

    def _release(self, conn: _Connection) -> None:
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

    async def _connect(self, origin: Origin, deadline: float) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        remaining = deadline - loop.time()
        try:
            address = await asyncio.wait_for(self._guard._address(host, port), max(remaining, 0))
            tls = self._context() if scheme == "https" else None
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(self.counter, origin, self.max_response_bytes),
                    address,
                    port,
                    ssl=tls,
                    server_hostname=host if tls else None,
                ),
                max(deadline - loop.time(), 0),
            )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"cannot connect to {host}:{port} within the delivery timeout") from None
        except httpx.HTTPError:
            raise
        except (httpcore.ConnectError, OSError, ValueError) as exc:  # the guard's refusal, refused, TLS (SSLError is an OSError)
            raise httpx.ConnectError(str(exc) or exc.__class__.__name__) from None
        self.counter.connections += 1
        return conn

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            if isinstance(self._verify, ssl.SSLContext):
                self._ssl = self._verify
            elif self._verify is False:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                self._ssl = ctx
            else:
                self._ssl = httpx.create_ssl_context(verify=self._verify)
        return self._ssl

    async def aclose(self) -> None:
        for stack in self._idle.values():
            for conn in stack:
                conn.close()
        self._idle.clear()
        self._open = 0
        for waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()
        self._waiters.clear()

    async def __aenter__(self) -> DeliveryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
