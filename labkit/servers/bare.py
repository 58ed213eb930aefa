"""The bare servers the benchmarks compare labkit's servers against.

Each is the least a Starlette app can do for the same request: the bare poll
endpoint answers with the very status, headers and body the provider sent
(captured by the benchmark just before), and the bare receiver reads the body
and answers 204 at once. They run through ``labkit.lab.serving.serve_app`` as
role ``bare``, so the uvicorn settings, the byte-counting httptools protocol
and uvloop are the same as the provider's and the receiver's: the ratio then
measures labkit's own work and nothing else.

Settings (JSON)::

    {"responses": {"/r304": {"status": 304, "headers": [["etag", "\\"h5\\""], ...], "body_b64": ""}, ...},
     "broadcast": true}   # optional: the bare streaming endpoint (POST /publish, GET /stream)
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi.sse import format_sse_event
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


def _fixed(status: int, headers: list[tuple[str, str]], body: bytes) -> Any:
    async def endpoint(request: Request) -> Response:
        return Response(body, status_code=status, headers=dict(headers))

    return endpoint


async def _receive(request: Request) -> Response:
    await request.body()
    return Response(status_code=204)


async def _healthz(request: Request) -> Response:
    return Response(b'{"ok":true}', media_type="application/json")


def create_app(settings: dict[str, Any]) -> Starlette:
    """A Starlette app: the fixed responses of ``settings``, ``POST /webhook`` (204) and ``/healthz``."""
    routes = [Route("/healthz", _healthz, methods=["GET"]), Route("/webhook", _receive, methods=["POST"])]
    for path, spec in (settings.get("responses") or {}).items():
        # content-length is Starlette's to set, from the body, as for any bare endpoint
        headers = [(k, v) for k, v in spec.get("headers", []) if k.lower() != "content-length"]
        body = base64.b64decode(spec.get("body_b64", ""))
        routes.append(Route(path, _fixed(int(spec["status"]), headers, body), methods=["GET"]))
    app = Starlette(routes=routes)
    return add_broadcast(app) if settings.get("broadcast") else app


# -- the bare streaming endpoint (labkit bench sse_fanout) -----------------------------------
#
# ``POST /publish`` takes an event ({"type", "payload"}), gives it the next id, encodes its SSE
# frame once and puts it on the queue of every open ``GET /stream``; each stream is a
# StreamingResponse over its own asyncio.Queue. No log, no cursor, no bound, no filter: the least
# a Starlette app does to fan an event out, against which the provider's hub is measured.


class _Broadcast:
    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[bytes]] = set()
        self.next_id = 0

    async def publish(self, request: Request) -> Response:
        event = orjson.loads(await request.body())
        self.next_id += 1
        data = b'{"id":%d,"type":%s,"created_ns":%d,"payload":%s}' % (
            self.next_id,
            orjson.dumps(event["type"]),
            time.time_ns(),
            orjson.dumps(event["payload"]),
        )
        frame = format_sse_event(data_str=data.decode(), event=event["type"], id=str(self.next_id))
        for q in self.queues:
            q.put_nowait(frame)
        return Response(b'{"id":%d}' % self.next_id, status_code=201, media_type="application/json")

    async def stream(self, request: Request) -> Response:
        q: asyncio.Queue[bytes] = asyncio.Queue()
        self.queues.add(q)

        async def frames() -> AsyncIterator[bytes]:
            try:
                yield format_sse_event(comment="bare stream", retry=1000)
                while True:
                    yield await q.get()
            finally:
                self.queues.discard(q)

        return StreamingResponse(frames(), media_type="text/event-stream")


def add_broadcast(app: Starlette) -> Starlette:
    """Add ``POST /publish`` and ``GET /stream`` (the bare fan-out) to a bare app."""
    hub = _Broadcast()
    app.router.routes.append(Route("/publish", hub.publish, methods=["POST"]))
    app.router.routes.append(Route("/stream", hub.stream, methods=["GET"]))
    return app
