"""Per-API-key token buckets, the way public APIs meter pollers.

Each key earns ``rate_per_s`` tokens a second up to ``burst``; a request
spends one. A refused request learns how long until a token is there, which
becomes ``Retry-After``. ``refund`` gives a token back, so a 304 costs
nothing (GitHub does not charge conditional requests that hit). ``per_key``
gives chosen keys their own (rate, burst): a rate of 0 exempts that key.

The default burst is one second's worth of the rate (``default_burst``): a
fixed burst of 400 let ``--rate-limit 5`` throttle nothing for the first 400
requests, so the limit did not limit; a second's worth still lets a client
that polls at exactly the rate (or catches up after a pause) through.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping


def default_burst(rate_per_s: float) -> int:
    """One second's worth of tokens, at least one: the limit bites after a second of excess, not after 400 requests."""
    return max(1, math.ceil(rate_per_s))


class RateLimiter:
    """Token buckets keyed by API key; a rate of 0 lets everything through."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        per_key: Mapping[str, tuple[float, int]] | None = None,
    ) -> None:
        if burst is None:
            burst = default_burst(rate_per_s)
        if rate_per_s < 0 or burst < 1:
            raise ValueError("rate_per_s must be >= 0 and burst >= 1")
        for rate, b in (per_key or {}).values():
            if rate < 0 or b < 1:
                raise ValueError("per-key rate must be >= 0 and burst >= 1")
        self.rate = float(rate_per_s)
        self.burst = float(burst)
        self._clock = clock
        self._per_key = {k: (float(r), float(b)) for k, (r, b) in (per_key or {}).items()}
        # key -> [tokens, last refill time, rate, burst]; lists are mutated in place to stay cheap.
        self._buckets: dict[str, list[float]] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0 or any(r > 0 for r, _ in self._per_key.values())

    def _refill(self, key: str) -> list[float]:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            rate, burst = self._per_key.get(key, (self.rate, self.burst))
            bucket = self._buckets[key] = [burst, now, rate, burst]
            return bucket
        bucket[0] = min(bucket[3], bucket[0] + (now - bucket[1]) * bucket[2])
        bucket[1] = now
        return bucket

    def take(self, key: str) -> float | None:
        """Spend a token: None when allowed, else the seconds until one is available."""
        if self.rate <= 0 and not self._per_key:
            return None
        bucket = self._refill(key)
        if bucket[2] <= 0:
            return None
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return None
        return (1.0 - bucket[0]) / bucket[2]

    def refund(self, key: str) -> None:
        """Give back the token of a request that should not count (a 304)."""
        if self.rate <= 0 and not self._per_key:
            return
        bucket = self._refill(key)
        bucket[0] = min(bucket[3], bucket[0] + 1.0)
