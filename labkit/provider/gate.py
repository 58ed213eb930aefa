"""The provider's front door: API key, rate limit (304s refunded), request counts, fast routes.

A pure ASGI middleware, so a rejected request costs no routing and no
Response object. Fast routes (``routing.FastRoute``) are answered here too:
the router, Starlette's exception middleware and its exit-stack middleware
cost about a third of a 304's CPU (``labkit bench``, poll endpoint).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from labkit.provider.protocol import send_raw
from labkit.provider.routing import FastHandler, FastRoute
from labkit.provider.state import ProviderState

UNAUTHORIZED = b'{"detail":"missing or invalid API key"}'
OPEN_PATHS = frozenset({"/healthz"})


def bearer_key(scope: Scope) -> bytes:
    """The bearer token of the request, or b"" when there is none."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, given = value.partition(b" ")
            return given.strip() if scheme.lower() == b"bearer" else b""
    return b""


class Gate:
    """Pure ASGI middleware in front of the provider's router."""

    def __init__(self, app: ASGIApp, state: ProviderState, fast: Iterable[FastRoute] = ()) -> None:
        self.app = app
        self.p = state
        self.fast: dict[tuple[str, str], tuple[Any, FastHandler]] = {(f.method, f.path): (f.endpoint, f.handler) for f in fast}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        p = self.p
        method = scope["method"]
        if scope["path"] in OPEN_PATHS:
            await self._counted(scope, receive, send, None)
            return
        given = bearer_key(scope)
        if not given or not p.key_ok(given):
            p.counters["unauthorized"] += 1
            p.requests[f"{method} (unauthenticated)"]["401"] += 1
            await send_raw(send, 401, UNAUTHORIZED, [(b"www-authenticate", b"Bearer")])
            return
        key = given.decode("latin-1")
        wait = p.limiter.take(key)
        if wait is not None:
            p.counters["rate_limited"] += 1
            p.requests[f"{method} (rate limited)"]["429"] += 1
            retry = str(max(1, math.ceil(wait))).encode()
            body = b'{"detail":"rate limit exceeded: retry after %s s"}' % retry
            await send_raw(send, 429, body, [(b"retry-after", retry)])
            return
        fast = self.fast.get((method, scope["path"]))
        if fast is not None:
            scope["endpoint"] = fast[0]  # the route label of the request counts
            await self._counted(scope, receive, send, key, fast[1])
            return
        await self._counted(scope, receive, send, key)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, key: str | None, handler: FastHandler | None = None) -> None:
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if handler is None:
                await self.app(scope, receive, send_status)
            else:
                await handler(self.p, scope, receive, send_status)
        finally:
            if status == 304 and key is not None:
                self.p.limiter.refund(key)
            label = f"{scope['method']} {self.p.paths.get(scope.get('endpoint'), '(unmatched)')}"
            self.p.requests[label][str(status)] += 1
