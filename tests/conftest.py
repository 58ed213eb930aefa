"""Fixtures every test folder may use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit.servers.procs import ProcessGroup
from tests.helpers.streams import Lab


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """Provider processes in the test's own directory, all stopped at the end (tests/security overrides it with its shared lab)."""
    with ProcessGroup(tmp_path) as group:
        yield Lab(group, tmp_path)
