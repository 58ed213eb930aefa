"""API polling (and its variants): what every layer may know of it."""

from __future__ import annotations

from labkit.styles.registry import StyleInfo, register

POLLING = register(
    StyleInfo(
        name="polling",
        label="API polling",
        colour="#d62728",
        marker="s",
        direction="pull",
        needs_public_endpoint=False,
        dedup_key="event id, and keeps its cursor",
        order=20,
    )
)
