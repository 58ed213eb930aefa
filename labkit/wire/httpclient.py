"""labkit's one HTTP/1.1 client core: a keep-alive connection parsed with ``httptools``.

The poller fleet (labkit.consumers.rawhttp), the dispatcher (labkit.wire.pool
via labkit.provider.delivery) and the benchmark load client (labkit.bench.load)
all send their requests through ``HttpConnection``: one request at a time on
one connection, the request written in one call as prebuilt bytes, the
response parsed by ``httptools`` (the parser uvicorn uses) as it arrives,
every byte in and out and every connection counted in a ``WireCounter``
(labkit.wire.metering), one deadline per exchange, TLS when the origin is
https. Failures are ``WireError`` kinds (labkit.wire.errors).

It is also the one place that renders a request (``render_request``), splits
a URL (``parse_url``) and parses a response (``ResponseParser``, sans IO):
the SSE stream fleet uses the connection's streaming mode
(``HttpConnection.stream``: the body of a 200 handed on piece by piece as it
arrives, labkit.consumers.sseclient), and the Locust stream user, which
reads a blocking gevent socket, feeds a ``ResponseParser`` itself
(labkit.capacity.streamlib).

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
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote, urlsplit

import httptools

from labkit.wire.addresses import AddressPolicy
from labkit.wire.errors import ConnectError, ConnectTimeout, InvalidURL, ReadError, ReadTimeout, RemoteProtocolError, WireError
from labkit.wire.source import connected_from

if TYPE_CHECKING:  # only the type: metering imports httpx, which the Locust stream user must not (gevent breaks trio)
    from labkit.wire.metering import WireCounter

MAX_RESPONSE_BYTES = 64 * 1024  # of a body kept by default; the rest is read and counted, not kept
MAX_REFUSAL_BYTES = 1024  # of a refused stream's body kept for its reason
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

    @property
    def prefix(self) -> bytes:
        """The path without its query and trailing slashes: what a base URL puts before every request path."""
        return self.path.split(b"?", 1)[0].rstrip(b"/")


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


def header_lines(headers: Iterable[tuple[str, str]]) -> bytes:
    """Header lines as sent, in order, names as given: a fixed part can be rendered once and reused."""
    return "".join(f"{k}: {v}\r\n" for k, v in headers).encode("latin-1")


def render_request(
    method: str,
    path: bytes,
    host: bytes | None,
    headers: Iterable[tuple[str, str]] | bytes = (),
    body: bytes | None = None,
) -> bytes:
    """HTTP/1.1 request bytes: request line, ``Host``, the headers in order, ``Content-Length`` when there is a body.

    ``headers`` are pairs or lines already rendered by ``header_lines``; with ``host`` None they
    carry the host line themselves (a client that sends it lower-case, in its own place).
    """
    head = b"%s %s HTTP/1.1\r\n" % (method.encode("ascii"), path)
    if host is not None:
        head += b"Host: %s\r\n" % host
    head += headers if isinstance(headers, bytes) else header_lines(headers)
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


class StreamEnd(NamedTuple):
    """How a streamed response ended: its status (0 when none arrived) and why."""

    status: int
    reason: str


def protocol_error(exc: httptools.HttpParserError) -> RemoteProtocolError:
    """What a parser error means for the exchange."""
    if isinstance(exc, httptools.HttpParserUpgrade):
        return RemoteProtocolError("unexpected protocol upgrade")
    return RemoteProtocolError(f"malformed response: {exc}")


class ResponseParser:
    """The responses on one connection, parsed by ``httptools`` as bytes are fed (sans IO).

    Kept: the status, the raw headers and up to ``max_body`` bytes of the body,
    until ``reset`` starts the next response. With a ``sink``, the body of a 200
    goes to it piece by piece instead (a stream); another status's body is kept
    as for any response (its reason). ``on_complete`` is called when the
    response's last byte has been fed.
    """

    __slots__ = ("body", "complete", "headers_done", "kept", "max_body", "on_complete", "parser", "raw", "sink", "status")

    def __init__(self, on_complete: Callable[[], None] | None = None, max_body: int = MAX_RESPONSE_BYTES) -> None:
        self.on_complete = on_complete
        self.max_body = max_body
        self.sink: Callable[[bytes], None] | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.reset()

    def reset(self) -> None:
        """Forget the last response (keep-alive: the next one follows on the same connection)."""
        self.raw: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.kept = 0
        self.status = 0
        self.headers_done = False
        self.complete = False

    def feed(self, data: bytes) -> None:
        """Parse the next bytes; ``RemoteProtocolError`` when they are not an HTTP/1.1 response."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise protocol_error(exc) from None

    def keep_alive(self) -> bool:
        """True when the connection may carry another request after this response."""
        return bool(self.parser.should_keep_alive())

    def delimited(self) -> bool:
        """True when the response said where its body ends (else the end of the connection ends it)."""
        return any(k.lower() in (b"content-length", b"transfer-encoding") for k, _ in self.raw)

    def content(self) -> bytes:
        return b"".join(self.body)

    # -- httptools callbacks ------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw.append((name, value))

    def on_headers_complete(self) -> None:
        self.headers_done = True
        self.status = self.parser.get_status_code()
        if self.status != 200:
            self.sink = None  # a refusal is not the stream: its body is the reason, kept

    def on_body(self, body: bytes) -> None:
        sink = self.sink
        if sink is not None:
            sink(body)
        elif self.kept < self.max_body:
            piece = body[: self.max_body - self.kept]
            self.body.append(piece)
            self.kept += len(piece)

    def on_message_complete(self) -> None:
        self.complete = True
        if self.on_complete is not None:
            self.on_complete()


class HttpConnection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, its response parsed as it arrives.

    ``exchange`` awaits a whole response; ``stream`` (the streaming mode) hands a
    200's body on as it arrives until the response or the connection ends.
    A failed, timed-out or cancelled exchange closes the connection: a half-read
    response would otherwise be taken for the next request's.
    """

    # slots: thousands of streams each hold one, and the per-piece path reads these attributes
    __slots__ = (
        "_clock",
        "_feed",
        "_in",
        "_sent",
        "closed",
        "counter",
        "ended",
        "expires",
        "last_byte",
        "origin",
        "response",
        "transport",
        "waiter",
    )

    def __init__(self, counter: WireCounter, origin: Origin, max_body: int = MAX_RESPONSE_BYTES) -> None:
        self.counter = counter
        self.origin = origin
        self.response = ResponseParser(self.on_message_complete, max_body)
        self._feed = self.response.parser.feed_data  # called per piece received: no wrapper in between
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.ended: asyncio.Future[StreamEnd] | None = None  # set in streaming mode
        self.closed = False
        self.expires = 0.0  # loop time after which an idle connection is not reused (set by a pool)
        self.last_byte = 0.0  # loop time of the last byte in (or of the connection), for idle checks
        self._in = 0
        self._sent = 0
        self._clock: Callable[[], float] = lambda: 0.0  # the loop's clock, once connected

    @property
    def response_started(self) -> bool:
        """True once a byte of the current (or failed) exchange's response has arrived."""
        return self._in > 0

    @property
    def status(self) -> int:
        """The current response's status; 0 until its head has arrived."""
        return self.response.status

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._clock = asyncio.get_running_loop().time
        self.last_byte = self._clock()

    def data_received(self, data: bytes) -> None:
        self.counter.bytes_in += len(data)
        self._in += len(data)
        self.last_byte = self._clock()
        try:
            self._feed(data)
        except httptools.HttpParserError as exc:
            error = protocol_error(exc)
            self._fail(error)
            self.close(str(error))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.ended is not None:
            self._end(f"connection lost: {exc}" if exc else "closed by the server")
        if self.waiter is None:
            return
        if self._in == 0:
            self._fail(RemoteProtocolError("server disconnected without sending a response"))
        elif self.response.headers_done and not self.response.delimited():
            self.on_message_complete()  # a body delimited by the end of the connection
        else:
            self._fail(ReadError("connection closed in the middle of the response"))

    def on_message_complete(self) -> None:
        r = self.response
        if self.ended is not None:
            self.close("stream ended by the server" if r.status == 200 else r.content().decode("utf-8", "replace")[:200])
            return
        headers = Headers((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in r.raw)
        headers.raw = r.raw
        response = Response(r.status, headers, r.content(), self._sent, self._in)
        if not r.keep_alive():
            self.close()
        waiter, self.waiter = self.waiter, None
        r.reset()
        self._in = 0
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
        self._send(request)
        try:
            return await waiter
        except BaseException:
            self.close()
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def stream(self, request: bytes, on_body: Callable[[bytes], None]) -> asyncio.Future[StreamEnd]:
        """Streaming mode: send ``request``; each piece of a 200's body goes to ``on_body`` as it arrives.

        The returned future is set (never failed) when the stream ends: the server ended the
        response or the connection, the response was malformed, or ``close`` was called. A
        status other than 200 keeps its body (up to ``MAX_REFUSAL_BYTES``) as the reason. The
        connection is closed then: a stream's connection is never reused.
        """
        if self.closed or self.transport is None:
            raise RemoteProtocolError("the connection is closed")
        self.ended = asyncio.get_running_loop().create_future()
        self.response.sink = on_body
        self.response.max_body = MAX_REFUSAL_BYTES
        self._send(request)
        return self.ended

    def _send(self, request: bytes) -> None:
        self.response.reset()
        self._in = 0
        self._sent = len(request)
        self.counter.bytes_out += len(request)
        self.transport.write(request)  # type: ignore[union-attr]

    def _expire(self, waiter: asyncio.Future[Response], limit: float) -> None:
        if not waiter.done():
            waiter.set_exception(ReadTimeout(f"no response within {limit:.3g} s"))
            self.close()

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _end(self, reason: str) -> None:
        ended = self.ended
        if ended is not None and not ended.done():
            ended.set_result(StreamEnd(self.response.status, reason))

    def close(self, reason: str = "closed by the client") -> None:
        """Close the connection; a stream still open ends with ``reason``."""
        self.closed = True
        self._end(reason)
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
    source: str | None = None,
) -> HttpConnection:
    """Open a connection to ``origin`` (TLS with ``tls`` when https), checking the address against ``policy``.

    ``source``: the loopback address the connection comes from (a fleet's own source; its port is chosen by connect).

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
            where: dict[str, Any] = {"host": address, "port": port}
            if source is not None:  # bound to a source address, its port chosen by connect (labkit.wire.source)
                where = {"sock": await connected_from(source, address, port)}
            _, conn = await loop.create_connection(
                lambda: HttpConnection(counter, origin, max_body),
                ssl=tls if scheme == "https" else None,
                server_hostname=host if scheme == "https" else None,
                **where,
            )
    except TimeoutError:
        raise ConnectTimeout(f"cannot connect to {host}:{port} within the deadline") from None
    except WireError:
        raise
    except (OSError, ValueError) as exc:  # refused, unreachable, TLS (SSLError is an OSError)
        raise ConnectError(f"cannot connect to {host}:{port}: {str(exc) or exc.__class__.__name__}") from None
    counter.connections += 1
    return conn
