"""What the streams locustfile uses: one held SSE stream per Locust user, and its delivery lag.

A user opens ``GET /stream`` on the provider over a socket (gevent makes it
cooperative under Locust), reads the response through ``httptools`` (status,
headers, chunked body) and the body by the SSE rules, and fires one Locust
request of type ``LAG``, name ``stream`` per event: the event's ``created_ns``
(the provider's clock, the same machine's) to the moment its frame was read.
A stream that fails to open, ends, or stays silent past ``--stall-after``
seconds fires a failure and reconnects after a jittered backoff, resuming
after the last id it saw (``Last-Event-ID``), so nothing is lost and a drop
shows as a failure in the step that saw it. Events created before the user
started are backlog it catches up on, not a delivery it was waiting for: they
are read but not timed.

Importing this module imports nothing of Locust; the locustfile passes in the
function that fires Locust's request event.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httptools
import orjson

from labkit.config import DEFAULT_API_KEY

LAG_TYPE = "LAG"
STREAM_NAME = "stream"
CONNECT_NAME = "connect"
RECV_BYTES = 65536
BACKOFF_S = (0.2, 2.0)  # first retry, cap

# fire(request_type, name, response_time_ms, response_length, exception)
Fire = Callable[[str, str, float, int, BaseException | None], None]


class StreamEnded(Exception):
    """The stream closed, failed to open, or went silent; the user reconnects."""


def add_stream_arguments(parser: Any) -> None:
    """The streams scenario's options (Locust custom arguments; environment variables as defaults)."""
    parser.add_argument("--api-key", env_var="LABKIT_API_KEY", default=DEFAULT_API_KEY, is_secret=True, help="provider API key")
    parser.add_argument("--start-cursor", env_var="LABKIT_START_CURSOR", default="0", help="cursor a new stream starts after")
    parser.add_argument(
        "--stall-after",
        env_var="LABKIT_STALL_AFTER",
        type=float,
        default=30.0,
        help="seconds without a byte (event or heartbeat) after which a stream counts as failed and reconnects",
    )
    parser.add_argument(
        "--event-interval",
        env_var="LABKIT_EVENT_INTERVAL",
        type=float,
        default=1.0,
        help="expected seconds between events; a stream is stalled after max(--stall-after, 5 x this)",
    )


def stall_after_s(options: Any) -> float:
    """How long a stream may stay silent: at least --stall-after, and five expected event gaps."""
    stall = float(getattr(options, "stall_after", None) or 30.0)
    interval = float(getattr(options, "event_interval", None) or 0.0)
    return max(stall, 5 * interval)


@dataclass
class SseBody:
    """The SSE rules on a byte stream: fields ``id``, ``event``, ``data``; comments skipped; any line end."""

    on_event: Callable[[str | None, str, str], None]
    last_id: str | None = None
    _buf: bytes = b""
    _event: str = ""
    _data: list[str] = field(default_factory=list)

    def feed(self, body: bytes) -> None:
        buf = self._buf + body
        if b"\r" in buf:
            if buf.endswith(b"\r"):  # a \r\n split across reads
                self._buf = buf
                return
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = buf.rfind(b"\n")
        self._buf = buf[end + 1 :]
        if end < 0:
            return
        for line in buf[:end].decode("utf-8", "replace").split("\n"):
            if not line:
                if self._data:
                    self.on_event(self.last_id, self._event or "message", "\n".join(self._data))
                self._data, self._event = [], ""
            elif line[0] != ":":
                name, _, value = line.partition(":")
                value = value[1:] if value[:1] == " " else value
                if name == "data":
                    self._data.append(value)
                elif name == "id" and "\0" not in value:
                    self.last_id = value
                elif name == "event":
                    self._event = value


class _Response:
    """httptools callbacks for one response: the status, then the body into the SSE parser."""

    def __init__(self, body: SseBody) -> None:
        self.body = body
        self.status = 0
        self.error = b""
        self.complete = False
        self.parser = httptools.HttpResponseParser(self)

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, data: bytes) -> None:
        if self.status == 200:
            self.body.feed(data)
        else:
            self.error += data[: 200 - len(self.error)]

    def on_message_complete(self) -> None:
        self.complete = True


class HeldStream:
    """One consumer's SSE stream, held and re-opened until the user stops."""

    def __init__(self, base_url: str, api_key: str, start_cursor: str, stall_after_s: float, fire: Fire) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"the streams scenario needs an http:// provider URL, not {base_url!r}")
        self.host, self.port = url.hostname, url.port or 80
        self.api_key = api_key
        self.stall_after_s = stall_after_s
        self.fire = fire
        self.body = SseBody(self._event, last_id=start_cursor)
        self.events = 0
        self.reconnects = 0
        # events created before this consumer existed are backlog, not delivery lag: read, not timed
        self.joined_ns = time.time_ns()
        self._sock: socket.socket | None = None

    def _request(self) -> bytes:
        head = (
            f"GET /stream HTTP/1.1\r\nhost: {self.host}:{self.port}\r\naccept: text/event-stream\r\n"
            f"authorization: Bearer {self.api_key}\r\nlast-event-id: {self.body.last_id or '0'}\r\n\r\n"
        )
        return head.encode("latin-1")

    def _event(self, event_id: str | None, event_type: str, data: str) -> None:
        received_ns = time.time_ns()
        try:
            created_ns = int(orjson.loads(data)["created_ns"])
        except (ValueError, KeyError, TypeError):
            return  # not an event of the log (an error frame is followed by the end of the stream)
        self.events += 1
        if created_ns < self.joined_ns:
            return
        self.fire(LAG_TYPE, STREAM_NAME, (received_ns - created_ns) / 1e6, len(data), None)

    def hold_once(self) -> None:
        """Open the stream and read it until it ends; raises StreamEnded with the reason."""
        started = time.monotonic()
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.stall_after_s)
        except OSError as exc:
            raise StreamEnded(f"connect: {exc.__class__.__name__}: {exc}") from None
        self._sock = sock
        response = _Response(self.body)
        try:
            sock.sendall(self._request())
            opened = False
            while not response.complete:
                try:
                    data = sock.recv(RECV_BYTES)
                except TimeoutError:
                    raise StreamEnded(f"no byte for {self.stall_after_s:g} s") from None
                if not data:
                    raise StreamEnded("closed by the provider")
                response.parser.feed_data(data)
                if response.status and not opened:
                    opened = True
                    failure = None if response.status == 200 else StreamEnded(f"HTTP {response.status}")
                    self.fire(LAG_TYPE, CONNECT_NAME, (time.monotonic() - started) * 1000, 0, failure)
            raise StreamEnded("stream ended by the provider" if response.status == 200 else f"HTTP {response.status}: {response.error!r}")
        except httptools.HttpParserError as exc:
            raise StreamEnded(f"malformed response: {exc}") from None
        except OSError as exc:
            raise StreamEnded(f"{exc.__class__.__name__}: {exc}") from None
        finally:
            self.close()

    def hold(self, sleep: Callable[[float], None]) -> None:
        """Hold the stream until the user is stopped: every end is a failure, then a jittered backoff and a resume."""
        backoff = BACKOFF_S[0]
        while True:
            before = self.events
            try:
                self.hold_once()
            except StreamEnded as exc:
                self.fire(LAG_TYPE, STREAM_NAME, 0.0, 0, exc)
            self.reconnects += 1
            backoff = BACKOFF_S[0] if self.events > before else min(backoff * 2, BACKOFF_S[1])
            sleep(backoff * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not a secret

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
