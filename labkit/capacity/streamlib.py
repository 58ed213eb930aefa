"""What the streams locustfile uses: one held SSE stream per Locust user, and its delivery lag.

A user opens ``GET /stream`` on the provider over a socket (gevent makes it
cooperative under Locust), feeds what it reads to the HTTP core's sans-IO
``ResponseParser`` (status, headers, chunked body; ``labkit.wire.httpclient``)
and the body to the one SSE decoder (``labkit.wire.sse``), and fires one Locust
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
from typing import Any

import orjson

from labkit.config import DEFAULT_API_KEY
from labkit.wire.errors import RemoteProtocolError
from labkit.wire.httpclient import ResponseParser, parse_url, render_request
from labkit.wire.sse import SseDecoder

LAG_TYPE = "LAG"
STREAM_NAME = "stream"
CONNECT_NAME = "connect"
RECV_BYTES = 65536
BACKOFF_S = (0.2, 2.0)  # first retry, cap
MAX_ERROR_BYTES = 200  # of a refusal's body kept for the failure's name

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


class HeldStream:
    """One consumer's SSE stream, held and re-opened until the user stops."""

    def __init__(self, base_url: str, api_key: str, start_cursor: str, stall_after_s: float, fire: Fire) -> None:
        target = parse_url(base_url)
        if target.origin.scheme != "http":
            raise ValueError(f"the streams scenario needs an http:// provider URL, not {base_url!r}")
        self.target = target
        self.host, self.port = target.origin.host, target.origin.port
        self.api_key = api_key
        self.stall_after_s = stall_after_s
        self.fire = fire
        self.decoder = SseDecoder(last_event_id=start_cursor, on_event=self._on_event)
        self.events = 0
        self.reconnects = 0
        # events created before this consumer existed are backlog, not delivery lag: read, not timed
        self.joined_ns = time.time_ns()
        self._sock: socket.socket | None = None

    @property
    def last_id(self) -> str:
        """The id this stream resumes after."""
        return self.decoder.last_event_id

    def request(self) -> bytes:
        """The GET that opens (or resumes) the stream, after the last dispatched id."""
        headers = (
            ("host", self.target.host.decode("ascii")),
            ("accept", "text/event-stream"),
            ("authorization", f"Bearer {self.api_key}"),
            ("last-event-id", self.decoder.last_event_id or "0"),
        )
        return render_request("GET", self.target.prefix + b"/stream", None, headers)

    def on_body(self, body: bytes) -> None:
        """A piece of the stream's body: each event it completes is timed (``_on_event``)."""
        self.decoder.push(body)

    def _on_event(self, event_id: str, event_type: str, data: str) -> None:
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
        self.decoder.reconnected()  # a new response: nothing of the last one's partial event carries over
        response = ResponseParser(max_body=MAX_ERROR_BYTES)
        response.sink = self.decoder.push  # on_body without its frame: pieces straight into the decoder
        try:
            sock.sendall(self.request())
            opened = False
            while not response.complete:
                try:
                    data = sock.recv(RECV_BYTES)
                except TimeoutError:
                    raise StreamEnded(f"no byte for {self.stall_after_s:g} s") from None
                if not data:
                    raise StreamEnded("closed by the provider")
                response.feed(data)
                if response.status and not opened:
                    opened = True
                    failure = None if response.status == 200 else StreamEnded(f"HTTP {response.status}")
                    self.fire(LAG_TYPE, CONNECT_NAME, (time.monotonic() - started) * 1000, 0, failure)
            raise StreamEnded(
                "stream ended by the provider" if response.status == 200 else f"HTTP {response.status}: {response.content()!r}"
            )
        except RemoteProtocolError as exc:  # "malformed response: ..."
            raise StreamEnded(str(exc)) from None
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
