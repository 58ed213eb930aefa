"""The provider's shared state: one typed object on ``app.state.provider`` that every endpoint reads."""

from __future__ import annotations

import asyncio
import hmac
from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Any

from starlette.requests import HTTPConnection

from labkit.config import KeyScope, ProviderSettings
from labkit.provider.dispatcher import Dispatcher
from labkit.provider.protocol import seconds
from labkit.provider.ratelimit import RateLimiter
from labkit.provider.store import Store
from labkit.provider.streams import StreamHub
from labkit.wire.metering import WireCounter
from labkit.wire.signing import CONSUMER_KEY_PREFIX, consumer_of_key

ALL = "*"  # the long-poll channel of waiters that take every event
NO_TYPE = ""  # a type no event has (types have 1 to 100 characters): a filter that matches nothing


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
        # Scoped keys (audience per-consumer or topics): one per consumer, looked up, not compared one by one.
        self.scopes: dict[bytes, KeyScope] = {k.encode(): v for k, v in settings.key_scopes.items()}
        self._waiting: dict[Hashable, set[asyncio.Future[None]]] = {}

    # Long polling: a publish wakes the waiters of its channels only (every-event waiters, its type's,
    # its consumer's), so an event for one consumer does not wake the other consumers' polls.
    def notify(self, type_: str | None = None, consumer: str | None = None) -> None:
        """Wake the long polls an event of ``type_`` (for ``consumer``) concerns; without a type, every one."""
        waiting = self._waiting
        if not waiting:  # no long poll waits (a stream or webhook run): nothing to wake, per event of a batch too
            return
        if type_ is None:
            channels: list[Hashable] = list(waiting)
        else:
            channels = [ALL, ("t", type_)]
            if consumer is not None:
                channels.append(("c", consumer))
        for channel in channels:
            for fut in waiting.pop(channel, ()):
                if not fut.done():
                    fut.set_result(None)
                    self.counters["long_poll_wakeups"] += 1

    def waiting(self) -> bool:
        """True while a long poll waits for a publish."""
        return bool(self._waiting)

    async def wait_publish(self, timeout: float, types: Sequence[str] = (), consumer: str | None = None) -> bool:
        """Until an event that may concern this feed (of ``consumer``, or one of ``types``) is published; False on timeout."""
        channels: list[Hashable] = [("c", consumer)] if consumer is not None else [("t", t) for t in types] or [ALL]
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for channel in channels:
            self._waiting.setdefault(channel, set()).add(fut)
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            for channel in channels:
                waiters = self._waiting.get(channel)
                if waiters is not None:
                    waiters.discard(fut)
                    if not waiters:
                        del self._waiting[channel]

    def key_ok(self, given: bytes) -> bool:
        if given in self.scopes:
            return True
        secret = self.settings.consumer_key_secret
        if secret and given.startswith(CONSUMER_KEY_PREFIX.encode()):
            consumer = consumer_of_key(secret, given.decode("latin-1"))
            if consumer is not None:  # a derived consumer key: checked once, then looked up like a listed one
                self.scopes[given] = KeyScope(consumer=consumer)
                return True
            return False
        ok = False
        for key in self.keys:  # no early exit: time does not say which key was close
            ok |= hmac.compare_digest(key, given)
        return ok

    def audience_filter(self, key: bytes, types: tuple[str, ...]) -> tuple[tuple[str, ...], str | None]:
        """The types and the consumer a request with ``key`` may read: its scope, narrowed by its own ``types``."""
        scope = self.scopes.get(key)
        if scope is None:
            return types, None
        if scope.types:
            types = tuple(t for t in types if t in scope.types) if types else scope.types
            types = types or (NO_TYPE,)  # asked only for types outside its scope: nothing
        return types, scope.consumer


def state_of(conn: HTTPConnection) -> ProviderState:
    """The provider state of the app serving ``conn`` (a request or a WebSocket)."""
    state: ProviderState = conn.app.state.provider
    return state
