"""Payload fidelity: what a publisher sends is what every consumer gets, byte for byte.

A published payload is stored as the exact bytes of the ``payload`` member of
the request body and spliced, never re-encoded, into the webhook body, the
feed page, the single-event read and the snapshot. Parsing and re-encoding
would change it: orjson reads an integer beyond 64 bits as a float (2**70
became ``1.1805916207174113e+21``), and any encoder may rewrite ``1.0``, an
escape such as ``\\u00e9`` or the spacing.

What is refused, and why:

- A body that is not JSON: 400, as before.
- A number beyond the range of a double (``1e400``) or a string holding an
  unpaired UTF-16 surrogate escape (``"\\ud800"``): 422 naming the field.
  RFC 8259 allows both, but the common parsers (orjson in the lab's own
  consumers, Go's encoding/json) fail on the whole document, so carrying one
  would break every poller at that cursor and dead-letter every webhook.
  RFC 7493 (I-JSON) excludes both. Integers beyond 2**53 or 2**64 are carried
  exactly: they parse everywhere, and a consumer with a big-number parser
  reads them exactly from the bytes.
- Duplicate keys: inside the payload they are kept verbatim. The payload is
  the publisher's document, not the provider's; the provider never
  interprets it, RFC 8259 leaves duplicate names to the receiver, and the
  mainstream parsers accept them (last one wins). Refusing would turn away
  documents that parse everywhere, and finding them would cost a
  second, slower parse of every payload. In the envelope (``type``,
  ``payload``), which the provider does read, a duplicate member is refused
  with a 422: which payload to carry would be a guess.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from json import scanner
from typing import Any

from starlette.exceptions import HTTPException

_WS = re.compile(r"[ \t\n\r]*")
_BLANK = " \t\n\r"
# The C scanners behind json.loads: a value from an index, and a string after its opening quote.
_scan_value: Callable[[str, int], tuple[Any, int]] = scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
_scan_string: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


def member_spans(text: str) -> dict[str, tuple[int, int]]:
    """Where each member's value of the top-level object lies in ``text`` (already valid JSON).

    A key given twice is a 422 naming it.
    """
    return _members(text, _skip(text, 0))[0]


def element_spans(text: str, span: tuple[int, int], name: str) -> list[dict[str, tuple[int, int]]]:
    """``member_spans`` of each object in the array at ``span`` of ``text`` (already valid JSON).

    An element that is not an object is a 422 naming it (``name[i]``): a batch's
    events are read by the same rules as one event's body.
    """
    out: list[dict[str, tuple[int, int]]] = []
    idx = _skip(text, span[0] + 1)  # past "["
    try:
        while text[idx] != "]":
            if text[idx] != "{":
                raise HTTPException(422, f"{name}[{len(out)}]: must be a JSON object")
            spans, idx = _members(text, idx)
            out.append(spans)
            idx = _skip(text, idx)
            if text[idx] == ",":
                idx = _skip(text, idx + 1)
    except IndexError:  # cannot happen after orjson accepted the body
        raise HTTPException(400, "body is not valid JSON") from None
    return out


def _members(text: str, start: int) -> tuple[dict[str, tuple[int, int]], int]:
    """The member spans of the object opening at ``start``, and the index just past its closing brace."""
    spans: dict[str, tuple[int, int]] = {}
    idx = _skip(text, start + 1)  # past "{"
    try:
        while text[idx] == '"':
            key, idx = _scan_string(text, idx + 1)
            idx = _skip(text, _skip(text, idx) + 1)  # past ":"
            _, end = _scan_value(text, idx)
            if key in spans:
                raise HTTPException(422, f"{key}: duplicate key")
            spans[key] = (idx, end)
            idx = _skip(text, end)
            if text[idx] != ",":
                break
            idx = _skip(text, idx + 1)
    except (StopIteration, ValueError, IndexError, RecursionError):  # cannot happen after orjson accepted the body
        raise HTTPException(400, "body is not valid JSON") from None
    return spans, idx + 1  # idx is at "}"


def verbatim(body: bytes, text: str, span: tuple[int, int]) -> bytes:
    """The bytes of ``text[span]`` as they were in ``body`` (text is body decoded as UTF-8)."""
    start, end = span
    if len(text) == len(body):  # all ASCII: offsets agree
        return body[start:end]
    return text[start:end].encode("utf-8")  # UTF-8 decodes and encodes back to the same bytes


def _skip(text: str, idx: int) -> int:
    if idx < len(text) and text[idx] not in _BLANK:  # compact JSON: no regex call (a batch makes 14 per event)
        return idx
    return _WS.match(text, idx).end()  # type: ignore[union-attr]


# -- why a body orjson refused cannot be carried ------------------------------------------


class _Members(list):  # type: ignore[type-arg]
    """An object's members in order, duplicates kept."""


class _Number(str):
    """A number's text as sent."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_LENIENT = json.JSONDecoder(object_pairs_hook=_Members, parse_float=_Number, parse_int=_Number, parse_constant=_no_constant)


def refusal(body: bytes) -> str | None:
    """``field: problem`` for JSON (RFC 8259) that the provider refuses to carry; None when it is not JSON at all."""
    try:
        value = _LENIENT.decode(body.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _Members):
            for key, child in reversed(node):
                problem = _string_problem(key)
                if problem:
                    return f"{path or 'body'}: key {problem}"
                stack.append((child, f"{path}.{key}" if path else key))
        elif isinstance(node, list):
            stack.extend((child, f"{path}[{i}]") for i, child in reversed(list(enumerate(node))))
        elif isinstance(node, _Number):
            if abs(float(node)) == float("inf"):
                return f"{path or 'body'}: number {node[:40]} is beyond the range of a double; send it as a string"
        elif isinstance(node, str):
            problem = _string_problem(node)
            if problem:
                return f"{path or 'body'}: string {problem}"
    return None


def _string_problem(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "has an unpaired UTF-16 surrogate escape"
    return None
