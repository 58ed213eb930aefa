"""How many inputs each property-based test tries: all of them in the full suite, fewer in the fast subset.

The root conftest (tests/conftest.py) chooses when the run starts: fast when the mark
expression deselects the slow tests (``-m "not slow"``). The fast subset tries the first
``FAST_EXAMPLES`` of the same derandomized or seeded stream, so the edit-test loop still
exercises every property; the full suite (``.ci/run``) tries them all.
"""

from __future__ import annotations

FULL_EXAMPLES = 300
FAST_EXAMPLES = 60
_fast = False


def fuzz_examples() -> int:
    return FAST_EXAMPLES if _fast else FULL_EXAMPLES


def use_fast_subset(fast: bool) -> None:
    global _fast
    _fast = fast
