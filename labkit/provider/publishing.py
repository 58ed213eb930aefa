"""``POST /events``: append an event to the log and queue its webhooks, in one transaction.

``POST /events/batch`` (``{"events": [...]}``, up to ``BATCH_MAX_EVENTS``)
appends many in one request and one transaction, each read and routed as if
published alone: what a provider producing events at a high rate (each
merchant's payments, say) sends, so that a request's cost is not paid per
event.

The payload is stored as the exact bytes the publisher sent (``payloads``
says what is refused and why), so the webhook body, the feed and the
snapshot carry it unchanged.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from labkit.provider.bodies import parse_json, read_body, read_json
from labkit.provider.payloads import element_spans, member_spans, verbatim
from labkit.provider.protocol import JSON, MAX_CACHED_TYPES
from labkit.provider.routing import RouteSet
from labkit.provider.state import state_of

ENVELOPE = frozenset({"type", "payload", "consumer"})
Spans = dict[str, tuple[int, int]]
_TYPES_SEEN: set[str] = set()
BATCH_MAX_EVENTS = 1000  # events of one POST /events/batch (its body is bounded by max_body_bytes too)


def check_type(value: Any) -> str:
    if type(value) is str and value in _TYPES_SEEN:  # a type already accepted (a batch repeats a few types many times)
        return value
    if not isinstance(value, str):
        raise HTTPException(422, "type: must be a string")
    if not 1 <= len(value) <= 100:
        raise HTTPException(422, "type: must have 1 to 100 characters")
    if "," in value or not value.isprintable():
        raise HTTPException(422, "type: must be printable and contain no commas")
    if len(_TYPES_SEEN) < MAX_CACHED_TYPES:  # bounded: a publisher inventing types cannot grow it without end
        _TYPES_SEEN.add(value)
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
    text = body.decode("utf-8")  # orjson has accepted it, so it is UTF-8
    type_, payload, _ = event_of(body, text, data, lambda: member_spans(text))
    return type_, payload


def event_of(body: bytes, text: str, data: dict[str, Any], spans: Callable[[], Spans]) -> tuple[str, bytes, str | None]:
    """One event's (type, payload bytes as received, consumer) from its object ``data``; ``spans`` finds its members in ``text``.

    The spans are asked for after the fields are checked, so a body that is
    wrong in several ways is refused for the same first reason as before.
    """
    return fields(data, lambda: verbatim(body, text, spans()["payload"]))


def fields(data: dict[str, Any], payload: Callable[[], bytes]) -> tuple[str, bytes, str | None]:
    """(type, payload bytes, consumer) of one event object, each checked; ``payload`` is asked for last."""
    if not data.keys() <= ENVELOPE:
        raise HTTPException(422, f"{min(k for k in data if k not in ENVELOPE)}: unknown field")
    for name in ("type", "payload"):
        if name not in data:
            raise HTTPException(422, f"{name}: field required")
    type_ = check_type(data["type"])
    if not isinstance(data["payload"], dict):
        raise HTTPException(422, "payload: must be a JSON object")
    return type_, payload(), check_consumer(data.get("consumer"))


async def publish(request: Request) -> Response:
    p = state_of(request)
    body, data = await read_json(request, p.settings)
    if not isinstance(data, dict):
        raise HTTPException(422, "body must be a JSON object")
    text = body.decode("utf-8")  # orjson has accepted it, so it is UTF-8
    type_, payload, consumer = event_of(body, text, data, lambda: member_spans(text))
    event_id, created = p.store.publish(type_, payload, p.first_delay_ns, consumer)
    p.counters["published"] += 1
    p.notify(type_, consumer)
    p.hub.notify((((event_id, type_, created, payload), consumer),))
    p.dispatcher.wake()
    return Response(
        b'{"id":%d,"type":%s,"created_ns":%d}' % (event_id, orjson.dumps(type_), created),
        status_code=201,
        media_type=JSON,
    )


@contextlib.contextmanager
def no_collection() -> Iterator[None]:
    """No cyclic garbage collection while a batch is taken in (one synchronous step, no await inside).

    Every object of a batch (its parsed events, rows, encoded frames) lives
    until the step ends, and none is part of a cycle: a collection in the
    middle would free nothing and promote them all to the older generations,
    whose growth then sets off a full collection of everything the process
    holds (83 ms of CPU with 1,000 streams open, measured). The caller drops
    them before the step ends, so they die by their reference counts: the
    collection that the batch's allocations have made due as soon as
    collections resume walks what still lives (the frames queued for the
    streams), not every row and event of the batch as well (0.5 us per event
    with them against 0.25 without, measured in the provider).
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def batch_events(body: bytes, data: Any) -> list[tuple[str, bytes, str | None]]:
    """The events of a batch body ``{"events": [...]}``, each read as ``POST /events`` reads one; 422 names the first wrong one."""
    if not isinstance(data, dict) or set(data) != {"events"}:
        raise HTTPException(422, "body must be a JSON object with one member, events")
    items = data["events"]
    if not isinstance(items, list) or not 1 <= len(items) <= BATCH_MAX_EVENTS:
        raise HTTPException(422, f"events: must be an array of 1 to {BATCH_MAX_EVENTS} events")
    if orjson.dumps(data) == body:
        # The body is exactly its own compact serialisation, so each payload's bytes as sent are its
        # serialisation: verbatim without finding where each lies (a duplicate key, an escape, a
        # space or a float written otherwise makes the body differ and takes the scan below).
        out = plain_events(items, 0)
        while len(out) < len(items):  # the event that needs a closer look, then the plain ones after it
            out.append(_checked(len(out), items[len(out)], lambda _, it: orjson.dumps(it["payload"])))
            out += plain_events(items, len(out))
        return out
    text = body.decode("utf-8")
    spans = element_spans(text, member_spans(text)["events"], "events")
    return [_checked(i, item, lambda j, _: verbatim(body, text, spans[j]["payload"])) for i, item in enumerate(items)]


def plain_events(items: list[Any], start: int) -> list[tuple[str, bytes, str | None]]:
    """The events of a batch from ``start`` on that are plainly right, read in one loop; the first that needs a closer look ends it.

    What ``fields`` accepts, checked inline (a function call per check costs
    as much as the check): an object of ``type`` and ``payload`` and perhaps
    ``consumer``, a type already accepted, an object payload (its bytes as
    sent are its serialisation: the caller has seen the body is exactly
    that), a consumer that is a printable string of 1 to 100 characters, or
    null. Whatever is not (a new type, anything wrong) is left to ``_checked``,
    which accepts it or names what is wrong exactly as before.
    """
    out: list[tuple[str, bytes, str | None]] = []
    append, dumps, seen = out.append, orjson.dumps, _TYPES_SEEN
    for item in itertools.islice(items, start, None):
        if type(item) is not dict:
            break
        t, p, c = item.get("type"), item.get("payload"), item.get("consumer")
        n = len(item)
        if not (type(t) is str and t in seen and type(p) is dict and (n == 2 or (n == 3 and "consumer" in item))):
            break
        if c is not None and not (type(c) is str and 0 < len(c) <= 100 and c.isprintable()):
            break
        append((t, dumps(p), c))
    return out


def _checked(i: int, item: Any, payload: Callable[[int, dict[str, Any]], bytes]) -> tuple[str, bytes, str | None]:
    """Event ``i`` of a batch, read as ``POST /events`` reads one; ``payload(i, item)`` gives its bytes as sent once it is checked."""
    if not isinstance(item, dict):
        raise HTTPException(422, f"events[{i}]: must be a JSON object")
    try:
        return fields(item, lambda: payload(i, item))
    except HTTPException as exc:
        raise HTTPException(exc.status_code, f"events[{i}].{exc.detail}") from None


async def publish_batch(request: Request) -> Response:
    """Many events in one request and one transaction: what a provider that produces events at a high rate sends.

    Each event is read, stored, routed (feeds, long polls, streams, webhook
    subscriptions) exactly as if it had been published alone, in the batch's
    order; the batch is all or nothing.
    """
    p = state_of(request)
    body = await read_body(request, p.settings.max_body_bytes)
    with no_collection():
        events = batch_events(body, parse_json(body, p.settings.max_json_depth))
        rows = p.store.publish_many(events, p.first_delay_ns)
        p.counters["published"] += len(rows)
        p.counters["published_batches"] += 1
        if p.waiting():
            for (_, type_, _, _), consumer in rows:
                p.notify(type_, consumer)
        p.hub.notify(rows)
        (first, _, created, _), _ = rows[0]
        ids = ",".join(map(str, range(first, first + len(rows)))).encode()  # the ids are consecutive (Store.publish_many)
        del events, rows  # freed by their reference counts now: the collection that follows would walk every one
    p.dispatcher.wake()
    return Response(b'{"ids":[%s],"created_ns":%d}' % (ids, created), status_code=201, media_type=JSON)


ROUTES = RouteSet(routes=(Route("/events", publish, methods=["POST"]), Route("/events/batch", publish_batch, methods=["POST"])))
