"""How a module contributes endpoints to the provider app.

Each area (feed, publishing, subscriptions, admin, and any later one such as
a streaming feed) exposes one ``RouteSet``; ``create_app`` includes the sets
listed in ``provider.app.ROUTE_SETS`` in order, so adding an area is a new
module and one line there. A ``FastRoute`` is answered by the API-key
middleware itself, skipping the router and Starlette's exception middleware,
for the few requests whose per-request cost a benchmark compares.

The gate checks the API key of HTTP requests only (a server-sent event stream
is one): a WebSocket route must check it itself, with ``gate.bearer_key``
and ``ProviderState.key_ok``, before it accepts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from labkit.provider.state import ProviderState

FastHandler = Callable[[ProviderState, Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class FastRoute:
    """``method path`` answered by ``handler`` straight from the middleware.

    ``endpoint`` is the router's endpoint for the same route: it labels the
    request counts, and the handler must answer exactly as it would.
    """

    method: str
    path: str
    endpoint: Callable[..., Any]
    handler: FastHandler


@dataclass(frozen=True, slots=True)
class RouteSet:
    """The routes of one area, and those of them the middleware may answer directly."""

    routes: tuple[BaseRoute, ...]
    fast: tuple[FastRoute, ...] = ()
