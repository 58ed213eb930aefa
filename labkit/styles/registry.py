"""The registry of delivery styles and what every layer may know of one.

A style module calls ``register(StyleInfo(...))`` at import; the registry
imports the shipped style modules on first use, so a caller never needs to
know which modules exist. Figures, reports and summaries read a style's
presentation and semantics from here instead of testing its name.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Literal

# The shipped style modules, in display order; a new style adds its module here.
SHIPPED = ("labkit.styles.webhook_info", "labkit.styles.polling_info")


@dataclass(frozen=True)
class StyleInfo:
    """What a style is, independent of how a run starts it."""

    name: str
    label: str
    colour: str
    marker: str
    # push: the provider sends as events happen; pull: the consumer asks.
    direction: Literal["push", "pull"]
    # True when the consumer must expose a reachable (HTTPS) endpoint to receive events.
    needs_public_endpoint: bool
    # How the consumer recognises a repeated event, in the report's words.
    dedup_key: str
    # Display order in tables and figures (lower first).
    order: int = 100


_REGISTRY: dict[str, StyleInfo] = {}
_loaded = False


def register(info: StyleInfo) -> StyleInfo:
    """Add (or replace) a style; returns it so a module can keep a reference."""
    _REGISTRY[info.name] = info
    return info


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in SHIPPED:
            importlib.import_module(module)


def get(name: str) -> StyleInfo | None:
    """The style called ``name``, or None for a name no module registered."""
    _load()
    return _REGISTRY.get(name)


def all_styles() -> list[StyleInfo]:
    """Every registered style, in display order."""
    _load()
    return sorted(_REGISTRY.values(), key=lambda s: (s.order, s.name))


def names() -> tuple[str, ...]:
    """The registered style names, in display order."""
    return tuple(s.name for s in all_styles())
