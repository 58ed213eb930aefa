"""``Retry-After`` (RFC 9110, section 10.2.3) read as a bounded number of seconds.

The header is either delta-seconds (``120``) or an HTTP-date
(``Wed, 21 Oct 2015 07:28:00 GMT``). Decimal seconds (``1.5``) are tolerated,
since servers send them; a negative number or a date in the past means "now"
(0). Anything else (``soon``, ``nan``, ``1e3``) is ignored: None.

One cap, ``MAX_RETRY_AFTER_S`` (one hour), for every labkit client that obeys
the header (poller fleet, dispatcher, Locust users). A server may ask for any
delay; a client that honours a day parks a poller or a delivery far beyond any
run labkit makes, so past one hour the request is treated as "one hour". For
the dispatcher the value is a floor under its own retry schedule, which still
applies beyond it.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from datetime import UTC

MAX_RETRY_AFTER_S = 3600.0

_SECONDS = re.compile(r"-?\d{1,30}(?:\.\d{1,30})?")


def parse_retry_after(value: str | bytes | None, now_s: float | None = None) -> float | None:
    """Seconds to wait, in [0, ``MAX_RETRY_AFTER_S``]; None when absent or unreadable.

    ``now_s`` (Unix seconds) is the clock an HTTP-date is measured against, the system clock by default.
    """
    if not value:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if _SECONDS.fullmatch(text):
        seconds = float(text)
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = when.timestamp() - (time.time() if now_s is None else now_s)
        except (TypeError, ValueError, IndexError, OverflowError, OSError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
