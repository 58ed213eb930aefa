"""``GET /stream`` (Server-Sent Events) and ``WS /ws`` (WebSocket): the feed, pushed.

Both follow the same event log and cursor as ``GET /events``: a stream
starts after a cursor, catches up from the log, then receives each new event
as it is published (``labkit.provider.streams``). The endpoints are
module-level functions that find the hub and the provider on
``request.app.state``.

SSE: the API key comes as ``Authorization: Bearer`` (checked by the
provider's gate like every HTTP route); the cursor from ``Last-Event-ID``
(a reconnecting client's resume point, which wins) or ``?after=``; ``?types=``
filters as on the feed. Frames are built by FastAPI's own ``fastapi.sse``
encoder: ``event`` = type, ``data`` = the event as the feed shows it, ``id`` =
the cursor; the stream opens with a ``retry:`` field and sends a comment when
idle for ``heartbeat_s``. A stream dropped for backpressure ends with an
``event: error`` whose data names the reason and the id to resume after.

WebSocket: the gate does not see WebSocket scopes, so the key is checked
here, on the handshake: without a valid ``Authorization: Bearer`` header the
upgrade is refused with HTTP 401 and the reason (the ASGI
``websocket.http.response`` extension), so no WebSocket is ever opened for an
unauthenticated client. The first message is JSON
``{"after": N, "types": [...], "api_key": "..."}`` (all optional; a key given
there must be valid too); each event is one text message, the feed's JSON
(``id``, ``type``, ``created_ns``, ``payload``). Bad input closes with 1008
and the reason; a stream dropped for backpressure closes with 1013 (try
again later) and the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from fastapi import HTTPException, Request, WebSocket
from fastapi.sse import EventSourceResponse, format_sse_event
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from labkit.config import EVENT_STREAM, WS
from labkit.provider.gate import bearer_key
from labkit.provider.routing import FastRoute, RouteSet
from labkit.provider.state import ProviderState
from labkit.provider.streams import Encoded, Stream, StreamHub
from labkit.servers.serverlimits import ABORT

MAX_CURSOR = 2**63 - 1
MAX_FILTER_TYPES = 50
POLICY_VIOLATION, TRY_AGAIN_LATER = 1008, 1013
STREAM_HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}


class StreamInputError(ValueError):
    """A cursor or filter a stream cannot start from; the message names the field."""


def parse_cursor(value: str | int | None, name: str) -> int:
    """A cursor as the feed accepts it: a decimal event id from 0 to 2**63-1 ("" or None is 0)."""
    if value is None or value == "":
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or len(value) > 20 or not (value.isascii() and value.isdigit()) or int(value) > MAX_CURSOR:
        raise StreamInputError(f"{name}: cursor must be a decimal event id from 0 to {MAX_CURSOR}")
    return int(value)


def parse_types(values: list[str]) -> tuple[str, ...]:
    """The ``types`` filter as the feed reads it: distinct, trimmed, at most 50 of 1 to 100 characters."""
    types = tuple(dict.fromkeys(t.strip() for t in values if isinstance(t, str) and t.strip()))
    if len(types) > MAX_FILTER_TYPES or any(len(t) > 100 for t in types) or any(not isinstance(t, str) for t in values):
        raise StreamInputError(f"types: at most {MAX_FILTER_TYPES} types of 1 to 100 characters")
    return types


def _body(chunk: bytes) -> Message:
    return {"type": "http.response.body", "body": chunk, "more_body": True}


async def _no_body() -> AsyncIterator[bytes]:
    """The body iterator ``StreamingResponse`` wants; ``HubEventStream.stream_response`` writes instead."""
    return
    yield b""  # pragma: no cover - makes this an async generator


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def aborter(scope: Scope) -> Callable[[], object] | None:
    """The server's way to reset this connection now (``labkit.servers.serverlimits.ABORT``), if it offers one.

    Closing a transport politely waits until its buffered bytes are written, and
    a stalled reader never takes them: the connection, its socket and its file
    descriptor would stay open for good after the hub let the stream go.
    """
    ext = scope.get("extensions") or {}
    abort = (ext.get(ABORT) or {}).get("abort")
    return abort if callable(abort) else None


async def timed(s: Stream, step: Awaitable[None]) -> None:
    """Await one write, with ``s.since`` telling the hub's stall watcher since when it waits."""
    s.since = asyncio.get_running_loop().time()
    try:
        await step
    finally:
        s.since = 0.0


# -- Server-Sent Events ------------------------------------------------------------------


def send_now(send: Send, message: Message) -> bool:
    """Run ``send(message)`` to its end right here, unless it would have to wait; True when sent.

    The hub calls this for thousands of streams in one synchronous pass
    (``Stream.offer``), so the message goes out without waking the stream's
    writer task. uvicorn's HTTP ``send`` (and the middleware around
    it) waits, if at all, for a paused transport to drain *before* it writes
    anything; a send that would wait is therefore abandoned unsent (closing
    the coroutine cancels that wait) and the caller queues the event for the
    writer, which awaits the send properly.
    """
    step = send(message)
    try:
        step.send(None)  # type: ignore[attr-defined]
    except StopIteration:
        return True
    except Exception:  # noqa: BLE001 - the writer's own send will meet the same error and end the response
        return False
    step.close()  # type: ignore[attr-defined]
    return False


class HubEventStream(EventSourceResponse):
    """An SSE response fed by the hub; a dropped stream blocked on a stalled socket is cut off.

    Each write is one ``http.response.body`` message of frames built by
    ``fastapi.sse.format_sse_event`` (all frames queued since the last write
    go in one message). Once live, a parked writer lets the hub push events
    straight into ``send`` (``send_now``) and only wakes for heartbeats,
    drops and events a push could not hand over.
    """

    def __init__(self, hub: StreamHub, stream: Stream) -> None:
        self.hub = hub
        self.stream = stream
        self.abort: Callable[[], object] | None = None
        super().__init__(_no_body(), headers=STREAM_HEADERS)

    async def stream_response(self, send: Send) -> None:
        hub, s, limits = self.hub, self.stream, self.hub.limits
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await timed(s, send(_body(format_sse_event(comment="labkit stream", retry=limits.retry_ms))))
        while page := hub.catch_up(s):
            chunk = b"".join(e.sse for e in page)
            del page  # the frames live on only in the chunk the transport takes
            await timed(s, send(_body(chunk)))
            await asyncio.sleep(0)  # a send the kernel takes at once never yields: let the other streams and requests in
        s.push = lambda events: send_now(send, _body(events[0].sse if len(events) == 1 else b"".join([e.sse for e in events])))
        heartbeat = _body(format_sse_event(comment="heartbeat"))
        try:
            while True:
                chunk = b"".join(e.sse for e in s.take())
                if chunk:
                    await timed(s, send(_body(chunk)))
                    continue
                if s.dropped:
                    reason = orjson.dumps({"reason": s.dropped, "resume_after": s.cursor}).decode()
                    await send(_body(format_sse_event(event="error", data_str=reason)))
                    break
                if not await s.wait():
                    await timed(s, send(heartbeat))
        finally:
            s.push = None
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def listen_for_disconnect(self, receive: Receive) -> None:
        """Returns when the client leaves, or ``drop_grace_s`` after the hub dropped the stream.

        Returning cancels the writer: a writer that wrote the reason has already
        finished; one still blocked on a full socket is cut off here, and its
        connection is reset (``aborter``) rather than closed politely, so the
        socket and its file descriptor go with the stream.
        """
        loop = asyncio.get_running_loop()
        cut: asyncio.Future[None] = loop.create_future()
        grace = self.hub.limits.drop_grace_s
        self.stream.on_drop = lambda: loop.call_later(grace, _resolve, cut)
        if self.stream.dropped:
            _resolve(cut)

        async def client_left() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        left = loop.create_task(client_left())
        try:
            await asyncio.wait({left, cut}, return_when=asyncio.FIRST_COMPLETED)
            if not left.done() and self.abort is not None:
                self.abort()
                await asyncio.wait({left}, timeout=1.0)  # the server sees the connection lost, so the response is not "incomplete"
        finally:
            left.cancel()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.abort = aborter(scope)
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.hub.detach(self.stream)


def sse_response(hub: StreamHub, request: Request) -> Response:
    """The stream a ``GET /stream`` asks for, or an HTTPException naming what is wrong (see the module doc)."""
    try:
        after = parse_cursor(request.query_params.get("after"), "after")
        last = request.headers.get("last-event-id")
        if last:
            after = parse_cursor(last.strip(), "Last-Event-ID")
        raw = request.query_params.get("types")
        types = parse_types(raw.split(",")) if raw else ()
    except StreamInputError as exc:
        raise HTTPException(400, str(exc)) from None
    if request.scope.get("http_version") == "1.0":  # no chunked encoding, and nothing else ends an endless body
        raise HTTPException(505, "an event stream needs HTTP/1.1")
    head = hub.store.head()
    if after > head:
        raise HTTPException(409, cursor_ahead(after, head), headers={"x-log-head": str(head)})
    if hub.full():
        raise HTTPException(503, f"too many open streams (max_streams={hub.limits.max_streams})")
    consumer = None
    p: ProviderState = request.app.state.provider
    if p.scopes:  # a scoped key's stream: its consumer's (or its topics') events only
        types, consumer = p.audience_filter(bearer_key(request.scope), types)
    return HubEventStream(hub, hub.attach(EVENT_STREAM, after, types, consumer))


def cursor_ahead(after: int, head: int) -> str:
    """Why a cursor past the log's newest event is refused: following it would skip the next events published."""
    return f"cursor {after} is ahead of the log head {head} (a cursor from another provider or database?); resume from at most {head}"


async def sse_stream(request: Request) -> Response:
    """``GET /stream`` through the router (the middleware normally answers it first)."""
    return sse_response(request.app.state.hub, request)


async def sse_stream_asgi(p: ProviderState, scope: Scope, receive: Receive, send: Send) -> None:
    """``GET /stream`` straight from the middleware: each frame's ``send`` skips two exception wrappers.

    Errors are answered as the app's HTTPException handler does.
    """
    try:
        response = sse_response(p.hub, Request(scope, receive))
    except HTTPException as exc:
        response = JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    await response(scope, receive, send)


# -- WebSocket ---------------------------------------------------------------------------


def _bearer(websocket: WebSocket) -> str | None:
    value = websocket.headers.get("authorization")
    if value is None:
        return None
    scheme, _, key = value.partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


async def _first_message(websocket: WebSocket, timeout: float) -> dict[str, Any]:
    try:
        text = await asyncio.wait_for(websocket.receive_text(), timeout)
    except TimeoutError:
        raise StreamInputError(f"no cursor message within {timeout:g} s") from None
    except (KeyError, TypeError):  # a binary frame: receive_text reads message["text"]
        raise StreamInputError("the first message must be JSON text") from None
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise StreamInputError("the first message must be JSON text") from None
    if not isinstance(data, dict):
        raise StreamInputError("the first message must be a JSON object")
    unknown = sorted(set(data) - {"after", "types", "api_key"})
    if unknown:
        raise StreamInputError(f"{unknown[0]}: unknown field")
    return data


async def _until_closed(websocket: WebSocket) -> None:
    """Reads (and ignores) client messages until the client closes."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


def _ws_push(websocket: WebSocket) -> Callable[[list[Encoded]], bool]:
    """The hub's push for a WebSocket stream: one event as one message, sent now or not at all.

    uvicorn's WebSocket ``send`` also waits for a writable transport before it
    writes; several events would be several messages, and a push must send
    all or nothing, so those go to the writer.
    """

    def push(events: list[Encoded]) -> bool:
        return len(events) == 1 and send_now(websocket.send, {"type": "websocket.send", "text": events[0].json})

    return push


async def _ws_writer(websocket: WebSocket, hub: StreamHub, s: Stream) -> None:
    while page := hub.catch_up(s):
        for e in page:
            await timed(s, websocket.send_text(e.json))
        await asyncio.sleep(0)  # as for SSE: one stream's catch-up does not hold the loop
    s.push = _ws_push(websocket)
    try:
        while True:
            for e in s.take():
                await timed(s, websocket.send_text(e.json))
            if s.dropped:
                return
            await s.wait()  # a heartbeat is a no-op here: the server's own WebSocket pings keep an idle link alive
    finally:
        s.push = None


async def ws_stream(websocket: WebSocket) -> None:
    """``WS /ws``: the feed as WebSocket messages (see the module doc)."""
    hub: StreamHub = websocket.app.state.hub
    provider = websocket.app.state.provider
    header_key = _bearer(websocket)
    if not header_key or not provider.key_ok(header_key.encode()):
        provider.counters["unauthorized"] += 1
        await _deny(websocket, 401, "missing or invalid API key")
        return
    if hub.full():
        await _deny(websocket, 503, f"too many open streams (max_streams={hub.limits.max_streams})")
        return
    await websocket.accept()
    try:
        first = await _first_message(websocket, hub.limits.first_message_timeout_s)
        key = first.get("api_key")  # optional now that the handshake carries the key; when given, it must be one too
        if key is not None and (not isinstance(key, str) or not provider.key_ok(key.encode())):
            provider.counters["unauthorized"] += 1
            raise StreamInputError("missing or invalid API key")
        after = parse_cursor(first.get("after"), "after")
        types = first.get("types") or []
        if not isinstance(types, list):
            raise StreamInputError("types: must be a list of strings")
        types = parse_types(types)
        if after > hub.store.head():
            raise StreamInputError(cursor_ahead(after, hub.store.head()))
    except StreamInputError as exc:
        await websocket.close(POLICY_VIOLATION, str(exc)[:120])
        return
    except WebSocketDisconnect:
        return
    consumer = None
    if provider.scopes:  # the handshake's key sets the scope (a key in the first message only authenticates)
        types, consumer = provider.audience_filter(header_key.encode(), types)
    await _serve(websocket, hub, hub.attach(WS, after, types, consumer))


async def _serve(websocket: WebSocket, hub: StreamHub, s: Stream) -> None:
    """Write until the client leaves or the hub drops the stream; a dropped stream is closed, or reset.

    The close (1013 and the reason) goes out when the writer got through; the
    client then has ``drop_grace_s`` to answer it. A writer still blocked, or a
    client that does not answer, gets its connection reset (``aborter``): the
    server's own close would wait for ever to write into a full socket.
    """
    loop = asyncio.get_running_loop()
    cut: asyncio.Future[None] = loop.create_future()
    grace = hub.limits.drop_grace_s
    s.on_drop = lambda: loop.call_later(grace, _resolve, cut)
    closed = loop.create_task(_until_closed(websocket))
    writer = loop.create_task(_ws_writer(websocket, hub, s))
    try:
        await asyncio.wait({closed, writer, cut}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.detach(s)
        writer.cancel()
        with contextlib.suppress(BaseException):
            await writer
    if s.dropped and not closed.done():
        if not cut.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(websocket.close(TRY_AGAIN_LATER, s.dropped[:120]), grace or 0.1)
            await asyncio.wait({closed}, timeout=grace or 0.1)
        abort = aborter(websocket.scope)
        if not closed.done() and abort is not None:
            abort()
            await asyncio.wait({closed}, timeout=1.0)
    closed.cancel()
    with contextlib.suppress(BaseException):
        await closed


async def _deny(websocket: WebSocket, status: int, detail: str) -> None:
    """Refuse the handshake with an HTTP status and reason (or a bare close where unsupported)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse({"detail": detail}, status_code=status))
    else:  # pragma: no cover - uvicorn's websockets protocol supports the extension
        await websocket.close(POLICY_VIOLATION, detail)


ROUTES = RouteSet(
    routes=(Route("/stream", sse_stream, methods=["GET"]), WebSocketRoute("/ws", ws_stream)),
    fast=(FastRoute("GET", "/stream", sse_stream, sse_stream_asgi),),
)
