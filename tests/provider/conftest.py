"""Fixtures for the provider tests; the helpers live in provider_helpers.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from tests.helpers.provider import Receiver, provider_settings, receivers, running


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
