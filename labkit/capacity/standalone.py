"""A capacity scenario's server on its own, for Locust workers on other hosts or in containers.

``labkit capacity`` starts its servers itself, on loopback. When the load
comes from other machines (docker compose, Kubernetes), the provider and the
receiver run as services of their own: ``labkit capacity-server provider``
serves with the settings a capacity run gives it (no rate limit, the retry
schedule compressed, callbacks allowed to the named hosts);
``labkit capacity-server receiver`` takes its
secret from ``LABKIT_SECRET``, never from the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labkit.capacity.settings import StandaloneServerSettings, parse_host_port


def server_settings(settings: StandaloneServerSettings) -> dict[str, Any]:
    """The server's own settings mapping, as ``labkit capacity`` would give it."""
    if settings.role == "receiver":
        return {"secrets": [settings.secret], "db_path": settings.db_path}
    return {
        "db_path": settings.db_path,
        "rate_limit_per_s": 0,  # a capacity run measures the server, not its rate limiter
        "poll_interval_hint_s": settings.interval_s,
        "allowed_callback_hosts": list(settings.allowed_callback_hosts),
        "time_scale": 0.001,
    }


def serve_standalone(settings: StandaloneServerSettings, progress: Callable[[str], None] = lambda _: None) -> None:
    """Serve in the foreground until Ctrl-C or SIGTERM."""
    from labkit.lab.serving import build_app, serve_app

    host, port = parse_host_port(settings.bind, "bind")
    progress(f"{settings.role} on http://{host}:{port}; Ctrl-C stops it")
    serve_app(build_app(settings.role, server_settings(settings)), host=host, port=port)
