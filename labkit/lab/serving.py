"""Running one lab server or consumer in a process of its own.

``python -m labkit.lab.serving ROLE SETTINGS_JSON [--fd N]`` is how the runner
starts its children: the settings arrive as a JSON file (so secrets never
show in a process list) and the listening socket as an inherited file
descriptor bound by the parent (so there is no race for a free port).
``labkit serve`` calls ``serve_app`` in the foreground for people and Locust.
"""

from __future__ import annotations

import argparse
import gc
import json
import socket
import sys
from pathlib import Path
from typing import Any

import uvicorn

from labkit.config import ServerLimits
from labkit.servers.openfiles import raise_soft_limit
from labkit.servers.serverlimits import limited_protocol_class, websocket_protocol_class
from labkit.wire.metering import counting_protocol_class

# "bare": the benchmark's bare Starlette servers (labkit.servers.bare), served the same way.
ROLES = ("provider", "receiver", "poller", "bare", "streams")


def _loop() -> str:
    try:
        import uvloop  # noqa: F401

        return "uvloop"
    except ImportError:  # pragma: no cover
        return "asyncio"


def serve_app(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    sock: socket.socket | None = None,
    log_level: str = "warning",
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    limits: ServerLimits | None = None,
    control_sock: socket.socket | None = None,
) -> None:
    """Serve ``app`` with uvicorn, counting wire bytes and enforcing ``limits``; returns when it stops.

    ``control_sock``: a second, private listening socket (one worker of several answers there alone).
    """
    limits = limits or ServerLimits()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=limited_protocol_class(counting_protocol_class(), limits),
        ws=websocket_protocol_class(),
        h11_max_incomplete_event_size=limits.max_head_bytes,
        loop=_loop(),
        lifespan="on",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
        timeout_keep_alive=75,
        server_header=False,
        date_header=False,
        backlog=4096,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )
    server = _Server(config)
    # The ~70,000 objects of the imports and the app live as long as the process: freezing them
    # keeps each full collection to what requests allocate, instead of a 40 ms pause (more on a
    # busy machine) that every request in flight waits for (``labkit bench``).
    gc.collect()
    gc.freeze()
    # A young generation of 10,000 objects instead of 700: a batch of 1,000 events of one consumer each leaves
    # about 1,000 young objects alive (each event's encoded frame, queued for its stream), so every batch set off
    # a young collection, every tenth one of the middle generation while a request was in flight, and what that
    # promoted set off full collections of every connection's objects (one of 75 ms in 60 batches with 1,000
    # streams open, measured in the provider). With 10,000 the same 60 batches had none, and one young collection.
    gc.set_threshold(10_000, 10, 10)
    socks = [s for s in (sock, control_sock) if s is not None]
    server.run(sockets=socks or None)


class _Server(uvicorn.Server):
    """uvicorn's server; an app with ``state.on_stopping`` is told when shutdown begins.

    uvicorn waits, before the app's own shutdown, for every response in flight
    to end; a response that streams forever (SSE, WebSocket) would hold each
    stop for the whole graceful timeout. The hook lets the app end them first.
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        stopping = getattr(getattr(self.config.app, "state", None), "on_stopping", None)
        if callable(stopping):
            stopping()
        await super().shutdown(sockets)


def build_app(role: str, settings: dict[str, Any]) -> Any:
    """The ASGI app for a server role, from a settings mapping."""
    from labkit.config import ProviderSettings, ReceiverSettings, validated

    if role == "provider":
        from labkit.provider.app import create_app as create_provider

        return create_provider(validated(ProviderSettings, settings))
    if role == "receiver":
        from labkit.consumers.receiver import create_app as create_receiver

        return create_receiver(validated(ReceiverSettings, settings))
    if role == "bare":
        from labkit.servers.bare import create_app as create_bare

        return create_bare(settings)
    raise ValueError(f"unknown server role {role!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.lab.serving")
    parser.add_argument("role", choices=ROLES)
    parser.add_argument("settings", type=Path)
    parser.add_argument("--fd", type=int, default=None)
    parser.add_argument("--certfile", default=None)
    parser.add_argument("--keyfile", default=None)
    parser.add_argument("--control-fd", type=int, default=None)
    args = parser.parse_args(argv)
    settings = json.loads(args.settings.read_text())
    if args.role == "poller":
        from labkit.config import PollerSettings, validated
        from labkit.consumers.poller import main as poller_main

        poller_main(validated(PollerSettings, settings))
        return 0
    if args.role == "streams":  # the stream consumer fleet (SSE or WebSocket), a worker like the pollers
        from labkit.config import StreamConsumerSettings, validated
        from labkit.consumers.streams import main as streams_main

        streams_main(validated(StreamConsumerSettings, settings))
        return 0
    if args.role == "receiver" and settings.get("processes", 1) not in (1, None) and args.fd is not None:
        from labkit.consumers.receiver_workers import serve_workers  # N uvicorn workers on this socket

        return serve_workers(settings, args.fd, args.certfile, args.keyfile)
    sock = socket.socket(fileno=args.fd) if args.fd is not None else None
    control = socket.socket(fileno=args.control_fd) if args.control_fd is not None else None
    limits = ServerLimits.model_validate(settings.get("limits") or {})
    raise_soft_limit(limits.open_files)  # each connection holds a file: the hard limit, unless the run sets a lower one
    app = build_app(args.role, settings)
    serve_app(app, sock=sock, ssl_certfile=args.certfile, ssl_keyfile=args.keyfile, limits=limits, control_sock=control)
    return 0


if __name__ == "__main__":
    sys.exit(main())
