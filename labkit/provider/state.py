"""The provider's shared state: one typed object on ``app.state.provider`` that every endpoint reads."""

from __future__ import annotations

import asyncio
import hmac
from collections import defaultdict
from typing import Any

from starlette.requests import HTTPConnection

from labkit.config import ProviderSettings
from labkit.provider.dispatcher import Dispatcher
from labkit.provider.protocol import seconds
from labkit.provider.ratelimit import RateLimiter
from labkit.provider.store import Store
from labkit.provider.streams import StreamHub
from labkit.wire.metering import WireCounter


class ProviderState:
    """Everything one provider app holds; built by ``create_app``, its store and dispatcher opened by the lifespan."""

    store: Store
    dispatcher: Dispatcher
    hub: StreamHub

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self.keys = tuple(k.encode() for k in settings.api_keys)
        self.limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst, per_key=settings.key_rate_limits)
        self.poll_interval = seconds(settings.poll_interval_hint_s).encode()  # the X-Poll-Interval header value
        self.first_delay_ns = int(settings.retry_schedule_s[0] * settings.time_scale * 1e9)
        self.counters: dict[str, int] = defaultdict(int)
        self.paths: dict[Any, str] = {}  # endpoint -> route path, for request counts
        self.requests: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.wire = WireCounter()
        self._published = asyncio.Event()

    # Long polling: each publish sets the current event and replaces it, waking all waiters once.
    def notify(self) -> None:
        self._published.set()
        self._published = asyncio.Event()

    async def wait_publish(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._published.wait(), timeout)
            return True
        except TimeoutError:
            return False

    def key_ok(self, given: bytes) -> bool:
        ok = False
        for key in self.keys:  # no early exit: time does not say which key was close
            ok |= hmac.compare_digest(key, given)
        return ok


def state_of(conn: HTTPConnection) -> ProviderState:
    """The provider state of the app serving ``conn`` (a request or a WebSocket)."""
    state: ProviderState = conn.app.state.provider
    return state
