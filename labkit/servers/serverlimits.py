"""Limits every lab server enforces below the app: head size, header count, slow clients.

uvicorn's httptools protocol accepts a request head of any size and waits
forever for one that trickles in a byte at a time (slowloris): its only timer
is the keep-alive timer, armed after a response. ``limited_protocol_class``
wraps the server's protocol class with:

- ``max_head_bytes`` / ``max_headers``: a larger request line plus headers, or
  more header lines, gets ``431 Request Header Fields Too Large`` and the
  connection is closed before the app sees anything;
- ``head_timeout_s``: a connection must deliver a complete head this long after
  it opens (or after its previous response) or it gets ``408`` and is closed;
- ``body_timeout_s``: the body must be complete this long after the head; a
  slow body gets ``408`` and the app sees the client disconnect;
- a WebSocket upgrade over HTTP/1.0 gets ``505`` (uvicorn would rewrite the
  request line to HTTP/1.1 and accept it).

Every request scope (HTTP and WebSocket) carries the extension ``ABORT``:
``scope["extensions"][ABORT]["abort"]()`` resets the connection at once. A
server that merely closes a transport waits until its buffered bytes are
written, which a reader that stopped reading never allows; an app that lets
such a connection go (the provider's dropped streams) resets it instead, so
its socket and file descriptor go too.

Nothing runs per byte: the counts come from the parser's callbacks, and a
request costs one ``call_later`` (armed when it begins, cancelled when it is
complete; a body still arriving when the head's timer fires gets the rest of
its own allowance).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from functools import partial
from typing import Any

from labkit.config import ServerLimits


class HeadTooLarge(Exception):
    """Raised inside a parser callback; httptools turns it into a parser error."""


def _response(status: int, reason: bytes, detail: bytes) -> bytes:
    body = b'{"detail":"%s"}' % detail
    return b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (
        status,
        reason,
        len(body),
        body,
    )


TOO_LARGE = _response(431, b"Request Header Fields Too Large", b"request head too large")
TIMED_OUT = _response(408, b"Request Timeout", b"request not received in time")
WS_NEEDS_11 = _response(505, b"HTTP Version Not Supported", b"a WebSocket upgrade needs HTTP/1.1")
ABORT = "labkit.abort"
log = logging.getLogger("labkit.servers")


def reset(transport: Any) -> None:
    """Close ``transport`` now, unsent bytes dropped and the peer told by a TCP reset (SO_LINGER 0)."""
    if transport is None or transport.is_closing() and not transport.get_write_buffer_size():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def abort_extension(transport: Any) -> dict[str, dict[str, Any]]:
    """The scope extension that lets an app reset its connection (see the module doc)."""
    return {ABORT: {"abort": partial(reset, transport)}}


class HeadTimers:
    """The one timer per request: armed when a head begins, answered with 408 when it expires.

    Mixed into the protocol class ahead of uvicorn's, whose ``loop`` and ``transport`` it uses.
    """

    loop: asyncio.AbstractEventLoop
    transport: Any
    _timer: asyncio.TimerHandle | None
    _body_deadline: float | None

    def _arm(self, seconds: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self._body_deadline is not None:
            remaining = self._body_deadline - self.loop.time()
            if remaining > 0:
                self._timer = self.loop.call_later(remaining, self._expired)
                return
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        cycle = getattr(self, "cycle", None)
        if cycle is None or not cycle.response_started:
            transport.write(TIMED_OUT)
        transport.close()


class RefuseHttp10Upgrade:
    """A WebSocket upgrade over HTTP/1.0 answered with 505 and closed (uvicorn would accept it as HTTP/1.1).

    Mixed in ahead of uvicorn's httptools protocol; once the refusal is
    written, the parser's later callbacks for that request are ignored.
    """

    parser: Any
    transport: Any
    cycle: Any

    def _disarm(self) -> None:  # pragma: no cover - HeadTimers' comes first in the MRO
        pass

    def on_headers_complete(self) -> None:
        if self.parser.should_upgrade() and self.parser.get_http_version() == "1.0" and not self.transport.is_closing():
            self._disarm()
            self.transport.write(WS_NEEDS_11)
            self.transport.close()
            return
        super().on_headers_complete()  # type: ignore[misc]

    def _should_upgrade(self) -> bool:
        return not self.transport.is_closing() and super()._should_upgrade()  # type: ignore[misc]

    def _unsupported_upgrade_warning(self) -> None:
        if not self.transport.is_closing():  # refused above: already answered
            super()._unsupported_upgrade_warning()  # type: ignore[misc]

    def on_body(self, body: bytes) -> None:
        if self.cycle is not None or not self.transport.is_closing():
            super().on_body(body)  # type: ignore[misc]

    def on_message_complete(self) -> None:
        if self.cycle is not None or not self.transport.is_closing():
            super().on_message_complete()  # type: ignore[misc]


def limited_protocol_class(base: type, limits: ServerLimits) -> type:
    """``base`` (uvicorn's httptools protocol, or a subclass) with the limits above.

    Another protocol (h11) is returned unchanged: uvicorn bounds its head with
    ``h11_max_incomplete_event_size``, which ``serving`` sets to the same limit.
    """
    if not all(hasattr(base, name) for name in ("on_header", "on_url", "send_400_response", "on_headers_complete")):
        return base
    max_bytes, max_headers = limits.max_head_bytes, limits.max_headers
    head_s, body_s = limits.head_timeout_s, limits.body_timeout_s

    class LimitedProtocol(HeadTimers, RefuseHttp10Upgrade, base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_bytes = 0
            self._head_lines = 0
            self._too_large = False
            self._timer: asyncio.TimerHandle | None = None
            self._body_deadline: float | None = None  # set once the head is complete

        # -- connection and parser callbacks ------------------------------------------

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._extensions = abort_extension(self.transport)  # one per connection, shared by its requests
            self._arm(head_s)  # a connection that never sends a head is not kept forever

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.scope["extensions"] = self._extensions
            self._head_bytes = self._head_lines = 0
            self._body_deadline = None
            self._arm(head_s)

        def _count(self, n: int) -> None:
            self._head_bytes += n
            if self._head_bytes > max_bytes or self._head_lines > max_headers:
                self._too_large = True
                raise HeadTooLarge()

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._head_lines += 1
            self._count(len(name) + len(value) + 4)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._body_deadline = self.loop.time() + body_s
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._disarm()  # the app runs as long as it needs (a long poll holds ~30 s)
            self._body_deadline = None
            super().on_message_complete()

        def send_400_response(self, msg: str) -> None:
            if not self._too_large:
                super().send_400_response(msg)
                return
            self._disarm()
            if not self.transport.is_closing():
                self.transport.write(TOO_LARGE)
                self.transport.close()

    LimitedProtocol.__name__ = f"Limited{base.__name__}"
    LimitedProtocol.__qualname__ = LimitedProtocol.__name__
    return LimitedProtocol


def websocket_protocol_class() -> type | str:
    """uvicorn's WebSocket protocol with the ``ABORT`` extension, and one log line for a client's invalid UTF-8.

    uvicorn logs a traceback (``logger.exception``) for a text message that is
    not UTF-8, a client's mistake; this closes with 1007 after one line.
    """
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol as Base
    except ImportError:  # pragma: no cover - uvicorn[standard] brings websockets
        return "auto"

    class LabWebSocketProtocol(Base):  # type: ignore[misc, valid-type]
        def handle_connect(self, event: Any) -> None:
            super().handle_connect(event)
            scope = getattr(self, "scope", None)
            if scope is not None:
                scope["extensions"].update(abort_extension(self.transport))

        def send_receive_event_to_app(self) -> None:
            if self.curr_msg_data_type == "text" and not self.close_sent:
                try:
                    b"".join(self.frames).decode()
                except UnicodeDecodeError:
                    self.frames = []
                    log.warning("WebSocket %s: a text message that is not UTF-8; closed with 1007", self.client)
                    self.conn.send_close(1007, "invalid UTF-8")
                    self.handle_parser_exception()
                    return
            super().send_receive_event_to_app()

    return LabWebSocketProtocol
