"""The provider's HTTP API: publish, the polling feed, subscriptions and stats.

``create_app(settings)`` builds a FastAPI app whose lifespan opens the
store, starts the dispatcher and closes both on shutdown. The polling routes
are plain Starlette endpoints with hand-built orjson bodies and no pydantic,
because a later benchmark compares ``GET /events`` (304) with a bare
endpoint: the 304 path answers from the in-memory feed head without a query.

Hostile input gets a 4xx whose ``detail`` names the problem, never a 500,
and writes nothing. API keys and webhook secrets are never logged.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from labkit.config import ProviderSettings
from labkit.provider.delivery import DeliveryClient
from labkit.provider.dispatcher import Dispatcher, event_json
from labkit.provider.ratelimit import RateLimiter
from labkit.provider.ssrf import check_callback_url
from labkit.provider.store import Store
from labkit.provider.stream_routes import sse_stream, ws_stream
from labkit.provider.streams import StreamHub
from labkit.wire.metering import SERVER_WIRE, WireCounter, process_cpu_s
from labkit.wire.signing import check_secret, new_secret

log = logging.getLogger("labkit.provider")

JSON = "application/json"
MAX_CURSOR = 2**63 - 1
MAX_FILTER_TYPES = 50
# Svix keeps an old secret valid for 24 h after a rotation.
DEFAULT_ROTATION_OVERLAP_S = 86_400.0
UNAUTHORIZED = b'{"detail":"missing or invalid API key"}'


def _json(status: int, content: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON, headers=headers)


def _seconds(value: float) -> str:
    """A header value in seconds: ``1`` rather than ``1.0``, but ``0.5`` stays."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _one_line(exc: ValidationError | RequestValidationError) -> str:
    """The first error as ``field: problem``."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header"))
    msg = "unknown field" if err.get("type") == "extra_forbidden" else str(err.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


# -- request bodies ---------------------------------------------------------------------


class SubscriptionIn(BaseModel):
    """POST /subscriptions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1, max_length=2048)
    event_types: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=list, max_length=100)
    secret: str | None = None


class RotateIn(BaseModel):
    """POST /subscriptions/{id}/rotate-secret: an optional new secret and how long the old one still signs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: str | None = None
    overlap_s: float = Field(DEFAULT_ROTATION_OVERLAP_S, ge=0, le=7 * 86_400, allow_inf_nan=False)


class ReplayIn(BaseModel):
    """POST /subscriptions/{id}/replay: exactly one of ``since_ns`` or ``after``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    since_ns: int | None = Field(None, ge=0, le=MAX_CURSOR)
    after: str | None = None


def _check_type(value: Any) -> str:
    if not isinstance(value, str):
        raise HTTPException(422, "type: must be a string")
    if not 1 <= len(value) <= 100:
        raise HTTPException(422, "type: must have 1 to 100 characters")
    if "," in value or not value.isprintable():
        raise HTTPException(422, "type: must be printable and contain no commas")
    return value


def json_depth_exceeds(body: bytes, data: Any, limit: int) -> bool:
    """True when ``data`` (parsed from ``body``) nests deeper than ``limit``.

    Counting brackets in the raw bytes is C-speed and bounds the depth from
    above, so the walk only runs for bodies that could be too deep.
    """
    if body.count(b"{") + body.count(b"[") <= limit:
        return False
    level = [(data, 1)]
    while level:
        value, depth = level.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value  # type: ignore[assignment]
        else:
            continue
        if depth > limit:
            return True
        level.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def _cursor(value: str | None, name: str = "after") -> int:
    if value is None or value == "":
        return 0
    if len(value) > 20 or not (value.isascii() and value.isdigit()) or int(value) > MAX_CURSOR:
        raise HTTPException(400, f"{name}: cursor must be a decimal event id from 0 to {MAX_CURSOR}")
    return int(value)


class Provider:
    """Everything one provider app holds; built at create time, opened by the lifespan."""

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self.keys = tuple(k.encode() for k in settings.api_keys)
        self.limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst, per_key=settings.key_rate_limits)
        self.poll_interval = _seconds(settings.poll_interval_hint_s)
        self.first_delay_ns = int(settings.retry_schedule_s[0] * settings.time_scale * 1e9)
        self.counters: dict[str, int] = defaultdict(int)
        self.paths: dict[Any, str] = {}  # endpoint -> route path, for request counts
        self.requests: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._published = asyncio.Event()
        self.store: Store
        self.dispatcher: Dispatcher
        self.hub: StreamHub
        self.wire = WireCounter()
        # (method, path) -> (endpoint, ASGI app) that the Gate calls directly, skipping the router.
        self.fast_routes: dict[tuple[str, str], tuple[Any, ASGIApp]] = {}

    # Long polling: each publish sets the current event and replaces it, waking all waiters once.
    def notify(self) -> None:
        self._published.set()
        self._published = asyncio.Event()

    async def wait_publish(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._published.wait(), timeout)
            return True
        except TimeoutError:
            return False

    def key_ok(self, given: bytes) -> bool:
        ok = False
        for key in self.keys:  # no early exit: time does not say which key was close
            ok |= hmac.compare_digest(key, given)
        return ok

    async def read_json(self, request: Request) -> Any:
        """The body as JSON, enforcing content-type and ``max_body_bytes`` on the header and the stream."""
        limit = self.settings.max_body_bytes
        mime = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if mime != JSON and not (mime.startswith("application/") and mime.endswith("+json")):
            raise HTTPException(415, "content-type must be application/json")
        length = request.headers.get("content-length")
        if length is not None:
            if not (length.isascii() and length.isdigit()):
                raise HTTPException(400, "content-length: not a number")
            if int(length) > limit:
                raise HTTPException(413, f"body of {int(length)} bytes exceeds max_body_bytes={limit}")
        buf = bytearray()
        try:
            async for chunk in request.stream():
                buf += chunk
                if len(buf) > limit:
                    raise HTTPException(413, f"body exceeds max_body_bytes={limit}")
        except ClientDisconnect:  # a client that went away (or was cut off as too slow) mid-body
            raise HTTPException(400, "client disconnected before the body was complete") from None
        try:
            data = orjson.loads(buf)
        except orjson.JSONDecodeError:
            raise HTTPException(400, "body is not valid JSON") from None
        depth = self.settings.max_json_depth
        if json_depth_exceeds(bytes(buf), data, depth):
            raise HTTPException(400, f"body nests deeper than max_json_depth={depth}")
        return data

    async def read_model(self, request: Request, model: type[BaseModel]) -> Any:
        data = await self.read_json(request)
        if not isinstance(data, dict):
            raise HTTPException(422, "body must be a JSON object")
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise HTTPException(422, _one_line(exc)) from None


class Gate:
    """Pure ASGI middleware: API key, rate limit (304s refunded) and request counts by route."""

    def __init__(self, app: ASGIApp, provider: Provider) -> None:
        self.app = app
        self.p = provider

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        p = self.p
        method = scope["method"]
        if scope["path"] == "/healthz":
            await self._counted(scope, receive, send, None)
            return
        given = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, given = value.partition(b" ")
                if scheme.lower() != b"bearer":
                    given = b""
                given = given.strip()
                break
        if not given or not p.key_ok(given):
            p.counters["unauthorized"] += 1
            p.requests[f"{method} (unauthenticated)"]["401"] += 1
            await _raw(send, 401, UNAUTHORIZED, [(b"www-authenticate", b"Bearer")])
            return
        key = given.decode("latin-1")
        wait = p.limiter.take(key)
        if wait is not None:
            p.counters["rate_limited"] += 1
            p.requests[f"{method} (rate limited)"]["429"] += 1
            retry = str(max(1, math.ceil(wait))).encode()
            body = b'{"detail":"rate limit exceeded: retry after %s s"}' % retry
            await _raw(send, 429, body, [(b"retry-after", retry)])
            return
        fast = p.fast_routes.get((method, scope["path"]))
        if fast is not None:
            scope["endpoint"] = fast[0]  # the route label of the request counts
            await self._counted(scope, receive, send, key, fast[1])
            return
        await self._counted(scope, receive, send, key)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, key: str | None, app: ASGIApp | None = None) -> None:
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await (app or self.app)(scope, receive, send_status)
        finally:
            if status == 304 and key is not None:
                self.p.limiter.refund(key)
            # FastAPI sets scope["route"] only for its own routes; the plain ones leave "endpoint".
            route = scope.get("route")
            path = getattr(route, "path", None) or self.p.paths.get(scope.get("endpoint"), "(unmatched)")
            label = f"{scope['method']} {path}"
            self.p.requests[label][str(status)] += 1


async def _raw(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _secret_or_new(given: str | None) -> str:
    """The caller's whsec_ secret, checked (422 naming it), or a fresh one."""
    if given is None:
        return new_secret()
    try:
        return check_secret(given)
    except ValueError as exc:
        raise HTTPException(422, f"secret: {exc}") from None


def create_app(settings: ProviderSettings) -> FastAPI:
    """Build a provider app; its lifespan opens the store and runs the dispatcher."""
    p = Provider(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        p.store = Store(settings.db_path)
        verify: Any = True
        if settings.ca_file:
            import ssl

            verify = ssl.create_default_context(cafile=settings.ca_file)
        # Every connection the dispatcher opens is checked again: DNS may have changed since subscribing.
        client = DeliveryClient(
            p.wire,
            concurrency=settings.dispatch_concurrency,
            timeout=settings.delivery_timeout_s,
            verify=verify,
            allowed_hosts=settings.allowed_callback_hosts,
        )
        p.dispatcher = Dispatcher(p.store, settings, client)
        p.hub = app.state.hub = StreamHub(p.store, settings.streams)
        app.state.store = p.store
        app.state.dispatcher = p.dispatcher
        p.dispatcher.start()
        try:
            yield
        finally:
            p.hub.close()
            await p.dispatcher.stop()
            await client.aclose()
            p.store.close()

    app = FastAPI(title="labkit provider", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.provider = p
    app.state.wire = p.wire
    app.add_middleware(Gate, provider=p)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return _json(422, {"detail": _one_line(exc)})

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _json(500, {"detail": "internal error"})

    # -- health and events ---------------------------------------------------------------

    async def healthz(request: Request) -> Response:
        return Response(b'{"ok":true}', media_type=JSON)

    async def publish(request: Request) -> Response:
        data = await p.read_json(request)
        if not isinstance(data, dict):
            raise HTTPException(422, "body must be a JSON object")
        unknown = sorted(set(data) - {"type", "payload"})
        if unknown:
            raise HTTPException(422, f"{unknown[0]}: unknown field")
        if "type" not in data:
            raise HTTPException(422, "type: field required")
        if "payload" not in data:
            raise HTTPException(422, "payload: field required")
        type_ = _check_type(data["type"])
        if not isinstance(data["payload"], dict):
            raise HTTPException(422, "payload: must be a JSON object")
        event_id, created = p.store.publish(type_, orjson.dumps(data["payload"]), p.first_delay_ns)
        p.counters["published"] += 1
        p.notify()
        p.hub.notify()
        p.dispatcher.wake()
        return Response(
            b'{"id":%d,"type":%s,"created_ns":%d}' % (event_id, orjson.dumps(type_), created),
            status_code=201,
            media_type=JSON,
        )

    async def feed(request: Request) -> Response:
        q = _query(request.scope["query_string"])
        after = _cursor(q.get("after"))
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
                raise HTTPException(400, f"wait: must be seconds from 0 to {_seconds(settings.max_wait_s)}")
        types: tuple[str, ...] = ()
        raw = q.get("types")
        if raw:
            types = tuple(dict.fromkeys(t.strip() for t in raw.split(",") if t.strip()))
            if len(types) > MAX_FILTER_TYPES or any(len(t) > 100 for t in types):
                raise HTTPException(400, f"types: at most {MAX_FILTER_TYPES} types of 1 to 100 characters")
        store = p.store
        p.counters["polls"] += 1
        head = store.head(types)
        if head <= after and wait > 0:
            p.counters["long_polls"] += 1
            deadline = time.monotonic() + wait
            while head <= after:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not await p.wait_publish(remaining):
                    break
                head = store.head(types)
        etag = b'"h%d"' % head
        if head <= after:
            inm = _header(request.scope, b"if-none-match")
            if inm is not None and _etag_matches(inm, etag):
                p.counters["polls_304"] += 1
                return _Raw(304, b"", [(b"etag", etag), (b"x-poll-interval", poll_interval)])
            rows = []
        else:
            rows = store.page(after, limit + 1, types)
        has_more = len(rows) > limit
        rows = rows[:limit]
        nxt = rows[-1][0] if rows else after
        body = b'{"data":[%s],"next":"%d","has_more":%s}' % (
            b",".join(event_json(r) for r in rows),
            nxt,
            b"true" if has_more else b"false",
        )
        return _Raw(200, body, [(b"etag", etag), (b"x-poll-interval", poll_interval), *json_headers(body)])

    poll_interval = p.poll_interval.encode()

    async def feed_asgi(scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /events`` straight from the Gate: the router, the exception middleware and the
        exit-stack middleware cost a third of a 304's CPU (``labkit bench``, poll endpoint).
        Errors are answered as FastAPI's HTTPException handler answers them."""
        try:
            response = await feed(Request(scope, receive))
        except HTTPException as exc:
            response = JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        await response(scope, receive, send)

    p.fast_routes[("GET", "/events")] = (feed, feed_asgi)

    async def one_event(request: Request) -> Response:
        raw = request.path_params["event_id"]
        ok = raw.isascii() and raw.isdigit() and len(raw) <= 19 and int(raw) <= MAX_CURSOR
        row = p.store.event(int(raw)) if ok else None
        if row is None:
            raise HTTPException(404, "event not found")
        return Response(event_json(row), media_type=JSON)

    # The poll route first: routes are matched in order and it is the hottest.
    async def snapshot(request: Request) -> Response:
        """The latest state as one resource (no log): a slow poller misses the versions in between."""
        p.counters["snapshot_polls"] += 1
        head = p.store.head(())
        etag = b'"v%d"' % head
        inm = _header(request.scope, b"if-none-match")
        if inm is not None and _etag_matches(inm, etag):
            return _Raw(304, b"", [(b"etag", etag), (b"x-poll-interval", poll_interval)])
        row = p.store.event(head) if head else None
        if row is None:
            body = b'{"version":0,"id":0,"state":null}'
        else:
            body = b'{"version":%d,"id":%d,"type":%s,"created_ns":%d,"state":%s}' % (row[0], row[0], orjson.dumps(row[1]), row[2], row[3])
        return _Raw(200, body, [(b"etag", etag), (b"x-poll-interval", poll_interval), *json_headers(body)])

    app.router.add_route("/snapshot", snapshot, methods=["GET"])
    app.router.add_route("/events", feed, methods=["GET"])
    app.router.add_route("/events", publish, methods=["POST"])
    app.router.add_route("/healthz", healthz, methods=["GET"])
    app.router.add_route("/events/{event_id}", one_event, methods=["GET"])
    app.router.add_route("/stream", sse_stream, methods=["GET"])
    app.router.add_websocket_route("/ws", ws_stream)

    # -- subscriptions ---------------------------------------------------------------------

    def _sub_or_404(sub_id: str) -> Any:
        sub = p.store.subscription(sub_id)
        if sub is None:
            raise HTTPException(404, "subscription not found")
        return sub

    @app.post("/subscriptions", status_code=201)
    async def create_subscription(request: Request) -> Response:
        body: SubscriptionIn = await p.read_model(request, SubscriptionIn)
        try:
            url = await asyncio.to_thread(check_callback_url, body.url, settings.allowed_callback_hosts)
        except ValueError as exc:
            raise HTTPException(422, f"url: {exc}") from None
        secret = _secret_or_new(body.secret)
        types = list(dict.fromkeys(body.event_types))
        sub = p.store.create_subscription(url, types, secret)
        p.dispatcher.wake()
        return _json(201, {**sub.public(), "secret": sub.secret})

    @app.get("/subscriptions")
    async def list_subscriptions() -> Response:
        return _json(200, {"data": [s.public() for s in p.store.subscriptions()]})

    @app.get("/subscriptions/{sub_id}")
    async def get_subscription(sub_id: str) -> Response:
        return _json(200, _sub_or_404(sub_id).public())

    @app.delete("/subscriptions/{sub_id}", status_code=204)
    async def delete_subscription(sub_id: str) -> Response:
        if not p.store.delete_subscription(sub_id):
            raise HTTPException(404, "subscription not found")
        p.dispatcher.wake()
        return Response(status_code=204)

    @app.post("/subscriptions/{sub_id}/rotate-secret")
    async def rotate_secret(sub_id: str, request: Request) -> Response:
        """A new secret, shown once; the old one keeps signing (a second signature) for ``overlap_s``."""
        _sub_or_404(sub_id)
        empty = request.headers.get("content-length") in (None, "0") and "transfer-encoding" not in request.headers
        body = RotateIn() if empty else await p.read_model(request, RotateIn)
        secret = _secret_or_new(body.secret)
        sub = p.store.rotate_secret(sub_id, secret, int(body.overlap_s * 1e9))
        if sub is None:  # deleted in between
            raise HTTPException(404, "subscription not found")
        p.dispatcher.wake()
        return _json(200, {**sub.public(), "secret": sub.secret})

    @app.post("/subscriptions/{sub_id}/replay", status_code=202)
    async def replay(sub_id: str, request: Request) -> Response:
        sub = _sub_or_404(sub_id)
        body: ReplayIn = await p.read_model(request, ReplayIn)
        if (body.since_ns is None) == (body.after is None):
            raise HTTPException(422, "give exactly one of since_ns or after")
        if sub.status != "active":
            raise HTTPException(409, f"subscription is {sub.status}; replay needs an active one")
        after = _cursor(body.after) if body.after is not None else None
        queued = p.store.replay(sub, since_ns=body.since_ns, after=after)
        p.dispatcher.wake()
        return _json(202, {"queued": queued})

    @app.get("/stats")
    async def stats() -> Response:
        return _json(
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

    for route in app.routes:
        endpoint, path = getattr(route, "endpoint", None), getattr(route, "path", None)
        if endpoint is not None and path is not None:
            p.paths[endpoint] = path
    return app


def _etag_matches(header: bytes, etag: bytes) -> bool:
    """If-None-Match uses weak comparison: ``W/"h5"`` matches ``"h5"``; ``*`` matches anything."""
    if header == etag:
        return True
    for tag in header.split(b","):
        tag = tag.strip()
        if tag == b"*" or tag.removeprefix(b"W/") == etag:
            return True
    return False


class _Raw(Response):
    """A response with ready-made raw headers: the poll path skips header normalisation."""

    def __init__(self, status: int, body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = status
        self.body = body
        self.background = None
        self.raw_headers = raw_headers


def json_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def _query(raw: bytes) -> dict[str, str]:
    """The query string as a dict (first value wins), without building a multidict."""
    if not raw:
        return {}
    text = raw.decode("latin-1")
    if "%" in text or "+" in text:
        return dict(reversed(parse_qsl(text, keep_blank_values=True)))
    out: dict[str, str] = {}
    for part in text.split("&"):
        key, _, value = part.partition("=")
        out.setdefault(key, value)
    return out
