"""The subscriptions a fan-out test needs: S of them, one receiver, found again on re-runs.

Subscriber ``i`` is ``fanout-<i>``: its callback is ``<receiver>/webhook/fanout-<i>``,
so the receiver records its deliveries under that consumer name. Setting up is
idempotent: subscriptions with the same callback are replaced (the secret may
have changed since), so a second run against the same provider does not
double the fan-out.

Plain ``urllib``: this runs inside Locust, where gevent's monkey-patching
rules out httpx (its httpcore imports trio, which needs ``select.epoll``).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from labkit.errors import RunError

PREFIX = "fanout"


def subscriber_names(count: int, prefix: str = PREFIX) -> tuple[str, ...]:
    return tuple(f"{prefix}-{i}" for i in range(count))


def _call(base: str, method: str, path: str, api_key: str, body: Any = None, timeout_s: float = 10.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{base.rstrip('/')}{path}", data=data, method=method)
    req.add_header("authorization", f"Bearer {api_key}")
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", "")
        except ValueError:
            detail = ""
        raise RunError(f"provider refused {method} {path}: HTTP {exc.code} {detail}".rstrip()) from None
    except (urllib.error.URLError, OSError) as exc:
        raise RunError(f"could not reach the provider at {base}: {exc}") from None
    return json.loads(raw) if raw else None


def ensure_subscriptions(
    provider_url: str,
    receiver_url: str,
    secret: str,
    count: int,
    *,
    api_key: str = "lab-key",
    prefix: str = PREFIX,
) -> tuple[str, ...]:
    """Make sure exactly ``count`` subscriptions ``<prefix>-<i>`` call the receiver; returns their names."""
    names = subscriber_names(count, prefix)
    wanted = [f"{receiver_url.rstrip('/')}/webhook/{n}" for n in names]
    listing = _call(provider_url, "GET", "/subscriptions", api_key) or {}
    for sub in listing.get("data", []):
        if sub.get("url") in wanted:
            _call(provider_url, "DELETE", f"/subscriptions/{sub['id']}", api_key)
    for url in wanted:
        _call(provider_url, "POST", "/subscriptions", api_key, {"url": url, "secret": secret})
    return names
