"""The one Server-Sent Events decoder: bytes in, events out, no I/O.

Both SSE readers of labkit use it: the asyncio stream fleet
(``labkit.consumers.sseclient`` over the HTTP core's streaming mode) and the
Locust stream user (``labkit.capacity.streamlib``, a gevent socket). Each
pushes the body of a ``text/event-stream`` response, in whatever pieces the
socket delivered, into ``SseDecoder.push``, which calls the reader's
``on_event(id, type, data)`` for each event those bytes completed
(``SseDecoder.feed`` returns them as a list instead).

The rules are the WHATWG HTML standard's ("Server-sent events", parsing an
event stream):

- A UTF-8 byte order mark at the very start of the stream is dropped (once;
  it may arrive split over several pieces).
- Lines end with CRLF, LF or CR. A CR at the end of a piece ends its line at
  once; an LF at the start of the next piece is then the rest of that CRLF,
  not an empty line. Bytes after the last line end wait for the next piece.
- A line starting with ``:`` is a comment (the provider's heartbeat); it is
  counted in ``comments`` and otherwise ignored.
- ``field: value`` (one space after the colon dropped; a line without a colon
  is a field with an empty value): ``data`` lines are joined with newlines,
  ``event`` names the type, ``id`` sets the last event id unless the value
  holds a NUL, ``retry`` sets the reconnection delay in milliseconds when the
  value is ASCII digits only. Other fields are ignored.
- An empty line dispatches: the last event id becomes the one the stream
  resumes from (``last_event_id``), and when a ``data`` line was seen the
  event (id, type, data) is dispatched, its type ``message`` when no
  ``event`` line named one. An event not ended by an empty line when the
  stream ends is never dispatched.

A piece holding exactly one ``event:``, ``data:``, ``id:`` frame (the
provider's, one per write) while nothing is half-read is read off its lines
without the field loop; the rules are the same (the hypothesis test in
``tests/wire/test_sse.py`` checks both ways against the standard's algorithm).

Decoding is per complete line (a line end byte never occurs inside a UTF-8
sequence), with U+FFFD for invalid bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

BOM = b"\xef\xbb\xbf"
_new = tuple.__new__  # builds an Event without NamedTuple's Python-level __new__

# what the decoder calls for each event it dispatches: (id, type, data), the id "" when the stream has sent none
OnEvent = Callable[[str, str, str], object]


class Event(NamedTuple):
    """One dispatched event: the last event id when it was dispatched ("" when none), its type and its data."""

    id: str
    type: str
    data: str


def _no_listener(event_id: str, event_type: str, data: str) -> None:
    raise TypeError("SseDecoder.push needs an on_event callback (feed returns a list instead)")


class SseDecoder:
    """A ``text/event-stream`` parser, keeping the last event id and retry delay.

    ``push(bytes)`` hands each event the bytes completed to ``on_event(id,
    type, data)``: the streams' hot path (no list, no tuple per event, and the
    bound method can be a response parser's body sink itself). ``feed(bytes)
    -> list[Event]`` returns them instead, for callers that want a list.
    ``last_event_id`` is what a reconnecting client sends as
    ``Last-Event-ID`` (already the dispatched event's when ``on_event`` runs);
    ``retry_ms`` is the server's latest ``retry:`` (None until one arrives).
    Both survive ``reconnected()``, which starts the parse of a new response.
    """

    __slots__ = (
        "_buf",
        "_cr",
        "_data",
        "_event",
        "_id",
        "_idle",
        "_start",
        "comments",
        "last_event_id",
        "on_event",
        "retry_ms",
    )

    def __init__(self, last_event_id: str = "", retry_ms: int | None = None, on_event: OnEvent | None = None) -> None:
        self.last_event_id = last_event_id
        self.retry_ms = retry_ms
        self.comments = 0
        self.on_event: OnEvent = on_event if on_event is not None else _no_listener
        self.reconnected()

    def reconnected(self) -> None:
        """Forget the partial line and event of the last response (a new stream begins, maybe with a BOM)."""
        self._buf = b""
        self._cr = False  # the last piece ended in CR: an LF first in the next piece belongs to it
        self._start = True  # nothing of this stream seen yet: a BOM may still come
        self._data: str | None = None  # the data buffer; None until a data line
        self._event = ""
        self._id = self.last_event_id
        # nothing half-read (no partial line, data or event name, no CR or BOM pending): a piece that is
        # whole lines may take the fast path
        self._idle = False

    def feed(self, chunk: bytes) -> list[Event]:
        """The events completed by ``chunk`` (the next bytes of the body), in order."""
        events: list[Event] = []
        on_event = self.on_event
        self.on_event = lambda *event: events.append(_new(Event, event))
        try:
            self.push(chunk)
        finally:
            self.on_event = on_event
        return events

    def push(self, chunk: bytes) -> None:
        """Each event completed by ``chunk`` (the next bytes of the body) to ``on_event``, in order."""
        if self._idle and chunk[-2:] == b"\n\n" and b"\r" not in chunk:
            # Nothing half-read and the piece is whole LF-ended lines, the common piece of a live stream.
            # The provider's frame, ``event: T / data: D / id: N`` and its blank line, in one piece (one
            # frame per write), is dispatched without the field loop: the same rules, read off the lines.
            lines = chunk.decode("utf-8", "replace").split("\n")
            if len(lines) == 5:  # three lines, the blank one and the empty rest after the last LF
                event, data, event_id = lines[0], lines[1], lines[2]
                if event[:7] == "event: " and data[:6] == "data: " and event_id[:4] == "id: " and "\0" not in event_id:
                    self.last_event_id = self._id = event_id = event_id[4:]
                    self.on_event(event_id, event[7:] or "message", data[6:])
                    return
            lines.pop()
            self._lines(lines)
            return
        if self._cr and chunk:
            self._cr = False
            if chunk[0] == 10:  # b"\n"
                chunk = chunk[1:]
        buf = self._buf + chunk if self._buf else chunk
        if self._start:
            if len(buf) < 3 and BOM.startswith(buf):
                self._buf = buf  # perhaps the start of a BOM: wait for more
                return
            self._start = False
            if buf.startswith(BOM):
                buf = buf[3:]
        if b"\r" in buf:
            self._cr = buf.endswith(b"\r")
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = buf.rfind(b"\n")
        if end < 0:
            self._buf = buf
            self._idle = False
            return
        self._buf = buf[end + 1 :]
        self._lines(buf[:end].decode("utf-8", "replace").split("\n"))

    def _lines(self, lines: list[str]) -> None:
        """The field rules over complete lines, in one loop; then whether the decoder is idle."""
        on_event = self.on_event
        data, event, event_id = self._data, self._event, self._id
        for line in lines:
            if not line:  # an empty line dispatches
                self.last_event_id = event_id
                if data is not None:
                    on_event(event_id, event or "message", data)
                    data = None
                event = ""
                continue
            if line[0] == ":":
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            if value[:1] == " ":
                value = value[1:]
            if name == "data":
                data = value if data is None else f"{data}\n{value}"
            elif name == "id":
                if "\0" not in value:
                    event_id = value
            elif name == "event":
                event = value
            elif name == "retry" and value.isascii() and value.isdigit():
                self.retry_ms = int(value)
        self._data, self._event, self._id = data, event, event_id
        self._idle = not self._buf and data is None and not event and not self._cr
