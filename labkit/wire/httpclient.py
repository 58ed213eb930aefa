"""labkit's one HTTP/1.1 client core: a keep-alive connection parsed with ``httptools``.

The poller fleet (labkit.consumers.rawhttp), the dispatcher (labkit.wire.pool
via labkit.provider.delivery) and the benchmark load client (labkit.bench.load)
all send their requests through ``HttpConnection``: one request at a time on
one connection, the request written in one call as prebuilt bytes, the
response parsed by ``httptools`` (the parser uvicorn uses) as it arrives,
every byte in and out and every connection counted in a ``WireCounter``
(labkit.wire.metering), one deadline per exchange, TLS when the origin is
https. Failures are ``WireError`` kinds (labkit.wire.errors).

Why not httpx on these hot paths, as measured on the lab's VMs:

- Poller fleet: one httpx request costs 0.7-1.0 ms of CPU (httpcore alone
  0.45-0.65 ms), so 5,000 pollers at a 5 s interval (1,000 requests/s)
  saturate one core and the fleet measures its own backlog rather than the
  provider. This core costs 25-90 µs per request.
- Dispatcher: httpcore's pool re-examines every connection for every request
  (``_assign_requests_to_connections`` is quadratic in the pool size and asks
  each idle socket whether it is readable), so at the dispatcher's concurrency
  of 64 the provider spent 90 % of a core in the pool and delivered about 100
  webhooks per second (``labkit bench``, dispatcher). A LIFO stack of idle
  connections per origin (labkit.wire.pool) over this core costs tens of µs
  per delivery.

httpx stays where a request is rare (control calls, tests, TLS cost).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import quote, urlsplit

import httptools

from labkit.wire.addresses import AddressPolicy
from labkit.wire.errors import ConnectError, ConnectTimeout, InvalidURL, ReadError, ReadTimeout, RemoteProtocolError, WireError
from labkit.wire.metering import WireCounter

MAX_RESPONSE_BYTES = 64 * 1024  # of a body kept by default; the rest is read and counted, not kept
_PRINTABLE = "".join(chr(c) for c in range(33, 127))


class Origin(NamedTuple):
    """Where a connection goes: scheme, host name (no brackets) and port."""

    scheme: str
    host: str
    port: int


class Target(NamedTuple):
    """A URL split for sending: its origin, the request target and the ``Host`` header, as bytes."""

    origin: Origin
    path: bytes
    host: bytes


def parse_url(url: str) -> Target:
    """Split an absolute http(s) URL; ``InvalidURL`` when it is not one.

    As httpx does, anything in the path and query but printable ASCII is percent-encoded (UTF-8).
    """
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise InvalidURL(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if scheme == "https" else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        path_bytes = quote(path, safe=_PRINTABLE).encode("ascii")
        host = parts.netloc.rsplit("@", 1)[-1]
        host_bytes = host.encode("ascii") if host.isascii() else host.encode("idna")
    except WireError:
        raise
    except (ValueError, UnicodeError) as exc:
        raise InvalidURL(f"malformed URL: {exc}") from None
    return Target(Origin(scheme, parts.hostname, port), path_bytes, host_bytes)


def render_request(method: str, path: bytes, host: bytes, headers: Iterable[tuple[str, str]] = (), body: bytes | None = None) -> bytes:
    """HTTP/1.1 request bytes: request line, ``Host``, the headers in order, ``Content-Length`` when there is a body."""
    head = b"%s %s HTTP/1.1\r\nHost: %s\r\n" % (method.encode("ascii"), path, host)
    head += "".join(f"{k}: {v}\r\n" for k, v in headers).encode("latin-1")
    if body is None:
        return head + b"\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def tls_context(verify: bool | str | ssl.SSLContext = True) -> ssl.SSLContext:
    """A client TLS context: the system's trust store (True), a CA file (its path), none (False), or the given one."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is False:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return ssl.create_default_context()


class Headers(dict[str, str]):
    """Response headers by lower-case name (the last of repeated ones); ``raw`` keeps them as sent."""

    raw: list[tuple[bytes, bytes]]


class Response:
    """A parsed response, and the exact bytes of its exchange both ways."""

    __slots__ = ("bytes_received", "bytes_sent", "content", "headers", "reason_phrase", "status_code")

    def __init__(self, status_code: int, headers: Headers, content: bytes, bytes_sent: int, bytes_received: int) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.reason_phrase = ""
        self.bytes_sent = bytes_sent
        self.bytes_received = bytes_received


class HttpConnection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, its response parsed as it arrives.

    A failed, timed-out or cancelled exchange closes the connection: a half-read
    response would otherwise be taken for the next request's.
    """

    def __init__(self, counter: WireCounter, origin: Origin, max_body: int = MAX_RESPONSE_BYTES) -> None:
        self.counter = counter
        self.origin = origin
        self.max_body = max_body
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.expires = 0.0  # loop time after which an idle connection is not reused (set by a pool)
        self._reset()

    def _reset(self) -> None:
        self._raw: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._kept = 0
        self._in = 0
        self._sent = 0
        self._headers_done = False

    @property
    def response_started(self) -> bool:
        """True once a byte of the current (or failed) exchange's response has arrived."""
        return self._in > 0

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.counter.bytes_in += len(data)
        self._in += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(RemoteProtocolError("unexpected protocol upgrade"))
            self.close()
        except httptools.HttpParserError as exc:
            self._fail(RemoteProtocolError(f"malformed response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is None:
            return
        if self._in == 0:
            self._fail(RemoteProtocolError("server disconnected without sending a response"))
        elif self._headers_done and not any(k.lower() in (b"content-length", b"transfer-encoding") for k, _ in self._raw):
            self.on_message_complete()  # a body delimited by the end of the connection
        else:
            self._fail(ReadError("connection closed in the middle of the response"))

    # -- httptools callbacks ------------------------------------------------------------

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
        response = Response(self.parser.get_status_code(), headers, b"".join(self._body), self._sent, self._in)
        if not self.parser.should_keep_alive():
            self.close()
        waiter, self.waiter = self.waiter, None
        self._reset()
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    # -- the exchange -------------------------------------------------------------------

    async def exchange(self, request: bytes, deadline: float | None = None) -> Response:
        """Send ``request`` (complete HTTP/1.1 bytes) and await its response until ``deadline`` (loop time)."""
        if self.closed or self.transport is None:
            raise RemoteProtocolError("the connection is closed")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Response] = loop.create_future()
        timer = None if deadline is None else loop.call_at(deadline, self._expire, waiter, deadline - loop.time())
        self.waiter = waiter
        self._reset()
        self._sent = len(request)
        self.counter.bytes_out += len(request)
        self.transport.write(request)
        try:
            return await waiter
        except BaseException:
            self.close()
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _expire(self, waiter: asyncio.Future[Response], limit: float) -> None:
        if not waiter.done():
            waiter.set_exception(ReadTimeout(f"no response within {limit:.3g} s"))
            self.close()

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


async def connect(
    origin: Origin,
    counter: WireCounter,
    *,
    tls: ssl.SSLContext | None = None,
    policy: AddressPolicy | None = None,
    deadline: float | None = None,
    max_body: int = MAX_RESPONSE_BYTES,
) -> HttpConnection:
    """Open a connection to ``origin`` (TLS with ``tls`` when https), checking the address against ``policy``.

    ``ConnectTimeout`` past ``deadline`` (loop time), ``AddressRefused`` when the policy refuses the
    resolved address, ``ConnectError`` for anything else that prevents the connection.
    """
    scheme, host, port = origin
    if scheme == "https" and tls is None:
        tls = tls_context()
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout_at(deadline):
            address = host if policy is None else await policy.connect_address(host, port)
            _, conn = await loop.create_connection(
                lambda: HttpConnection(counter, origin, max_body),
                address,
                port,
                ssl=tls if scheme == "https" else None,
                server_hostname=host if scheme == "https" else None,
            )
    except TimeoutError:
        raise ConnectTimeout(f"cannot connect to {host}:{port} within the deadline") from None
    except WireError:
        raise
    except (OSError, ValueError) as exc:  # refused, unreachable, TLS (SSLError is an OSError)
        raise ConnectError(f"cannot connect to {host}:{port}: {str(exc) or exc.__class__.__name__}") from None
    counter.connections += 1
    return conn
