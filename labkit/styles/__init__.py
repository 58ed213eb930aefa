"""Delivery styles: one module per style, found through one registry.

``labkit.styles.registry`` holds what every layer may ask of a style by its
name (label, colour, its family: push, pull or held stream, how its consumer
de-duplicates, the variants it measures and the decision options they stand
for); each style module registers itself there. Nothing outside a
style's own module branches on a style's name.
"""

from __future__ import annotations

from labkit.config.faults import FAMILIES, Family

# The shipped styles, imported plainly; each registers itself (with its display order) as it is imported.
from labkit.styles import hybrid, polling, sse, webhook, websocket  # noqa: F401
from labkit.styles.base import Style, unit, units
from labkit.styles.registry import (
    StyleInfo,
    Variant,
    all_styles,
    check,
    default_names,
    fault_styles,
    get,
    names,
    options,
    register,
    resolve,
    styles_of,
    variants,
)

__all__ = [
    "FAMILIES",
    "Family",
    "Style",
    "StyleInfo",
    "Variant",
    "all_styles",
    "check",
    "default_names",
    "fault_styles",
    "get",
    "names",
    "options",
    "register",
    "resolve",
    "styles_of",
    "unit",
    "units",
    "variants",
]
