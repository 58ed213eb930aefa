"""Fixtures for the provider tests; the helpers live in provider_helpers.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from labkit.servers.procs import Child, ProcessGroup
from tests.helpers.provider import Receiver, provider_settings, receivers, running
from tests.helpers.streams import Lab


@pytest.fixture
def make_receiver() -> Iterator[Callable[..., Receiver]]:
    with receivers() as make:
        yield make


@pytest.fixture
def receiver(make_receiver: Callable[..., Receiver]) -> Receiver:
    return make_receiver()


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    async with running(provider_settings(tmp_path)) as pair:
        yield pair


@pytest.fixture(scope="module")
def refusing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Child]]:
    """One provider process shared by a module's refusal tests, stopped after the module.

    Each of those tests is refused before any stream exists (401, 400, a WebSocket closed
    1008), so none changes what the next one sees; counters are read as differences. A
    provider start costs about a second, and the refusals are many.
    """
    work = tmp_path_factory.mktemp("refusing")
    with ProcessGroup(work) as group:
        lab = Lab(group, work)
        yield lab, lab.provider()
