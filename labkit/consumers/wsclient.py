"""A WebSocket stream connection for the consumer fleet, on the ``websockets`` asyncio client.

The provider's ``WS /ws`` takes the cursor (and filter) as the first message
and then sends one text message per event. Bytes are counted where they cross
the socket: the client's connection class is subclassed to count what its
transport writes and what it receives, handshake and frame headers included.
Compression is off: the lab compares frame overhead plus payload across
styles, and the model (``labkit.model.streams``) assumes uncompressed frames.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from labkit.wire.metering import WireCounter, counting
from labkit.wire.source import connected_from

OnMessage = Callable[[str | bytes, int], None]


def counting_connection(counter: WireCounter) -> type[ClientConnection]:
    """A ``ClientConnection`` class that counts bytes and connections in ``counter``."""
    return counting(ClientConnection, counter)


class WsStream:
    """One open stream: ``run`` reads events until the server closes; ``abort`` cuts it."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def run(self, on_message: OnMessage) -> int:
        """Hand every message to ``on_message`` until the connection ends; returns the close code (0 if none)."""
        try:
            async for message in self.ws:
                on_message(message, time.time_ns())
        except ConnectionClosed:
            pass
        rcvd = self.ws.protocol.close_rcvd
        return rcvd.code if rcvd is not None else 0

    def abort(self) -> None:
        transport = getattr(self.ws, "transport", None)
        if transport is not None:
            transport.abort()


async def _source_socket(url: str, source: str | None, timeout: float) -> socket.socket | None:
    """A socket connected to ``url``'s host from the loopback address ``source`` within ``timeout`` (None without one)."""
    if source is None:
        return None
    parsed = urlsplit(url)
    async with asyncio.timeout(timeout):
        return await connected_from(source, parsed.hostname or "127.0.0.1", parsed.port or (443 if parsed.scheme == "wss" else 80))


async def open_ws(
    url: str,
    api_key: str,
    first: dict[str, Any],
    connection_class: type[ClientConnection],
    timeout: float,
    tls: ssl.SSLContext | None = None,
    source: str | None = None,
) -> WsStream:
    """Connect (from the loopback address ``source`` when given), send the cursor message and return the stream (raises OSError or TimeoutError on failure)."""
    try:
        ws = await connect(
            url,
            additional_headers={"authorization": f"Bearer {api_key}"},
            user_agent_header="labkit-streams",
            compression=None,
            proxy=None,
            open_timeout=timeout,
            max_size=2**22,
            create_connection=connection_class,
            ssl=tls if url.startswith("wss:") else None,  # None on wss: the system's trust
            sock=await _source_socket(url, source, timeout),  # None: websockets connects, the kernel picks the source
        )
    except TimeoutError:
        raise
    except Exception as exc:  # websockets raises InvalidStatus, InvalidHandshake, ...: all a failed connect
        raise OSError(f"cannot open {url}: {exc}") from exc
    try:
        await ws.send(orjson.dumps(first).decode())
    except ConnectionClosed as exc:  # the server went away right after the handshake
        raise OSError(f"{url} closed before the cursor was sent: {exc}") from exc
    return WsStream(ws)
