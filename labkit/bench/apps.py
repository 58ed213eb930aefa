"""The bare servers the benchmarks compare labkit's servers against.

Each is the least a Starlette app can do for the same request: the bare poll
endpoint answers with the very status, headers and body the provider sent
(captured by the benchmark just before), and the bare receiver reads the body
and answers 204 at once. They run through ``labkit.servers.serving.serve_app`` as
role ``bare``, so the uvicorn settings, the byte-counting httptools protocol
and uvloop are the same as the provider's and the receiver's: the ratio then
measures labkit's own work and nothing else.

Settings (JSON)::

    {"responses": {"/r304": {"status": 304, "headers": [["etag", "\\"h5\\""], ...], "body_b64": ""}, ...}}
"""

from __future__ import annotations

import base64
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
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
    return Starlette(routes=routes)
