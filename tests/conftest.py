"""Fixtures every test folder may use, and the calibration every test runs with.

Every test runs with a fixed, injected calibration (``LABKIT_CALIBRATION``): no
test measures this machine first. Child processes (the CLI run as a subprocess)
inherit the variable. A test that needs another calibration, or none, sets the
variable itself (``monkeypatch``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pytest.mark.expression import Expression

from labkit.servers.procs import ProcessGroup
from tests.helpers.examples import use_fast_subset
from tests.helpers.streams import Lab

FIXTURE_CALIBRATION = Path(__file__).parent / "fixtures" / "calibration.json"
os.environ.setdefault("LABKIT_CALIBRATION", str(FIXTURE_CALIBRATION))


def pytest_configure(config: pytest.Config) -> None:
    """Property tests try fewer inputs when the mark expression deselects slow tests (``not slow``); see helpers/examples.py."""
    markexpr = config.option.markexpr or ""
    slow_selected = not markexpr or Expression.compile(markexpr).evaluate(lambda name, **_: name == "slow")
    use_fast_subset(not slow_selected)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """Provider processes in the test's own directory, all stopped at the end (tests/security overrides it with its shared lab)."""
    with ProcessGroup(tmp_path) as group:
        yield Lab(group, tmp_path)
