"""What the stream benchmarks share: a stream consumer fleet's counters, and waiting until they say something.

A fleet (``labkit.consumers.streams``) writes its counters to a stats file
from its own process; a benchmark reads them to know when its streams are
connected and when a burst's frames are in. ``sse_fanout`` and
``per_consumer_fanout`` wait the same way: until a predicate on the counters
holds, the fleet still alive, within a deadline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labkit.errors import RunError
from labkit.servers.procs import Child

Counters = dict[str, Any]


def read_counters(path: Path) -> Counters:
    """The fleet's counters from its stats file; {} while it is not written yet (or caught mid-replace)."""
    for _ in range(20):
        try:
            return dict(json.loads(path.read_text())["counters"])
        except (OSError, ValueError, KeyError):
            time.sleep(0.02)
    return {}


def wait_counters(case: str, child: Child, path: Path, done: Callable[[Counters], bool], what: str, timeout_s: float) -> Counters:
    """The counters once ``done`` holds for them; a RunError naming ``case`` if ``child`` exits or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        c = read_counters(path)
        if c and done(c):
            return c
        if not child.alive():
            raise RunError(f"{case}: {child.name} exited: {child.log_tail()}")
        if time.monotonic() > deadline:
            raise RunError(f"{case}: {what} within {timeout_s:.0f} s")
        time.sleep(0.05)


def all_connected(streams: int) -> Callable[[Counters], bool]:
    """The predicate of a fleet whose ``streams`` streams are open, each connected once."""
    return lambda c: c.get("connected") == streams and c.get("connects") == streams
