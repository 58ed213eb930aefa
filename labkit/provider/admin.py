"""Operational endpoints: the unauthenticated health check and the counters a run collects."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from labkit.provider.protocol import JSON, json_response
from labkit.provider.routing import RouteSet
from labkit.provider.state import state_of
from labkit.wire.metering import SERVER_WIRE, process_cpu_s


async def healthz(request: Request) -> Response:
    return Response(b'{"ok":true}', media_type=JSON)


async def stats(request: Request) -> Response:
    p = state_of(request)
    return json_response(
        200,
        {
            "requests": p.requests,
            "published": p.counters["published"],
            "polls": p.counters["polls"],
            "polls_304": p.counters["polls_304"],
            "long_polls": p.counters["long_polls"],
            "rate_limited": p.counters["rate_limited"],
            "unauthorized": p.counters["unauthorized"],
            "dispatcher": p.dispatcher.stats(),
            "wire": p.wire.snapshot(),
            "server_wire": SERVER_WIRE.snapshot(),
            "cpu_s": process_cpu_s(),
            **p.hub.stats(),
        },
    )


ROUTES = RouteSet(
    routes=(
        Route("/healthz", healthz, methods=["GET"]),
        Route("/stats", stats, methods=["GET"]),
    )
)
