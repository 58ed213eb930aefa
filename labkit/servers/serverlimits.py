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
  slow body gets ``408`` and the app sees the client disconnect.

Nothing runs per byte: the counts come from the parser's callbacks, and a
request costs one ``call_later`` (armed when it begins, cancelled when it is
complete; a body still arriving when the head's timer fires gets the rest of
its own allowance).
"""

from __future__ import annotations

import asyncio
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


def limited_protocol_class(base: type, limits: ServerLimits) -> type:
    """``base`` (uvicorn's httptools protocol, or a subclass) with the limits above.

    Another protocol (h11) is returned unchanged: uvicorn bounds its head with
    ``h11_max_incomplete_event_size``, which ``serving`` sets to the same limit.
    """
    if not all(hasattr(base, name) for name in ("on_header", "on_url", "send_400_response", "on_headers_complete")):
        return base
    max_bytes, max_headers = limits.max_head_bytes, limits.max_headers
    head_s, body_s = limits.head_timeout_s, limits.body_timeout_s

    class LimitedProtocol(HeadTimers, base):  # type: ignore[misc, valid-type]
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
            self._arm(head_s)  # a connection that never sends a head is not kept forever

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
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
