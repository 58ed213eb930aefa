"""Reading request bodies: content type, size limits on the header and the stream, JSON, depth, models.

Every refusal is a 4xx whose detail names the problem; nothing here writes.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request

from labkit.config import ProviderSettings
from labkit.provider.payloads import refusal
from labkit.provider.protocol import JSON

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # a JSON string, escapes included (the body is valid JSON)
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'{}[]"\\')  # all but what depth depends on: brackets, quotes, escapes
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"{}[]")
_ONE_KIND = bytes.maketrans(b"[]", b"{}")  # the body is valid JSON: outside strings, brackets pair up whatever their kind


def one_line(exc: ValidationError) -> str:
    """The first error as ``field: problem``."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header"))
    msg = "unknown field" if err.get("type") == "extra_forbidden" else str(err.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


def json_depth_exceeds(body: bytes, data: Any, limit: int) -> bool:
    """True when ``data`` (parsed from ``body``) nests deeper than ``limit``.

    Everything here is C-speed: a walk of every container (a batch of events
    holds thousands) would cost a Python step each. The brackets outside
    strings are kept (the body with nothing but brackets and quotes in it is a
    few percent of its size; with no backslash in the body every other piece
    between quotes is outside); their number bounds the depth from above.
    Past that bound they are peeled, innermost pairs first, one level per
    pass: ``bytes.replace`` does not match what its own pass uncovers, and
    with one kind of bracket a pass is one ``replace``.
    """
    kept = body.translate(None, _NOT_STRUCTURE)
    if b"\\" in kept:  # an escape in a string: find the strings in the body itself
        brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKET)
    else:
        # a string with no bracket in it is now two quotes side by side: without them, every other piece is still outside
        kept = kept.replace(b'""', b"")
        brackets = b"".join(kept.split(b'"')[::2]) if b'"' in kept else kept
    if len(brackets) // 2 <= limit:  # as many opening brackets as closing ones
        return False
    brackets = brackets.translate(_ONE_KIND)
    for _ in range(limit):
        brackets = brackets.replace(b"{}", b"")
        if not brackets:
            return False
    return True


async def read_body(request: Request, limit: int) -> bytes:
    """The raw JSON body, enforcing the content type and ``limit`` on the header and the stream."""
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
    return bytes(buf)


def parse_json(body: bytes, max_depth: int) -> Any:
    """The body as JSON: 400 when it is not JSON or nests too deep, 422 naming a value it cannot carry."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        problem = refusal(body)
        if problem is not None:
            raise HTTPException(422, problem) from None
        raise HTTPException(400, "body is not valid JSON") from None
    if json_depth_exceeds(body, data, max_depth):
        raise HTTPException(400, f"body nests deeper than max_json_depth={max_depth}")
    return data


async def read_json(request: Request, settings: ProviderSettings) -> tuple[bytes, Any]:
    """The raw body and its JSON value, checked against the provider's limits."""
    body = await read_body(request, settings.max_body_bytes)
    return body, parse_json(body, settings.max_json_depth)


async def read_model(request: Request, settings: ProviderSettings, model: type[BaseModel]) -> Any:
    """The body validated as ``model``; 422 names the first field that is wrong."""
    _, data = await read_json(request, settings)
    if not isinstance(data, dict):
        raise HTTPException(422, "body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise HTTPException(422, one_line(exc)) from None
