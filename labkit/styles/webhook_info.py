"""Webhook push: what every layer may know of it (the run side lives with the pipeline)."""

from __future__ import annotations

from labkit.styles.registry import StyleInfo, register

WEBHOOK = register(
    StyleInfo(
        name="webhook",
        label="webhook push",
        colour="#1f77b4",
        marker="o",
        direction="push",
        needs_public_endpoint=True,
        dedup_key="webhook-id (a retry carries the first attempt's id)",
        order=10,
    )
)
