"""Webhook push's StyleInfo, kept importable here; the style itself is ``labkit.styles.webhook``."""

from __future__ import annotations

from labkit.styles.webhook import WEBHOOK

__all__ = ["WEBHOOK"]
