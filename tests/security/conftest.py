"""One provider and one receiver process shared by the security tests (see security_helpers)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.security import Lab, start_lab


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with start_lab(tmp_path_factory.mktemp("security-lab")) as running:
        yield running


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=15) as c:
        yield c
