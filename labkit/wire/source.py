"""Connections from a chosen loopback source address, with the port chosen at connect time.

A fleet of more connections than one source address has ephemeral ports
binds each of its processes to a loopback address of its own (127.0.0.2,
...). ``bind((address, 0))`` before ``connect`` makes the kernel choose the
port at bind time, when it does not know the destination yet: each bind
then searches for a port no socket of that address holds at all, a search
that grows with every socket already bound, and with thousands of streams
each bind blocks the fleet's event loop for longer (a 32,000-stream fleet
connected none of them). ``IP_BIND_ADDRESS_NO_PORT`` defers the choice to
``connect``, which needs the port to be unique only for its destination.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

# Linux's IP_BIND_ADDRESS_NO_PORT (include/uapi/linux/in.h), absent from older Pythons' socket module.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


async def connected_from(source: str, host: str, port: int) -> socket.socket:
    """A non-blocking TCP socket bound to ``source`` (its port chosen by connect) and connected to ``host``:``port``.

    Raises OSError as a connect would; the caller bounds the wait. IPv4 only (the lab's loopback).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        with contextlib.suppress(OSError):  # a kernel without it: the slower bind still works
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return sock
