"""A connection from a chosen loopback source address: bound there, its port chosen by connect, refused cleanly."""

from __future__ import annotations

import asyncio
import socket

import pytest

from labkit.wire.source import connected_from


def test_a_connection_comes_from_its_source_address() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    async def go() -> tuple[str, int]:
        sock = await connected_from("127.0.0.5", "127.0.0.1", port)
        try:
            return sock.getsockname()
        finally:
            sock.close()

    try:
        address, local_port = asyncio.run(go())
        peer = server.accept()[0]
        assert address == "127.0.0.5" and local_port > 0 and peer.getpeername()[0] == "127.0.0.5"
        peer.close()
    finally:
        server.close()


def test_a_refused_connection_raises_and_leaves_no_socket() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with pytest.raises(OSError):
        asyncio.run(connected_from("127.0.0.6", "127.0.0.1", port))
