"""HTTP details every provider endpoint shares: raw responses, the query string, cursors, ETags.

The polling routes build their bodies and headers as bytes because a
benchmark compares ``GET /events`` with a bare endpoint; these helpers keep
that path free of header normalisation and multidicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Scope, Send

JSON = "application/json"
MAX_CURSOR = 2**63 - 1
# The most event types a per-type cache of the provider holds: a publisher inventing types cannot grow one without end.
MAX_CACHED_TYPES = 10_000


class RawResponse(Response):
    """A response with ready-made raw headers: the poll path skips header normalisation."""

    def __init__(self, status: int, body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = status
        self.body = body
        self.background = None
        self.raw_headers = raw_headers


def json_response(status: int, content: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON, headers=headers)


def json_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]


async def send_raw(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    """Answer from middleware without building a Response (401 and 429 happen before routing)."""
    await send({"type": "http.response.start", "status": status, "headers": [*json_headers(body), *extra]})
    await send({"type": "http.response.body", "body": body})


def seconds(value: float) -> str:
    """A header value in seconds: ``1`` rather than ``1.0``, but ``0.5`` stays."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def header_value(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def parse_query(raw: bytes) -> dict[str, str]:
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


def parse_cursor(value: str | None, name: str = "after") -> int:
    """A feed cursor (an event id); 400 naming ``name`` for anything else."""
    if value is None or value == "":
        return 0
    if len(value) > 20 or not (value.isascii() and value.isdigit()) or int(value) > MAX_CURSOR:
        raise HTTPException(400, f"{name}: cursor must be a decimal event id from 0 to {MAX_CURSOR}")
    return int(value)


def etag_matches(header: bytes, etag: bytes) -> bool:
    """If-None-Match uses weak comparison: ``W/"h5"`` matches ``"h5"``; ``*`` matches anything."""
    if header == etag:
        return True
    for tag in header.split(b","):
        tag = tag.strip()
        if tag == b"*" or tag.removeprefix(b"W/") == etag:
            return True
    return False
