"""The provider's front door: API key, rate limit (304s refunded), request counts, fast routes.

A pure ASGI middleware, so a rejected request costs no routing and no
Response object. A WebSocket handshake spends a token of its key like any
request (a stream open is an open, whichever protocol carries it): over the
limit it is refused with HTTP 429 and ``Retry-After`` before any WebSocket
exists, and every handshake is counted by its outcome (101, 401, 429, 503). Fast routes (``routing.FastRoute``) are answered here too:
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


async def deny_websocket(scope: Scope, receive: Receive, send: Send, status: int, body: bytes, retry: bytes) -> None:
    """Refuse a WebSocket handshake with an HTTP answer (uvicorn's ``websocket.http.response``), else a close."""
    await receive()  # the websocket.connect the server queued
    if "websocket.http.response" not in scope.get("extensions", {}):  # pragma: no cover - uvicorn offers it
        await send({"type": "websocket.close", "code": 1008})
        return
    headers = [(b"content-type", b"application/json"), (b"retry-after", retry)]
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body, "more_body": False})


class Gate:
    """Pure ASGI middleware in front of the provider's router."""

    def __init__(self, app: ASGIApp, state: ProviderState, fast: Iterable[FastRoute] = ()) -> None:
        self.app = app
        self.p = state
        self.fast: dict[tuple[str, str], tuple[Any, FastHandler]] = {(f.method, f.path): (f.endpoint, f.handler) for f in fast}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, send)
            else:  # ASGI's one other scope: a WebSocket handshake
                await self._websocket(scope, receive, send)
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

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A handshake: rate-limited by its key (a missing or wrong key is the route's 401), counted by outcome."""
        p = self.p
        given = bearer_key(scope)
        if given and p.key_ok(given):
            wait = p.limiter.take(given.decode("latin-1"))
            if wait is not None:
                p.counters["rate_limited"] += 1
                p.requests["WS (rate limited)"]["429"] += 1
                retry = str(max(1, math.ceil(wait))).encode()
                await deny_websocket(scope, receive, send, 429, b'{"detail":"rate limit exceeded: retry after %s s"}' % retry, retry)
                return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind == "websocket.accept":
                status = 101
            elif kind == "websocket.http.response.start":
                status = message["status"]
            elif kind == "websocket.close" and status == 500:
                status = 403  # closed before the handshake completed: the server answers 403
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            p.requests[f"WS {p.paths.get(scope.get('endpoint'), '(unmatched)')}"][str(status)] += 1

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
