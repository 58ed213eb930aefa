"""JSON that is JSON: no ``NaN``, ``Infinity`` or ``-Infinity`` in anything labkit writes.

Python's ``json`` writes a non-finite float as ``NaN`` or ``Infinity``, which
is not JSON (RFC 8259): a strict reader (``jq``, a browser's ``JSON.parse``,
Go, Rust) refuses the whole file. ``finite`` turns every non-finite float
(numpy's too) into ``null``, "no value", which is what such a number means
in a summary; ``dumps`` then writes with ``allow_nan=False``, so a value that
slipped past is an error here rather than a broken file for the reader.
(orjson, used on the wire, writes ``null`` for them by itself.)
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity (in dicts, lists, tuples, numpy scalars) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if hasattr(value, "item") and hasattr(value, "dtype"):  # a numpy scalar
        return finite(value.item())
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of ``finite(value)``, refusing what is still not finite (``allow_nan=False``)."""
    default = kwargs.pop("default", None)

    def safe_default(obj: Any) -> Any:
        if default is None:
            raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")
        return finite(default(obj))

    return json.dumps(finite(value), allow_nan=False, default=safe_default, **kwargs)
