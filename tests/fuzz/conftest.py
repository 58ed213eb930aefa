"""The fast subset (``-m "not slow"``) fuzzes with fewer inputs per property; see examples.py."""

from __future__ import annotations

import pytest
from _pytest.mark.expression import Expression

from tests.fuzz.examples import use_fast_subset


def pytest_configure(config: pytest.Config) -> None:
    """Fast when the mark expression deselects slow tests (``not slow``), full otherwise."""
    markexpr = config.option.markexpr or ""
    slow_selected = not markexpr or Expression.compile(markexpr).evaluate(lambda name, **_: name == "slow")
    use_fast_subset(not slow_selected)
