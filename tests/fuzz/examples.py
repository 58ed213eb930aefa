"""How many inputs each property tries: all of them in the full suite, fewer in the fast subset."""

from __future__ import annotations

FULL_EXAMPLES = 300
FAST_EXAMPLES = 60
_fast = False


def fuzz_examples() -> int:
    return FAST_EXAMPLES if _fast else FULL_EXAMPLES


def use_fast_subset(fast: bool) -> None:
    global _fast
    _fast = fast
