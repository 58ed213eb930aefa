"""The provider's HTTP app: publish, the polling feed, subscriptions and stats.

``create_app(settings)`` assembles a Starlette app from the route sets of the
provider's areas (``ROUTE_SETS``), puts the API-key middleware (``gate``) in
front and gives it a lifespan that opens the store, starts the dispatcher and
closes both on shutdown. Endpoints are module-level functions that read the
typed ``ProviderState`` from ``request.app.state.provider``. To add an area
(for example a streaming feed), write a module with a ``ROUTES = RouteSet(...)``
and add it to ``ROUTE_SETS``.

Hostile input gets a 4xx whose ``detail`` names the problem, never a 500,
and writes nothing. API keys and webhook secrets are never logged.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from labkit.config import ProviderSettings
from labkit.provider import admin, feed, publishing, stream_routes, subscriptions
from labkit.provider.delivery import DeliveryClient
from labkit.provider.dispatcher import Dispatcher
from labkit.provider.gate import Gate
from labkit.provider.protocol import json_response
from labkit.provider.routing import RouteSet
from labkit.provider.state import ProviderState
from labkit.provider.store import Store
from labkit.provider.streams import StreamHub

log = logging.getLogger("labkit.provider")

# Matched in this order; the feed first because its routes are the hottest.
ROUTE_SETS: tuple[RouteSet, ...] = (feed.ROUTES, publishing.ROUTES, subscriptions.ROUTES, admin.ROUTES, stream_routes.ROUTES)


async def http_error(request: Request, exc: Exception) -> Response:
    """``{"detail": ...}`` with the exception's status and headers (no body where HTTP allows none)."""
    if not isinstance(exc, HTTPException):  # registered for HTTPException only
        return await internal_error(request, exc)
    if exc.status_code in (204, 304) or exc.status_code < 200:
        return Response(status_code=exc.status_code, headers=exc.headers)
    return json_response(exc.status_code, {"detail": exc.detail}, headers=exc.headers)


async def internal_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return json_response(500, {"detail": "internal error"})


def _delivery_client(state: ProviderState) -> DeliveryClient:
    settings = state.settings
    verify: Any = ssl.create_default_context(cafile=settings.ca_file) if settings.ca_file else True
    # Every connection the dispatcher opens is checked again: DNS may have changed since subscribing.
    return DeliveryClient(
        state.wire,
        concurrency=settings.dispatch_concurrency,
        timeout=settings.delivery_timeout_s,
        verify=verify,
        allowed_hosts=settings.allowed_callback_hosts,
    )


def _lifespan(state: ProviderState) -> Any:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.store = Store(state.settings.db_path)
        client = _delivery_client(state)
        state.dispatcher = Dispatcher(state.store, state.settings, client)
        state.hub = app.state.hub = StreamHub(state.store, state.settings.streams)
        app.state.on_stopping = state.hub.end_all  # labkit.lab.serving calls it as shutdown begins
        app.state.store = state.store
        app.state.dispatcher = state.dispatcher
        state.dispatcher.start()
        try:
            yield
        finally:
            state.hub.close()
            await state.dispatcher.stop()
            await client.aclose()
            state.store.close()

    return lifespan


def create_app(settings: ProviderSettings, route_sets: tuple[RouteSet, ...] = ROUTE_SETS) -> Starlette:
    """Build a provider app from ``route_sets``; its lifespan opens the store and runs the dispatcher."""
    state = ProviderState(settings)
    routes = [route for rs in route_sets for route in rs.routes]
    fast = [f for rs in route_sets for f in rs.fast]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Gate, state=state, fast=fast)],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
        lifespan=_lifespan(state),
    )
    app.state.provider = state
    app.state.wire = state.wire
    for route in routes:
        endpoint, path = getattr(route, "endpoint", None), getattr(route, "path", None)
        if endpoint is not None and path is not None:
            state.paths[endpoint] = path
    return app
