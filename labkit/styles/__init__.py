"""Delivery styles: one module per style, found through one registry.

``labkit.styles.registry`` holds what every layer may ask of a style by its
name (label, colour, whether it pushes or is pulled, how its consumer
de-duplicates); each style module registers itself there. Nothing outside a
style's own module branches on a style's name.
"""

from __future__ import annotations

# The shipped styles, imported plainly; each registers itself (with its display order) as it is imported.
from labkit.styles import polling, sse, webhook, websocket  # noqa: F401
from labkit.styles.base import Style, unit, units
from labkit.styles.registry import StyleInfo, all_styles, check, get, names, register

__all__ = ["Style", "StyleInfo", "all_styles", "check", "get", "names", "register", "unit", "units"]
