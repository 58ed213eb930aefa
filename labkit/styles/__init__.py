"""Delivery styles: one module per style, found through one registry.

``labkit.styles.registry`` holds what every layer may ask of a style by its
name (label, colour, whether it pushes or is pulled, how its consumer
de-duplicates); each style module registers itself there. Nothing outside a
style's own module branches on a style's name.
"""

from __future__ import annotations

from labkit.styles.base import Style, unit, units
from labkit.styles.registry import StyleInfo, all_styles, get, names, register

__all__ = ["Style", "StyleInfo", "all_styles", "get", "names", "register", "unit", "units"]
