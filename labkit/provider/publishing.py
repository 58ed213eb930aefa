"""``POST /events``: append an event to the log and queue its webhooks, in one transaction.

The payload is stored as the exact bytes the publisher sent (``payloads``
says what is refused and why), so the webhook body, the feed and the
snapshot carry it unchanged.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from labkit.provider.bodies import read_json
from labkit.provider.payloads import member_spans, verbatim
from labkit.provider.protocol import JSON
from labkit.provider.routing import RouteSet
from labkit.provider.state import state_of

ENVELOPE = frozenset({"type", "payload", "consumer"})


def check_type(value: Any) -> str:
    if not isinstance(value, str):
        raise HTTPException(422, "type: must be a string")
    if not 1 <= len(value) <= 100:
        raise HTTPException(422, "type: must have 1 to 100 characters")
    if "," in value or not value.isprintable():
        raise HTTPException(422, "type: must be printable and contain no commas")
    return value


def check_consumer(value: Any) -> str | None:
    """The optional consumer an event belongs to (audience per-consumer): whose feed, streams and endpoints get it."""
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 100 or not value.isprintable():
        raise HTTPException(422, "consumer: must be a printable string of 1 to 100 characters")
    return value


def envelope(body: bytes, data: Any) -> tuple[str, bytes]:
    """The event type and the payload's bytes as received, from a body already parsed as ``data``."""
    if not isinstance(data, dict):
        raise HTTPException(422, "body must be a JSON object")
    unknown = sorted(set(data) - ENVELOPE)
    if unknown:
        raise HTTPException(422, f"{unknown[0]}: unknown field")
    for name in ("type", "payload"):
        if name not in data:
            raise HTTPException(422, f"{name}: field required")
    type_ = check_type(data["type"])
    if not isinstance(data["payload"], dict):
        raise HTTPException(422, "payload: must be a JSON object")
    text = body.decode("utf-8")  # orjson has accepted it, so it is UTF-8
    spans = member_spans(text)
    return type_, verbatim(body, text, spans["payload"])


async def publish(request: Request) -> Response:
    p = state_of(request)
    body, data = await read_json(request, p.settings)
    type_, payload = envelope(body, data)
    consumer = check_consumer(data.get("consumer"))
    event_id, created = p.store.publish(type_, payload, p.first_delay_ns, consumer)
    p.counters["published"] += 1
    p.notify(type_, consumer)
    p.hub.notify()
    p.dispatcher.wake()
    return Response(
        b'{"id":%d,"type":%s,"created_ns":%d}' % (event_id, orjson.dumps(type_), created),
        status_code=201,
        media_type=JSON,
    )


ROUTES = RouteSet(routes=(Route("/events", publish, methods=["POST"]),))
