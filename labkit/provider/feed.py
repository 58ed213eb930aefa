"""The polling side: ``GET /events`` (cursor feed, ETag/304, long poll), one event, the snapshot.

Bodies are built as bytes around the stored payload bytes (see
``payloads``); the 304 path answers from the store's in-memory head without
a query. ``GET /events`` is a fast route: the API-key middleware calls
``feed_asgi`` directly.
"""

from __future__ import annotations

import math
import time

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from labkit.provider.dispatcher import event_json
from labkit.provider.gate import bearer_key
from labkit.provider.protocol import (
    JSON,
    MAX_CURSOR,
    RawResponse,
    etag_matches,
    header_value,
    json_headers,
    parse_cursor,
    parse_query,
    seconds,
)
from labkit.provider.routing import FastRoute, RouteSet
from labkit.provider.state import ProviderState, state_of

MAX_FILTER_TYPES = 50


def _page_args(p: ProviderState, query: bytes) -> tuple[int, int, float, tuple[str, ...]]:
    """``after``, ``limit``, ``wait`` and ``types`` of a feed request; 400 naming a bad one."""
    settings = p.settings
    q = parse_query(query)
    after = parse_cursor(q.get("after"))
    limit = settings.page_limit_default
    raw = q.get("limit")
    if raw is not None:
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 6 or not 1 <= int(raw) <= settings.page_limit_max:
            raise HTTPException(400, f"limit: must be an integer from 1 to {settings.page_limit_max}")
        limit = int(raw)
    wait = 0.0
    raw = q.get("wait")
    if raw is not None:
        try:
            wait = float(raw)
        except ValueError:
            wait = -1.0
        if not (math.isfinite(wait) and 0 <= wait <= settings.max_wait_s) or len(raw) > 32:
            raise HTTPException(400, f"wait: must be seconds from 0 to {seconds(settings.max_wait_s)}")
    types: tuple[str, ...] = ()
    raw = q.get("types")
    if raw:
        types = tuple(dict.fromkeys(t.strip() for t in raw.split(",") if t.strip()))
        if len(types) > MAX_FILTER_TYPES or any(len(t) > 100 for t in types):
            raise HTTPException(400, f"types: at most {MAX_FILTER_TYPES} types of 1 to 100 characters")
    return after, limit, wait, types


async def _long_poll(p: ProviderState, head: int, after: int, wait: float, types: tuple[str, ...], consumer: str | None) -> int:
    """Wait up to ``wait`` seconds for an event past ``after``; the feed head then."""
    p.counters["long_polls"] += 1
    deadline = time.monotonic() + wait
    while head <= after:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not await p.wait_publish(remaining, types, consumer):
            break
        head = p.store.head(types, consumer)
    return head


async def page(p: ProviderState, scope: Scope) -> Response:
    """One page of the feed after the cursor, or a 304 when the client's ETag is the feed's head.

    A scoped key (``ProviderSettings.key_scopes``) reads its own feed: its
    consumer's events, or its topics', with its own head, ETag and long-poll wake-ups.
    """
    after, limit, wait, types = _page_args(p, scope["query_string"])
    consumer = None
    if p.scopes:
        types, consumer = p.audience_filter(bearer_key(scope), types)
    store = p.store
    p.counters["polls"] += 1
    head = store.head(types, consumer)
    if head <= after and wait > 0:
        head = await _long_poll(p, head, after, wait, types, consumer)
    etag = b'"h%d"' % head
    if head <= after:
        inm = header_value(scope, b"if-none-match")
        if inm is not None and etag_matches(inm, etag):
            p.counters["polls_304"] += 1
            return RawResponse(304, b"", [(b"etag", etag), (b"x-poll-interval", p.poll_interval)])
        events, nxt = b"", after
    else:
        events, last = store.page_json(after, limit, types, consumer)
        nxt = last or after
    # The head is the newest matching id (this process is the only writer): more exist iff it is past the page.
    body = b'{"data":[%s],"next":"%d","has_more":%s}' % (events, nxt, b"true" if nxt < head else b"false")
    return RawResponse(200, body, [(b"etag", etag), (b"x-poll-interval", p.poll_interval), *json_headers(body)])


async def feed(request: Request) -> Response:
    """``GET /events`` through the router (the middleware normally answers it first)."""
    return await page(state_of(request), request.scope)


async def feed_asgi(p: ProviderState, scope: Scope, receive: Receive, send: Send) -> None:
    """``GET /events`` straight from the middleware; errors answered as the app's HTTPException handler does."""
    try:
        response = await page(p, scope)
    except HTTPException as exc:
        response = JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    await response(scope, receive, send)


async def one_event(request: Request) -> Response:
    raw = request.path_params["event_id"]
    ok = raw.isascii() and raw.isdigit() and len(raw) <= 19 and int(raw) <= MAX_CURSOR
    p = state_of(request)
    row = p.store.event(int(raw)) if ok else None
    if row is not None and p.scopes and not _in_scope(p, request.scope, int(raw)):
        row = None  # another consumer's event is not found, as it would not be in an account-scoped API
    if row is None:
        raise HTTPException(404, "event not found")
    return Response(event_json(row), media_type=JSON)


def _in_scope(p: ProviderState, scope: Scope, event_id: int) -> bool:
    """True when the request's key may read event ``event_id`` (an unscoped key reads every event)."""
    types, consumer = p.audience_filter(bearer_key(scope), ())
    if not types and consumer is None:
        return True
    routing = p.store.event_routing(event_id)
    return routing is not None and (not types or routing[0] in types) and (consumer is None or routing[1] == consumer)


async def snapshot(request: Request) -> Response:
    """The latest state as one resource (no log): a slow poller misses the versions in between."""
    p = state_of(request)
    if p.scopes and bearer_key(request.scope) in p.scopes:
        raise HTTPException(403, "snapshot: the latest state of every consumer is not readable with a scoped key; use GET /events")
    p.counters["snapshot_polls"] += 1
    head = p.store.head(())
    etag = b'"v%d"' % head
    inm = header_value(request.scope, b"if-none-match")
    if inm is not None and etag_matches(inm, etag):
        return RawResponse(304, b"", [(b"etag", etag), (b"x-poll-interval", p.poll_interval)])
    row = p.store.event(head) if head else None
    if row is None:
        body = b'{"version":0,"id":0,"state":null}'
    else:
        body = b'{"version":%d,"id":%d,"type":%s,"created_ns":%d,"state":%s}' % (row[0], row[0], orjson.dumps(row[1]), row[2], row[3])
    return RawResponse(200, body, [(b"etag", etag), (b"x-poll-interval", p.poll_interval), *json_headers(body)])


# The poll routes first: routes are matched in order and they are the hottest.
ROUTES = RouteSet(
    routes=(
        Route("/snapshot", snapshot, methods=["GET"]),
        Route("/events", feed, methods=["GET"]),
        Route("/events/{event_id}", one_event, methods=["GET"]),
    ),
    fast=(FastRoute("GET", "/events", feed, feed_asgi),),
)
